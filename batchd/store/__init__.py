"""`Store`: the one class that owns all of batchd's SQL (split by concern across mixins)."""

from __future__ import annotations

from pathlib import Path

from batchd.store.control import ControlQueries
from batchd.store.loop_reads import Claim
from batchd.store.projects import ProjectQueries
from batchd.store.scheduling import AttemptUpdate, SchedulingQueries

__all__ = ["Store", "Claim", "AttemptUpdate"]


class Store(ProjectQueries, SchedulingQueries, ControlQueries):
    @classmethod
    async def open(cls, path: Path) -> Store:
        store = cls(path)
        await store._connect()
        return store
