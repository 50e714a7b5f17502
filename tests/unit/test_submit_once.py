"""A batch is read a moment before it is sent, and an attempt in it may have been sent and
recorded meanwhile (by the batch sending before it, or after a lookup by name). The store,
not that reading, decides what is sent: an attempt no longer 'unsent' is never sent again."""

from __future__ import annotations

import asyncio

from batchd.config.settings import Settings
from batchd.loops.submitter import Submitter, build_request
from batchd.wakeups import Wakeups
from tests.stub_backend import StubBackend

from .test_store import _claimed


class RecordingBackend(StubBackend):
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def submit(self, request) -> str:
        await asyncio.sleep(0)
        self.sent.append(request.job_name)
        return f"id-{request.job_name}"


async def test_take_for_sending_takes_only_attempts_still_unsent(store):
    _, claims = await _claimed(store, 4, plan=build_request)
    ids = [c.attempt_id for c in claims]
    await store.record_submitted([(ids[0], "id-0")], 0)           # sent and recorded
    await store.set_submit_status([(ids[1], "unknown", 0.0)])     # may exist
    await store.set_submit_status([(ids[2], "pending", 0.0)])     # refused: known absent
    assert await store.take_for_sending(ids, 99.0) == {ids[2], ids[3]}
    assert await store.take_for_sending(ids, 99.0) == set()      # taken once only
    rows = await store.read(f"SELECT id, state, submit_status, next_poll_at FROM attempts "
                            f"WHERE id IN ({','.join('?' * 4)}) ORDER BY id", ids)
    assert [(r["state"], r["submit_status"]) for r in rows] == [
        ("SUBMITTED", None), ("SUBMITTING", "unknown"), ("SUBMITTING", "unknown"),
        ("SUBMITTING", "unknown")]
    assert [r["next_poll_at"] for r in rows][2:] == [99.0, 99.0]


async def test_a_stale_batch_never_sends_an_attempt_twice(store):
    _, claims = await _claimed(store, 5, plan=build_request)
    backend = RecordingBackend()
    submitter = Submitter(store, backend, Settings(), Wakeups(), asyncio.Event())
    await submitter._send(claims[:2])                 # the batch before
    assert len(backend.sent) == 2
    # The next batch was read before the first one's answers were recorded: it holds them too.
    await submitter._send(claims)
    assert sorted(backend.sent) == sorted(c.request["job_name"] for c in claims)
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][0]["counts"] == {"SUBMITTED": 5}


async def test_an_attempt_held_by_two_batches_stays_held_until_both_end(store):
    # Found by a long chaos run: batch A ended and dropped the attempt from the "being sent"
    # set while batch B was still sending it; a lookup found it absent and a third batch
    # sent it again.
    _, claims = await _claimed(store, 2, plan=build_request)
    gate = asyncio.Event()

    class SlowBackend(RecordingBackend):
        async def submit(self, request) -> str:
            if request.job_name == claims[1].request["job_name"]:
                await gate.wait()
            return await super().submit(request)

    submitter = Submitter(store, SlowBackend(), Settings(), Wakeups(), asyncio.Event())
    slow = asyncio.ensure_future(submitter._send([claims[1]]))     # B: still sending
    await asyncio.sleep(0.05)
    await submitter._send(claims)                                   # A: holds it too, ends
    assert claims[1].attempt_id in submitter._sending
    gate.set()
    await slow
    assert claims[1].attempt_id not in submitter._sending
