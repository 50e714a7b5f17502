"""The poller loop: DescribeJobs in batches of 100 for active attempts only.

Attempts carry their own `next_poll_at`, so a cycle touches only what is due (an index range
scan), never all jobs. The last batch of a cycle is topped up to 100 with the attempts due
soonest (within half an interval): ragged batches would multiply API calls per job. Jobs long
RUNNABLE, and RUNNING jobs younger than their step's shortest success so far, are polled less
often (nothing but a rare failure can happen to them, and AWS's quota is shared with
SubmitJob). A job DescribeJobs stops returning is looked up by name and otherwise declared
lost, never polled forever; a job of the same name with another id was made outside batchd
(reported as `duplicate_job_found`, never adopted in place of the recorded one). While AWS
refuses batchd's credentials for DescribeJobs, polling waits for the back-off and then asks
one batch, whose answer decides (backend_auth.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from batchd.backends.auth import AuthWatch
from batchd.backends.base import DESCRIBE_BATCH, Backend, JobStatus
from batchd.config.settings import Settings
from batchd.errors import BackendError, TransientBackendError
from batchd.failures import SUBMIT_REJECTED, FailedAttempt, RetryPolicy, classify, decide
from batchd.logs import get_logger
from batchd.store import AttemptUpdate, Store
from batchd.text import shorten
from batchd.wakeups import Wakeups, pause
from batchshared.model import CHECKING, IN_FLIGHT

MISSING_POLLS_BEFORE_LOST = 3
DUPLICATE_PATIENCE = 3        # times as many missing polls while a same-name job exists
RUNNABLE_SLOWDOWN = 4.0       # poll long-RUNNABLE jobs this many times less often
RUNNABLE_PATIENCE = 2.0       # ... once RUNNABLE for this many poll intervals
YOUNG_SLOWDOWN = 3.0          # poll RUNNING jobs this many times less often while younger
YOUNG_SHARE = 0.9             # ... than this share of their step's shortest successful run
YOUNG_MIN_RUNS = 20           # ... once that many of the step's jobs have succeeded
DESCRIBE = "DescribeJobs"
MOVED_BY_ATTEMPT = (*IN_FLIGHT, CHECKING)   # job states a failed attempt's decision moves


class ShortestRuns:
    """The shortest successful run of each (workflow, step) seen since the daemon started.

    A job RUNNING for less than that can only end by failing (spot reclaim, OOM, error),
    which is rare: polling it every interval until then was most of the pipeline benchmark's
    DescribeJobs. Runs are timed on this machine's clock, from the poll that first saw the job
    RUNNING to the one that saw it succeed (AWS's startedAt is another clock). After a restart
    the figures are learnt again from the next successes."""

    def __init__(self) -> None:
        self._runs: dict[tuple[int, int], tuple[int, float]] = {}

    def record(self, key: tuple[int, int], seconds: float) -> None:
        count, shortest = self._runs.get(key, (0, seconds))
        self._runs[key] = (count + 1, min(shortest, seconds))

    def shortest(self, key: tuple[int, int]) -> float | None:
        count, shortest = self._runs.get(key, (0, 0.0))
        return shortest if count >= YOUNG_MIN_RUNS else None


def _seconds(ms: int | None) -> float | None:
    return ms / 1000.0 if ms else None


class Poller:
    def __init__(self, store: Store, backend: Backend, settings: Settings, wake: Wakeups,
                 stop: asyncio.Event) -> None:
        self.store, self.backend, self.settings = store, backend, settings
        self.wake, self.stop = wake, stop
        self.log = get_logger(loop="poller")
        self._sem = asyncio.Semaphore(max(1, settings.describe_concurrency))
        self.runs = ShortestRuns()
        self._running_since: dict[int, float] = {}   # attempt id -> first poll seeing RUNNING
        self._next_due: float | None = None          # the first attempt not polled this cycle
        self.auth: AuthWatch | None = backend.auth

    @property
    def interval(self) -> float:
        return self.settings.effective_poll_interval

    def _held(self) -> float | None:
        """None while AWS takes our credentials for DescribeJobs; else the seconds left of
        the back-off (0: time for one probe batch)."""
        if self.auth is None or not self.auth.failing(DESCRIBE):
            return None
        return self.auth.wait(DESCRIBE)

    async def run(self) -> None:
        while not self.stop.is_set():
            held = self._held()
            if held is not None and held > 0:
                await pause(self.wake.poller, self.stop, held)
                continue
            await self.cycle()
            # Those just polled are next due an interval from now at the soonest.
            next_at = self._next_due
            delay = self.interval if next_at is None else next_at - time.time()
            await pause(self.wake.poller, self.stop, min(max(delay, 0.05), self.interval))

    async def cycle(self) -> int:
        now = time.time()
        lookahead = now + self.interval * 0.5
        limit = DESCRIBE_BATCH * max(1, self.settings.describe_concurrency) * 4
        # Poll only when something is actually due; then top the last batch up with the jobs
        # due soonest. Polling the whole look-ahead window each time polled jobs a quarter of
        # an interval early on average: a third more DescribeJobs than needed.
        due, self._next_due = await self.store.poll_plan(now, limit, fill_to=DESCRIBE_BATCH,
                                                         fill_until=lookahead)
        if not due:
            return 0
        batches = [due[i:i + DESCRIBE_BATCH] for i in range(0, len(due), DESCRIBE_BATCH)]
        if self._held() is not None:
            batches = batches[:1]      # the probe: the rest stay due until its answer
        await asyncio.gather(*(self._poll_batch(batch) for batch in batches))
        return len(due)

    def _next_poll(self, status: JobStatus, runnable_at: float | None, now: float,
                   shortest_run: float | None = None,
                   running_since: float | None = None) -> float:
        # A job waiting for capacity only needs polling to notice it has started; polling it
        # like a running one was a quarter of all DescribeJobs in the pipeline benchmark. A job
        # that starts is then polled at the full rate, so only jobs shorter than the slowed
        # interval are seen ending later.
        if (status.status == "RUNNABLE" and runnable_at
                and now - runnable_at > RUNNABLE_PATIENCE * self.interval):
            return now + self.interval * RUNNABLE_SLOWDOWN
        # A job younger than its step's shortest success is polled less often until it
        # reaches that age (a failure before then is seen up to YOUNG_SLOWDOWN intervals
        # late), and at the full rate from then on.
        if status.status == "RUNNING" and shortest_run and running_since:
            grown_up = running_since + YOUNG_SHARE * shortest_run
            if grown_up > now + self.interval:
                return min(now + self.interval * YOUNG_SLOWDOWN, grown_up)
        return now + self.interval

    async def _poll_batch(self, batch: list[dict[str, Any]]) -> None:
        ids = [a["backend_job_id"] for a in batch]
        async with self._sem:
            try:
                if (self._held() or 0.0) > 0:
                    # Refused by a batch ahead of this one: not asked, so not counted twice.
                    raise TransientBackendError("held while AWS refuses the credentials",
                                                auth=True)
                statuses = await self.backend.describe(ids)
            except BackendError as exc:
                # A refusal of credentials is logged once (backend_auth_failed).
                (self.log.debug if exc.details.get("auth") else self.log.info)(
                    "poll_deferred", kind=exc.kind, error=exc.message, jobs=len(ids))
                later = time.time() + self.interval
                await self.store.defer_polls([(a["id"], later) for a in batch])
                return
        now = time.time()
        by_id = {s.job_id: s for s in statuses}
        updates: list[AttemptUpdate] = []
        missing: list[tuple[int, float]] = []
        failed: list[tuple[dict[str, Any], JobStatus]] = []
        lost: list[dict[str, Any]] = []
        cancels: list[tuple[dict[str, Any], JobStatus]] = []
        for attempt in batch:
            status = by_id.get(attempt["backend_job_id"])
            if status is None:
                if attempt["missing_polls"] + 1 >= MISSING_POLLS_BEFORE_LOST:
                    self._running_since.pop(attempt["id"], None)
                    lost.append(attempt)
                else:
                    missing.append((attempt["id"], now + self.interval))
                continue
            changed = status.status != attempt["state"]
            runnable_at = now if status.status == "RUNNABLE" else None
            # The job was cancelled, given up while still queued (unplaceable), or moved on to
            # a newer attempt: this one must not keep running (or start) in the backend (and
            # a throttled cancel is repeated at the next poll: no young-job slowdown then).
            superseded = attempt["current_attempt_id"] != attempt["id"]
            unwanted = superseded or attempt["job_state"] in ("CANCELLED", "FAILED")
            step = (attempt["workflow_id"], attempt["step"])
            since: float | None
            if status.status == "RUNNING":
                since = self._running_since.setdefault(attempt["id"], now)
            else:
                since = self._running_since.pop(attempt["id"], None)
                if since is not None and status.status == "SUCCEEDED":
                    self.runs.record(step, now - since)
            updates.append(AttemptUpdate(
                attempt_id=attempt["id"], job_id=attempt["job_id"], state=status.status,
                status_reason=status.status_reason, container_reason=status.container_reason,
                exit_code=status.exit_code, log_stream=status.log_stream,
                started_at=_seconds(status.started_at), stopped_at=_seconds(status.stopped_at),
                runnable_at=runnable_at,
                next_poll_at=self._next_poll(status, attempt["runnable_at"], now,
                                             None if unwanted else self.runs.shortest(step),
                                             since),
                changed=changed, vcpus=status.vcpus, memory=status.memory))
            if unwanted and not status.terminal:
                cancels.append((attempt, status))
            if changed:
                self.log.debug("job_state_changed", job_id=status.job_id,
                               job_name=status.job_name, state=status.status)
                if status.status == "FAILED":
                    failed.append((attempt, status))
                elif status.status == "SUCCEEDED":
                    self.log.info("job_succeeded", job_id=status.job_id,
                                  job_name=status.job_name)
        # Decided before anything is written, and written with the answer in one
        # transaction: a crash can leave neither a FAILED attempt with an undecided job.
        decisions = await self._decide_failed(failed) if failed else []
        await self.store.apply_poll(updates, missing, decisions)
        if any(u.changed and u.state == "SUCCEEDED" for u in updates):
            self.wake.checker.set()
        if decisions:
            self.wake.submitter.set()
            self.wake.checker.set()
        for attempt in lost:
            await self._reconcile_lost(attempt)
        if cancels:
            await asyncio.gather(*(self._cancel(a, s) for a, s in cancels))

    async def _cancel(self, attempt: dict[str, Any], status: JobStatus) -> None:
        """The user cancelled this job: CancelJob while queued, TerminateJob once it runs.
        Repeated at every poll until the backend reports it finished, so a crash or a
        throttled call cannot leave it running."""
        terminate = status.status in ("STARTING", "RUNNING")
        reason = (attempt["job_reason"] or "cancelled by user")[:250]
        try:
            await self.backend.cancel(status.job_id, reason, terminate=terminate)
            self.log.info("job_cancel_sent", job_id=status.job_id, terminate=terminate)
        except BackendError as exc:
            self.log.info("job_cancel_deferred", job_id=status.job_id, error=exc.message)

    async def _reconcile_lost(self, attempt: dict[str, Any]) -> None:
        try:
            found = await self.backend.find_by_name(attempt["job_name"], attempt["queue"])
        except BackendError as exc:
            self.log.info("poll_deferred", kind=exc.kind, error=exc.message, jobs=1)
            await self.store.defer_polls([(attempt["id"], time.time() + self.interval)])
            return
        if found is not None and found.job_id == attempt["backend_job_id"]:
            # Listed but not described: a passing inconsistency; look again later.
            await self.store.defer_polls([(attempt["id"], time.time() + self.interval)])
            return
        if found is not None:
            # Another job of this name, created outside batchd (names are batchd's own and
            # it sends each once): the recorded one is still ours. Keep polling it, for a
            # bounded while (DescribeJobs may lag), and report the other.
            self.log.warning("duplicate_job_found", job_name=attempt["job_name"],
                             job_id=attempt["backend_job_id"], duplicate_job_id=found.job_id)
            if attempt["missing_polls"] + 1 < DUPLICATE_PATIENCE * MISSING_POLLS_BEFORE_LOST:
                await self.store.apply_poll([], [(attempt["id"], time.time() + self.interval)])
                return
        other = (f"; job {found.job_id} of the same name was created outside batchd"
                 if found is not None else " and has no job of that name")
        reason = (f"AWS Batch no longer returns job {attempt['backend_job_id']} "
                  f"({attempt['job_name']}){other}; it was most likely "
                  "forgotten after it finished")
        self.log.warning("job_lost", job_id=attempt["backend_job_id"],
                         job_name=attempt["job_name"])
        # Not a failure yet: a forgotten job most likely finished, so its outputs decide
        # (the checker applies the retry policy, as a `lost` failure, only if they are absent).
        await self.store.mark_lost(attempt["id"], reason)
        self.wake.checker.set()

    async def _decide_failed(self, failed: list[tuple[dict[str, Any], JobStatus]]) -> list:
        """The retry decisions for attempts this poll saw fail, from the answer itself (the
        store does not have it yet) and the job's counters."""
        context = await self.store.failure_context(a["id"] for a, _ in failed)
        items = []
        for attempt, s in failed:
            ctx = context.get(attempt["id"])
            if ctx is None:
                continue
            ctx = {**ctx, "exit_code": s.exit_code,
                   "memory": ctx["memory"] if ctx["memory"] is not None else s.memory,
                   "vcpus": ctx["vcpus"] if ctx["vcpus"] is not None else s.vcpus}
            items.append((ctx, classify(s.status_reason, s.container_reason, s.exit_code),
                          s.container_reason or s.status_reason or ""))
        return self.decisions(items)

    def decisions(self, items: list[tuple[dict[str, Any], str, str]]) -> list:
        """(failure context, failure class, detail) -> (job_id, attempt_id, decision) for the
        attempts still current; the retry policy is applied as `failures.decide` says."""
        decisions = []
        for ctx, cls, detail in items:
            attempt_id = ctx["attempt_id"]
            if ctx["current_attempt_id"] != attempt_id:
                continue
            policy = RetryPolicy.merged(self.settings.retry, _json(ctx["retry"]))
            failure = FailedAttempt(cls, detail, ctx["exit_code"], ctx["memory"], ctx["vcpus"],
                                    ctx["timeout"], ctx["spot_failures"], ctx["other_failures"])
            decision = decide(failure, policy)
            decisions.append((ctx["job_id"], attempt_id, decision))
            if ctx.get("state", CHECKING) not in MOVED_BY_ATTEMPT:
                # Cancelled (or decided) meanwhile: the store records the attempt's class but
                # leaves the job alone, so announcing a retry or failure would be false.
                continue
            event = "job_retrying" if type(decision).__name__ == "Retry" else "job_failed"
            self.log.warning(event, attempt_id=attempt_id, failure_class=cls,
                             reason=shorten(decision.reason))
        return decisions

    async def repair_undecided(self) -> int:
        """Start-up sweep: a job whose current attempt is FAILED but which is still in flight
        was left by a crash between recording the answer and deciding (versions before the
        two were one transaction). Nothing polls a terminal attempt, so decide it now, as
        the poll would have."""
        rows = await self.store.undecided_failures()
        items = []
        for row in rows:
            if row["backend_job_id"] is None:      # refused by SubmitJob (submitter._reject)
                cls, detail = SUBMIT_REJECTED, row["status_reason"] or ""
            else:
                cls = classify(row["status_reason"], row["container_reason"], row["exit_code"])
                detail = row["container_reason"] or row["status_reason"] or ""
            items.append((row, cls, detail))
        decisions = self.decisions(items)
        if decisions:
            await self.store.apply_failures(decisions)
            self.wake.submitter.set()
            self.wake.checker.set()
        self.log.info("startup_repaired", undecided=len(rows), decided=len(decisions))
        return len(decisions)


def _json(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None
