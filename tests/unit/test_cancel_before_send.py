"""Cancelling while attempts are SUBMITTING (throttled, unsent, or of unknown outcome) must
stop their send. Before, the job was created in AWS after the cancel and only then
orphan-cancelled: a job the user had cancelled still started, and was billed, for a while."""

from __future__ import annotations

import asyncio

from batchd.config.settings import Settings
from batchd.loops.submitter import Submitter, build_request
from batchd.wakeups import Wakeups

from .test_store import _claimed
from .test_submit_once import RecordingBackend


async def _attempts(store, ids):
    rows = await store.read(f"SELECT id, state, submit_status FROM attempts "
                            f"WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id", ids)
    return [(r["state"], r["submit_status"]) for r in rows]


async def test_a_cancelled_jobs_unsent_attempt_is_closed_and_never_sent(store):
    wf_id, claims = await _claimed(store, 3, plan=build_request)
    ids = [c.attempt_id for c in claims]
    await store.set_submit_status([(ids[1], "pending", 0.0)])     # throttled: known absent
    await store.cancel_jobs(wf_id, reason="wrong reference genome")
    assert await store.take_for_sending(ids, 99.0) == set()
    assert await _attempts(store, ids) == [("CANCELLED", None)] * 3
    backend = RecordingBackend()
    submitter = Submitter(store, backend, Settings(), Wakeups(), asyncio.Event())
    await submitter._send(claims)                  # a batch read just before the cancel
    assert backend.sent == []


async def test_an_unknown_attempt_found_absent_after_the_cancel_is_not_sent(store):
    wf_id, claims = await _claimed(store, 2, plan=build_request)
    ids = [c.attempt_id for c in claims]
    await store.set_submit_status([(i, "unknown", 0.0) for i in ids])   # answer lost
    await store.cancel_jobs(wf_id, reason="stop")
    assert await _attempts(store, ids) == [("SUBMITTING", "unknown")] * 2  # looked up first
    # The lookup by name found nothing: the attempt is known absent again...
    await store.set_submit_status([(i, "unsent", 0.0) for i in ids])
    # ... but its job is cancelled, so it is closed, not sent.
    assert await store.take_for_sending(ids, 99.0) == set()
    assert await _attempts(store, ids) == [("CANCELLED", None)] * 2


async def test_attempts_of_jobs_not_cancelled_are_still_taken(store):
    wf_id, claims = await _claimed(store, 4, plan=build_request)
    ids = [c.attempt_id for c in claims]
    samples = await store.read("SELECT s.name FROM attempts a JOIN jobs j ON j.id = a.job_id "
                               "JOIN samples s ON s.id = j.sample_id WHERE a.id = ?", (ids[0],))
    await store.cancel_jobs(wf_id, reason="one sample", sample=samples[0]["name"])
    assert await store.take_for_sending(ids, 99.0) == set(ids[1:])
    assert (await _attempts(store, ids))[0] == ("CANCELLED", None)
