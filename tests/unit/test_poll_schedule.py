"""When the poller looks at a job again: every poll interval, except jobs waiting long for
capacity (RUNNABLE), which only need polling to notice that they started."""

from __future__ import annotations

import asyncio

import pytest

from batchd.backends.base import JobStatus
from batchd.config.settings import Settings
from batchd.loops.poller import (
    RUNNABLE_PATIENCE,
    RUNNABLE_SLOWDOWN,
    YOUNG_MIN_RUNS,
    YOUNG_SHARE,
    YOUNG_SLOWDOWN,
    Poller,
    ShortestRuns,
)
from batchd.wakeups import Wakeups
from tests.stub_backend import StubBackend

INTERVAL = 30.0


@pytest.fixture
def poller() -> Poller:
    settings = Settings(backend="aws", poll_interval=INTERVAL)
    return Poller(None, StubBackend(), settings, Wakeups(),  # type: ignore[arg-type]
                  asyncio.Event())                              # (no store: never used)


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


# -------------------------------------------------------------------- young RUNNING jobs
def _running(poller: Poller, started_ago: float, shortest: float | None) -> float:
    now = 1_000_000.0
    status = JobStatus("id", "name", "RUNNING")
    return poller._next_poll(status, None, now, shortest, now - started_ago) - now


def test_young_running_jobs_are_polled_less_often_until_their_step_could_succeed(poller):
    shortest = 20 * INTERVAL
    assert _running(poller, 0, shortest) == YOUNG_SLOWDOWN * INTERVAL
    # next poll lands exactly when the job reaches 90 % of the shortest success
    grown_up = YOUNG_SHARE * shortest
    assert _running(poller, grown_up - 2 * INTERVAL, shortest) == pytest.approx(2 * INTERVAL)
    assert _running(poller, grown_up - 0.5 * INTERVAL, shortest) == INTERVAL
    assert _running(poller, grown_up + 1, shortest) == INTERVAL
    assert _running(poller, 0, None) == INTERVAL          # nothing learnt yet


def test_shortest_runs_need_enough_successes():
    runs = ShortestRuns()
    for i in range(YOUNG_MIN_RUNS - 1):
        runs.record((1, 0), 600.0 + i)
    assert runs.shortest((1, 0)) is None
    runs.record((1, 0), 300.0)
    assert runs.shortest((1, 0)) == 300.0
    assert runs.shortest((1, 1)) is None


# -------------------------------------------------------------------- batch filling
class DueStore:
    """poll_plan() answers from a list; records what the poller asked to describe."""

    def __init__(self, due_times: list[float]) -> None:
        self.rows = [{"id": i, "job_id": i, "backend_job_id": f"j{i}", "next_poll_at": t}
                     for i, t in enumerate(sorted(due_times))]

    async def poll_plan(self, now: float, limit: int, *, fill_to: int = 1,
                        fill_until: float | None = None):
        # the Store's contract (tested on SQLite in test_store.py)
        due = [r for r in self.rows if r["next_poll_at"] <= now][:limit]
        if due and fill_until is not None:
            later = [r for r in self.rows if now < r["next_poll_at"] <= fill_until]
            due += later[:-len(due) % fill_to]
        rest = self.rows[len(due):]
        return due, (rest[0]["next_poll_at"] if rest else None)


async def test_a_cycle_tops_up_only_its_last_batch(poller, monkeypatch):
    import time as _time
    now = _time.time()
    # 130 due now, 400 more due within the next half interval
    store = DueStore([now - 1] * 130 + [now + INTERVAL * 0.4 * i / 400 for i in range(400)])
    polled: list[list[int]] = []

    async def poll_batch(batch):
        polled.append([a["id"] for a in batch])

    poller.store = store
    monkeypatch.setattr(poller, "_poll_batch", poll_batch)
    assert await poller.cycle() == 200
    assert [len(b) for b in polled] == [100, 100]
    assert sorted(i for b in polled for i in b) == list(range(200))   # the soonest due

    polled.clear()
    store.rows = [r for r in store.rows if r["next_poll_at"] > now + 1]   # nothing due now
    assert await poller.cycle() == 0 and polled == []


async def test_runs_are_timed_on_this_machines_clock(poller, monkeypatch):
    """AWS's startedAt is another clock (and the benchmark's fake runs faster): a run lasts
    from the poll that first saw it RUNNING to the one that saw it succeed."""
    import batchd.loops.poller as module

    class Store:
        async def apply_poll(self, updates, missing, failures=()):
            self.updates = updates

    class Backend(StubBackend):
        state = "RUNNING"

        async def describe(self, job_ids):
            return [JobStatus(i, f"n{i}", self.state, started_at=1, stopped_at=2)
                    for i in job_ids]

    clock = [1000.0]
    monkeypatch.setattr(module.time, "time", lambda: clock[0])
    poller.store, poller.backend = Store(), Backend()
    attempts = [{"id": i, "job_id": i, "backend_job_id": f"j{i}", "state": "RUNNING",
                 "workflow_id": 1, "step": 0, "runnable_at": None, "missing_polls": 0,
                 "current_attempt_id": i, "job_state": "RUNNING", "job_reason": None}
                for i in range(YOUNG_MIN_RUNS)]
    await poller._poll_batch(attempts)
    clock[0] = 1000.0 + 4 * INTERVAL
    await poller._poll_batch(attempts)          # still running: first sighting is kept
    clock[0] = 1000.0 + 10 * INTERVAL
    Backend.state = "SUCCEEDED"
    await poller._poll_batch(attempts)
    assert poller.runs.shortest((1, 0)) == 10 * INTERVAL
    assert poller._running_since == {}
