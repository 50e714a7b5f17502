"""When the poller looks at a job again: every poll interval, except jobs waiting long for
capacity (RUNNABLE), which only need polling to notice that they started."""

from __future__ import annotations

import asyncio

import pytest

from batchd.backends.base import JobStatus
from batchd.poller import RUNNABLE_PATIENCE, RUNNABLE_SLOWDOWN, Poller
from batchd.settings import Settings
from batchd.wakeups import Wakeups

INTERVAL = 30.0


@pytest.fixture
def poller() -> Poller:
    settings = Settings(backend="aws", poll_interval=INTERVAL)
    return Poller(None, None, settings, Wakeups(), asyncio.Event())  # type: ignore[arg-type]


def _next(poller: Poller, state: str, runnable_for: float | None) -> float:
    now = 1_000_000.0
    runnable_at = None if runnable_for is None else now - runnable_for
    return poller._next_poll(JobStatus("id", "name", state), runnable_at, now) - now


@pytest.mark.parametrize("state", ["SUBMITTED", "PENDING", "STARTING", "RUNNING"])
def test_active_jobs_every_interval(poller, state):
    assert _next(poller, state, runnable_for=10 * INTERVAL) == INTERVAL


def test_runnable_slows_down_only_after_waiting(poller):
    assert _next(poller, "RUNNABLE", runnable_for=0) == INTERVAL
    assert _next(poller, "RUNNABLE", runnable_for=RUNNABLE_PATIENCE * INTERVAL) == INTERVAL
    later = _next(poller, "RUNNABLE", runnable_for=RUNNABLE_PATIENCE * INTERVAL + 1)
    assert later == RUNNABLE_SLOWDOWN * INTERVAL > INTERVAL
