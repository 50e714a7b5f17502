"""The output checker loop: outputs decide completion.

Two kinds of job come here: READY jobs (before submitting: if every output already exists the
job is COMPLETED without running, which is how a re-run resumes) and CHECKING jobs (the backend
said SUCCEEDED: only the outputs make it COMPLETED; without them it failed as
`outputs_missing`). Jobs are checked in large batches so the output store can use one LIST per
dense prefix instead of one HEAD per file. An answer of "unknown" (S3 error, permission) is
never taken as "missing": the job is simply checked again later.
"""

from __future__ import annotations

import asyncio
import json
import time

from batchd.backends.base import Backend
from batchd.config.settings import Settings
from batchd.failures import LOST, OUTPUTS_MISSING, FailedAttempt, RetryPolicy, decide
from batchd.logs import get_logger
from batchd.store import Store
from batchd.text import shorten
from batchd.wakeups import Wakeups, linger, pause

BATCH = 5000
# Jobs end a few at a time, in every poll batch. Checked at once, each handful cost an S3
# request or so per output (a HEAD or a small probe); gathered for a moment, one LIST of their
# dense prefix answers dozens. A quarter of the poll interval (at most 2 s) is small next to
# the interval the ends were detected within.
SETTLE_SHARE = 0.25
SETTLE_MAX = 2.0


class Checker:
    def __init__(self, store: Store, backend: Backend, settings: Settings, wake: Wakeups,
                 stop: asyncio.Event) -> None:
        self.store, self.backend, self.settings = store, backend, settings
        self.wake, self.stop = wake, stop
        self.log = get_logger(loop="checker")

    async def run(self) -> None:
        while not self.stop.is_set():
            checked = await self.cycle()
            if checked < BATCH:
                await pause(self.wake.checker, self.stop, 1.0)
                await linger(self.stop, self.settle)

    @property
    def settle(self) -> float:
        # Read each round: a reload swaps `settings`, poll interval included.
        return min(self.settings.effective_poll_interval * SETTLE_SHARE, SETTLE_MAX)

    async def cycle(self) -> int:
        jobs = await self.store.jobs_to_check(time.time(), BATCH)
        if not jobs:
            return 0
        outputs = {job["id"]: json.loads(job["outputs"]) for job in jobs}
        # The next step's outputs are checked with those of the step that ran: the two often
        # sit side by side (one small LIST answers both), and the next step, if its outputs
        # are absent, is queued at once instead of being checked again as READY.
        following = await self.store.next_steps_waiting(
            [job["id"] for job in jobs if job["state"] == "CHECKING"])
        groups = []
        for job in jobs:
            group = list(outputs[job["id"]])
            after = following.get(job["id"])
            if after is not None:
                outputs[after["id"]] = json.loads(after["outputs"])
                group += outputs[after["id"]]
            groups.append(group)
        uris = sorted({uri for group in groups for uri in group})
        found = await self.backend.outputs.exists_many(uris, groups)
        complete, absent, unknown, missing_after_run = [], [], [], []
        retry_at = time.time() + self.settings.check_retry_interval
        for job in jobs:
            answers = [found.get(uri) for uri in outputs[job["id"]]]
            if all(answer is True for answer in answers):
                complete.append((job["id"], job["state"] == "READY"))
                after = following.get(job["id"])
                # Released as READY in the same transaction; QUEUED right away when an
                # output is known to be missing (else READY: checked again, as before).
                if after is not None and any(found.get(u) is False
                                             for u in outputs[after["id"]]):
                    absent.append(after["id"])
            elif any(answer is False for answer in answers):
                if job["state"] == "READY":
                    absent.append(job["id"])
                else:
                    gone = [u for u, a in zip(outputs[job["id"]], answers, strict=True)
                            if a is False]
                    missing_after_run.append((job, gone))
            else:
                unknown.append((job["id"], retry_at))
        await self.store.apply_checks(complete=complete, absent=absent, unknown=unknown)
        for job_id, skipped in complete:
            self.log.info("job_skipped" if skipped else "job_completed", job=job_id)
        if unknown:
            self.log.warning("outputs_unknown", jobs=len(unknown),
                             retry_in=self.settings.check_retry_interval)
        if missing_after_run:
            await self._outputs_missing(missing_after_run)
        if absent or missing_after_run:
            self.wake.submitter.set()
        return len(jobs)

    async def _outputs_missing(self, items) -> None:
        context = await self.store.failure_context(job["current_attempt_id"] for job, _ in items)
        decisions = []
        for job, gone in items:
            ctx = context.get(job["current_attempt_id"])
            if ctx is None:
                continue
            shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
            policy = RetryPolicy.merged(self.settings.retry,
                                        json.loads(ctx["retry"]) if ctx["retry"] else None)
            if ctx["failure_class"] == LOST:      # forgotten by the backend, outputs absent
                cls, detail = LOST, f"{ctx['status_reason']}; outputs missing: {shown}"
            else:
                cls, detail = OUTPUTS_MISSING, f"missing: {shown}"
            failure = FailedAttempt(cls, detail, ctx["exit_code"],
                                    ctx["memory"], ctx["vcpus"], ctx["timeout"],
                                    ctx["spot_failures"], ctx["other_failures"])
            decision = decide(failure, policy)
            decisions.append((job["id"], job["current_attempt_id"], decision))
            self.log.warning("job_failed" if type(decision).__name__ == "GiveUp"
                             else "job_retrying", job=job["id"], failure_class=cls,
                             reason=shorten(decision.reason))
        await self.store.apply_failures(decisions)
