"""A FAILED answer and the retry decision it calls for are one transaction, and a store left
with a FAILED attempt whose job was never decided (a crash between the two, in versions that
recorded them apart) is repaired when the daemon starts."""

from __future__ import annotations

import asyncio
import sqlite3

from batchd.backends.base import JobStatus
from batchd.config.settings import Settings
from batchd.loops.poller import Poller
from batchd.store import AttemptUpdate, Store
from batchd.wakeups import Wakeups
from tests.stub_backend import StubBackend
from tests.unit.test_store import _claimed


class Crash(Exception):
    """The process dying right after the transaction that recorded the poll."""


class CrashingStore(Store):
    """A second write after the poll's record is where the old code died: make it fail."""

    async def apply_failures(self, items) -> None:
        raise Crash


class FailingBackend(StubBackend):
    async def describe(self, job_ids):
        return [JobStatus(i, "n", "FAILED", status_reason="Essential container in task exited",
                          exit_code=1) for i in job_ids]


def _job_states(path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT j.state, t.state FROM jobs j JOIN attempts t "
                            "ON t.id = j.current_attempt_id").fetchall()


async def test_a_crash_after_recording_a_failed_poll_leaves_the_job_decided(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = await CrashingStore.open(path)
    try:
        _, claims = await _claimed(store, 1)
        await store.record_submitted([(claims[0].attempt_id, "id-1")], 0)
        poller = Poller(store, FailingBackend(), Settings(), Wakeups(), asyncio.Event())
        due = await store.attempts_due(1e12, 10)
        try:
            await poller._poll_batch(due)
        except Crash:
            pass
    finally:
        await store.close()
    # On the old code: [("SUBMITTED", "FAILED")], a job nothing would ever move again.
    assert _job_states(path) == [("QUEUED", "FAILED")]


async def _crashed_between_transactions(path) -> None:
    """The state the old two-step path left: the FAILED answer recorded, no decision."""
    store = await Store.open(path)
    try:
        _, claims = await _claimed(store, 2)
        await store.record_submitted([(c.attempt_id, f"id-{c.attempt_id}") for c in claims[:1]],
                                     0)
        first = claims[0]
        await store.apply_poll([AttemptUpdate(first.attempt_id, first.job_id, "FAILED",
                                              "Essential container in task exited", None, 1,
                                              None, 1.0, 2.0, None, 1e13, True)], [])
        await store.fail_attempt(claims[1].attempt_id, "ClientException: bad queue")
    finally:
        await store.close()


async def test_the_daemon_decides_jobs_left_undecided_at_start(daemon_factory):
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2")
    daemon.state_dir.mkdir(parents=True)
    path = daemon.state_dir / "batchd.sqlite3"
    await _crashed_between_transactions(path)
    assert sorted(_job_states(path)) == [("SUBMITTED", "FAILED"), ("SUBMITTING", "FAILED")]
    daemon.start()
    daemon.stop()
    # Decided: the rejected submit given up, the failed run retried (queued, or already
    # claimed again by the restarted submitter).
    assert not [s for s in _job_states(path) if s[1] == "FAILED" and s[0] != "FAILED"]
    repaired = daemon.events("startup_repaired")
    assert repaired and repaired[0]["undecided"] == 2 and repaired[0]["decided"] == 2
    with sqlite3.connect(path) as conn:
        classes = dict(conn.execute("SELECT state, failure_class FROM jobs").fetchall())
    assert classes["FAILED"] == "submit_rejected"
