"""After a crash, an attempt marked "may exist" is looked up no sooner than the settle delay
after its SubmitJob, whenever that was. Found by the chaos run (tests/e2e/test_chaos.py):
attempts are marked in groups of MARK_AHEAD before their sends, and under a tight rate budget
a send can come many seconds after its mark. The start-up kept the settle time from the mark,
so an attempt sent 1 s before a SIGKILL was looked up at once after the restart, not listed
yet (ListJobs lags SubmitJob), found absent and sent a second time."""

from __future__ import annotations

import time

from batchd.loops.submitter import SETTLE_SECONDS, build_request

from .test_store import _claimed


async def test_a_restart_waits_the_settle_delay_from_now_for_what_may_have_been_sent(store):
    _, claims = await _claimed(store, 3, plan=build_request)
    ids = [c.attempt_id for c in claims]
    marked_at = time.time() - 60                 # marked a minute ago, sent just now, killed
    assert await store.take_for_sending(ids[:2], marked_at + SETTLE_SECONDS) == set(ids[:2])
    later = time.time() + 3600                   # a lost answer: settle already far ahead
    await store.set_submit_status([(ids[1], "unknown", later)])
    restart = time.time()
    assert await store.mark_all_submitting_unknown(restart + SETTLE_SECONDS) == 2
    rows = {r["id"]: r for r in await store.read(
        "SELECT id, submit_status, next_poll_at FROM attempts WHERE id IN (?,?,?)", ids)}
    # The send may have been right before the crash: no lookup before restart + settle.
    assert rows[ids[0]]["next_poll_at"] >= restart + SETTLE_SECONDS
    assert rows[ids[1]]["next_poll_at"] == later           # a later settle time is kept
    assert rows[ids[2]]["submit_status"] == "unsent"        # never sent: no lookup at all
