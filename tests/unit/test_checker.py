"""The output checker on a real SQLite store, with an in-memory output store that records
what it was asked."""

from __future__ import annotations

import asyncio

from batchd.config.settings import Settings
from batchd.loops.checker import Checker
from batchd.store import AttemptUpdate, Store
from batchd.wakeups import Wakeups

from .test_store import make_workflow, plan


class RecordingOutputs:
    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.calls: list[tuple[list[str], list[list[str]] | None]] = []

    async def exists_many(self, uris, groups=None):
        self.calls.append((list(uris), [list(g) for g in groups] if groups else None))
        return {u: u in self.present for u in uris}


class Backend:
    def __init__(self, outputs) -> None:
        self.outputs = outputs


async def _submit_step0(store: Store, wf_id: int) -> list[dict]:
    """Submit the workflow and queue step 0 (outputs absent): its attempts, in the backend."""
    await store.submit_workflow(wf_id)
    ready = await store.jobs_to_check(1e12, 10)
    await store.apply_checks(complete=[], absent=[j["id"] for j in ready], unknown=[])
    claims = await store.claim(wf_id, "q", 10, plan)
    await store.record_submitted([(c.attempt_id, f"id-{c.attempt_id}") for c in claims], 0)
    return await store.attempts_due(now=1e12, limit=10)


async def _succeed(store: Store, attempts: list[dict]) -> None:
    await store.apply_poll([AttemptUpdate(a["id"], a["job_id"], "SUCCEEDED", None, None, 0,
                                          "stream", 1.0, 2.0, None, 1e13, True)
                            for a in attempts], [])


async def _run_step0(store: Store, wf_id: int) -> list[int]:
    """Submit the workflow, queue step 0 (outputs absent), and report every step-0 job
    SUCCEEDED: returns the step-0 job ids, now CHECKING."""
    due = await _submit_step0(store, wf_id)
    await _succeed(store, due)
    return [a["job_id"] for a in due]


async def test_next_step_is_checked_with_its_predecessor_and_queued_at_once(store):
    wf_id = await make_workflow(store, samples=("a", "b", "c"))
    step0 = await _run_step0(store, wf_id)
    # a's and b's step-0 outputs exist; c's step-1 output exists already (an earlier run).
    outputs = RecordingOutputs({"/out/a.0", "/out/b.0", "/out/c.0", "/out/c.1"})
    checker = Checker(store, Backend(outputs), Settings(), Wakeups(), asyncio.Event())
    assert await checker.cycle() == 3
    uris, groups = outputs.calls[0]
    assert sorted(groups) == [["/out/a.0", "/out/a.1"], ["/out/b.0", "/out/b.1"],
                              ["/out/c.0", "/out/c.1"]]
    assert sorted(uris) == sorted(u for g in groups for u in g)
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][0]["counts"] == {"COMPLETED": 3}
    # a and b: step 1 queued without a second check; c: READY (present: checked again to
    # skip it, exactly as a re-run would)
    assert status["steps"][1]["counts"] == {"QUEUED": 2, "READY": 1}
    assert len(step0) == 3
    assert await checker.cycle() == 1
    assert outputs.calls[1] == (["/out/c.1"], [["/out/c.1"]])
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][1]["counts"] == {"QUEUED": 2, "COMPLETED": 1}


async def test_missing_outputs_after_success_do_not_release_the_next_step(store):
    wf_id = await make_workflow(store, samples=("a",))
    await _run_step0(store, wf_id)
    outputs = RecordingOutputs(set())          # the job said SUCCEEDED but wrote nothing
    checker = Checker(store, Backend(outputs), Settings(), Wakeups(), asyncio.Event())
    await checker.cycle()
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][1]["counts"] == {"WAITING": 1}
    assert "COMPLETED" not in status["steps"][0]["counts"]


async def test_a_job_cancelled_while_checking_does_not_release_its_next_step(store):
    wf_id = await make_workflow(store, samples=("a",))
    step0 = await _run_step0(store, wf_id)
    async with store.transaction() as conn:        # `batchctl cancel` during the check
        await conn.execute("UPDATE jobs SET state = 'CANCELLED' WHERE id = ?", (step0[0],))
    await store.apply_checks(complete=[(step0[0], False)], absent=[], unknown=[])
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][0]["counts"] == {"CANCELLED": 1}
    assert status["steps"][1]["counts"] == {"WAITING": 1}


async def test_ends_arriving_while_the_checker_waits_are_checked_in_one_round(store):
    """Woken by the first ends, the checker waits a quarter of the poll interval (at most
    2 s) so the next poll batch's ends share its S3 requests (and follows a reload)."""
    due = await _submit_step0(store, await make_workflow(store, samples=("a", "b", "c", "d")))

    async def succeed(attempts) -> None:
        await _succeed(store, attempts)
        wake.checker.set()

    outputs = RecordingOutputs(set())
    wake, stop = Wakeups(), asyncio.Event()
    checker = Checker(store, Backend(outputs), Settings(poll_interval=4.0), wake, stop)
    assert checker.settle == 1.0
    task = asyncio.create_task(checker.run())
    await asyncio.sleep(0.1)
    await succeed(due[:2])                 # one poll batch's ends ...
    await asyncio.sleep(0.1)
    await succeed(due[2:])                 # ... and the next one's, during the wait
    await asyncio.sleep(1.5)
    stop.set()
    await task
    assert len(outputs.calls) == 1, outputs.calls
    assert len(outputs.calls[0][1]) == 4
    checker.settings = Settings(poll_interval=30.0)
    assert checker.settle == 2.0
