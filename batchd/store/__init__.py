"""`Store`: the one class that owns all of batchd's SQL (split by concern across mixins)."""

from __future__ import annotations

from pathlib import Path

from batchd.store.control import ControlQueries
from batchd.store.loop_reads import Claim
from batchd.store.polls import AttemptUpdate, PollQueries
from batchd.store.projects import ProjectQueries
from batchd.store.submissions import SubmissionQueries

__all__ = ["Store", "Claim", "AttemptUpdate"]


class Store(ProjectQueries, SubmissionQueries, PollQueries, ControlQueries):
    @classmethod
    async def open(cls, path: Path) -> Store:
        store = cls(path)
        await store._connect()
        return store
