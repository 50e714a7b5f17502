"""The submitter marks attempts "may exist" before sending them, in groups of MARK_AHEAD, so
that a crash is followed by a lookup by name, never a blind resend."""

from __future__ import annotations

import asyncio

from batchd.loops.submitter import MARK_AHEAD, _MarkAhead
from batchd.store import Claim


class RecordingStore:
    def __init__(self, sent_meanwhile: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[tuple[int, str, float]]] = []
        self.sent_meanwhile = sent_meanwhile       # no longer 'unsent' in the store

    async def take_for_sending(self, attempt_ids, until):
        await asyncio.sleep(0)             # a real store yields to the loop here
        self.calls.append([(a, "unknown", until) for a in attempt_ids])
        return {a for a in attempt_ids if a not in self.sent_meanwhile}


def _claims(n: int) -> list[Claim]:
    return [Claim(attempt_id=1000 + i, job_id=i, request={}) for i in range(n)]


async def test_marks_in_groups_in_send_order():
    store = RecordingStore()
    claims = _claims(100)
    marks = _MarkAhead(store, claims)       # type: ignore[arg-type]
    for claim in claims:
        await marks.before_send(claim.attempt_id)
        # marked (durably asked for) before it would be sent
        assert any(claim.attempt_id == a for call in store.calls for a, _, _ in call)
    assert len(store.calls) == 100 // MARK_AHEAD
    assert [a for call in store.calls for a, _, _ in call] == [c.attempt_id for c in claims]
    assert {status for call in store.calls for _, status, _ in call} == {"unknown"}


async def test_concurrent_senders_mark_each_attempt_once():
    store = RecordingStore()
    claims = _claims(45)
    marks = _MarkAhead(store, claims)       # type: ignore[arg-type]
    # Out of order and concurrently, as semaphore-bound send tasks may arrive.
    order = claims[::-1][:5] + claims
    await asyncio.gather(*(marks.before_send(c.attempt_id) for c in order))
    marked = [a for call in store.calls for a, _, _ in call]
    assert sorted(marked) == [c.attempt_id for c in claims]
    assert len(store.calls) <= 45 // MARK_AHEAD + 5


async def test_only_attempts_the_store_still_has_unsent_may_be_sent():
    claims = _claims(30)
    store = RecordingStore(sent_meanwhile=frozenset({1003, 1025}))
    marks = _MarkAhead(store, claims)       # type: ignore[arg-type]
    allowed = [c.attempt_id for c in claims if await marks.before_send(c.attempt_id)]
    assert allowed == [c.attempt_id for c in claims if c.attempt_id not in (1003, 1025)]
    assert await marks.before_send(1003) is False          # and stays so when asked again


async def test_the_same_attempt_twice_in_a_batch_is_sent_once():
    # Seen in a long chaos run: one attempt sent twice by one daemon, 23 s apart, with no
    # crash in between; one batch's marks let every claim of a taken attempt through.
    claims = _claims(5)
    claims.append(claims[2])
    store = RecordingStore()
    marks = _MarkAhead(store, claims)       # type: ignore[arg-type]
    allowed = [c.attempt_id for c in claims if await marks.before_send(c.attempt_id)]
    assert sorted(allowed) == [c.attempt_id for c in claims[:5]]
