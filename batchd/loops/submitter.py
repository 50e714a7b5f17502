"""The submitter loop: QUEUED jobs -> attempts -> SubmitJob, exactly once per attempt name.

Order of operations per attempt (the exactly-once protocol):
1. In one transaction, the attempt is recorded with its deterministic job name (SUBMITTING,
   submit_status 'unsent') before anything is sent.
2. SubmitJob is sent (the backend applies the account-wide rate budget).
3. The returned id is recorded. If the answer was an error that proves nothing was created
   (throttled, rejected), the attempt becomes 'unsent' (resent later) or fails. If the answer
   was lost (timeout, reset, 5xx), it becomes 'unknown' and is never resent before the
   backend has been asked for a job of that name (`find_by_name`). Just before each send the
   attempt is marked 'unknown', in a transaction that takes it only if it is still 'unsent'
   (proven absent and not being sent): what was read before is never trusted for that.
   After a crash every SUBMITTING attempt that is not 'unsent' is 'unknown' (looked up no
   sooner than SETTLE_SECONDS after the restart, hence after its send, as without a crash),
   and each lookup's answer is recorded as soon as it comes, so a daemon restarted again and
   again still makes progress.
Per-queue caps bound the jobs in flight; work is taken round-robin across workflows so one
50,000-job project cannot starve a 10-job one. While AWS refuses batchd's credentials for
SubmitJob (or ListJobs) nothing more is sent (looked up) until the back-off says so, and
then one attempt at a time, whose answer decides (backend_auth.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from batchd.backends.auth import AuthWatch
from batchd.backends.base import Backend, SubmitRequest
from batchd.config.settings import Settings
from batchd.errors import BackendError, SubmitOutcomeUnknown
from batchd.failures import SUBMIT_REJECTED, FailedAttempt, GiveUp, RetryPolicy, decide
from batchd.logs import get_logger
from batchd.naming import job_name
from batchd.store import Claim, Store
from batchd.wakeups import Wakeups, pause

BATCH = 100              # attempts claimed per round: also the most a crash can leave unknown
SETTLE_SECONDS = 5.0     # ListJobs may lag SubmitJob a little: wait before concluding "absent"
PIPELINE = 2             # batches being sent at once
RECORD_EVERY = 20        # answers recorded per transaction while a batch is being sent
MARK_AHEAD = 20          # attempts marked 'unknown' (may exist) per transaction before sending


def build_request(row: dict[str, Any]) -> dict[str, Any]:
    """The SubmitJob request for a claimed job row (see Store.claim)."""
    attempt = row["attempts"] + 1
    tags = {"batchd:project": row["project"], "batchd:workflow": row["workflow"],
            "batchd:sample": row["sample"], "batchd:step": str(row["step"]),
            "batchd:attempt": str(attempt)}
    return {
        "job_name": job_name(row["project"], row["workflow"], row["sample"], row["step"],
                             attempt),
        "queue": row["queue"], "job_definition": row["job_definition"],
        "parameters": _loads(row["parameters"]) or {},
        "vcpus": row["vcpus"] if row["vcpus"] is not None else row["a_vcpus"],
        "memory": row["memory"] if row["memory"] is not None else row["a_memory"],
        "timeout": row["timeout"] if row["timeout"] is not None else row["a_timeout"],
        "command": _loads(row["command"]), "environment": _loads(row["environment"]) or {},
        "tags": tags, "workdir": row["base_dir"],
    }


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def to_submit_request(request: dict[str, Any]) -> SubmitRequest:
    return SubmitRequest(
        job_name=request["job_name"], queue=request["queue"],
        job_definition=request["job_definition"], parameters=request["parameters"],
        vcpus=request["vcpus"], memory=request["memory"], command=request["command"],
        environment=request["environment"], timeout=request["timeout"],
        tags=request["tags"], workdir=request["workdir"])


class Submitter:
    def __init__(self, store: Store, backend: Backend, settings: Settings, wake: Wakeups,
                 stop: asyncio.Event) -> None:
        self.store, self.backend, self.settings = store, backend, settings
        self.wake, self.stop = wake, stop
        self.log = get_logger(loop="submitter")
        self._rotation = 0
        # attempt id -> batches of this process holding it (a set lost the second batch's
        # claim when the first finished: the attempt, still being sent, was looked up, found
        # absent and sent again by a third batch)
        self._sending: Counter[int] = Counter()
        self._sem = asyncio.Semaphore(max(1, settings.submit_concurrency))
        self.auth: AuthWatch | None = backend.auth

    async def run(self) -> None:
        # Up to PIPELINE batches are sent at once: the next batch is claimed while the
        # previous one is still waiting for its last answers, so the rate budget never idles
        # between batches (with one batch at a time ~5 % of it was lost at 45 TPS).
        sending: set[asyncio.Task] = set()
        # One waiter for the stop request: a new one per wait stayed pending (and registered
        # on the event) until shutdown, one more for every batch sent.
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                for task in [t for t in sending if t.done()]:
                    sending.discard(task)
                    task.result()  # a crash in a send crashes the loop, never silently
                held = self._held()
                if held is not None and (held > 0 or sending):
                    # Refused credentials: wait out the back-off (or the probe's answer)
                    # without reading the store or sending anything.
                    if sending:
                        await asyncio.wait(sending | {stopping}, timeout=held or 1.0,
                                           return_when=asyncio.FIRST_COMPLETED)
                    else:
                        await pause(self.wake.submitter, self.stop, held)
                    continue
                if len(sending) < PIPELINE:
                    work = await self.cycle()
                    if work:
                        if held is not None:
                            work = work[:1]     # the probe: its answer decides for the rest
                        sending.add(asyncio.create_task(self._send(work)))
                        continue
                if sending:
                    await asyncio.wait(sending | {stopping}, timeout=1.0,
                                       return_when=asyncio.FIRST_COMPLETED)
                else:
                    await pause(self.wake.submitter, self.stop, 1.0)
        finally:
            stopping.cancel()
            # Let sends in progress finish and record their answers (graceful stop); on
            # cancellation they are cancelled too and reconciled by name at the next start.
            if sending:
                await asyncio.gather(*sending, return_exceptions=True)

    def _held(self, operation: str = "SubmitJob") -> float | None:
        """None while AWS takes our credentials for `operation`; else the seconds left of
        the back-off (0: time for one probe)."""
        if self.auth is None or not self.auth.failing(operation):
            return None
        return self.auth.wait(operation)

    async def cycle(self) -> list[Claim]:
        """Reconcile what may exist, then return the next batch to send (resends first)."""
        # One read for the whole cycle (each is a round trip to the database thread).
        outlook = await self.store.send_outlook(time.time(), BATCH)
        # Attempts this process is sending right now look 'unsent'/'unknown' in the store
        # until their answer is recorded: never look them up or send them a second time.
        unknown = [c for c in outlook.unknown if c.attempt_id not in self._sending]
        listing = self._held("ListJobs")
        if listing is not None:
            unknown = [] if listing > 0 else unknown[:1]
        if await self._reconcile(unknown):
            # Stale now (adopted jobs are in flight, absent ones due for a send): read again.
            outlook = await self.store.send_outlook(time.time(), BATCH)
        resend = [c for c in outlook.resend if c.attempt_id not in self._sending]
        if resend:
            return resend
        return await self._claim(outlook.groups, outlook.in_flight)

    async def _claim(self, groups: list[tuple[int, str]],
                     in_flight: dict[str, int]) -> list[Claim]:
        if not groups:
            return []
        room = {q: self.settings.cap_for(q) - in_flight.get(q, 0) for _, q in groups}
        # Round-robin: start where the previous round stopped, give each workflow a fair share.
        start = self._rotation % len(groups)
        self._rotation += 1
        ordered = groups[start:] + groups[:start]
        share = max(1, BATCH // len(ordered))
        claims: list[Claim] = []
        for workflow_id, queue in ordered:
            take = min(share, room[queue], BATCH - len(claims))
            if take <= 0:
                continue
            got = await self.store.claim(workflow_id, queue, take, build_request,
                                         depth_first=self.settings.submit_order == "depth")
            room[queue] -= len(got)
            claims.extend(got)
        return claims

    async def _send(self, claims: list[Claim]) -> None:
        """Send a batch and record the answers in small groups as they arrive, so a job's
        first poll is not held back by the slowest SubmitJob of its batch."""

        marks = _MarkAhead(self.store, claims)

        async def answer(claim: Claim) -> tuple[Claim, str, Any]:
            return (claim, *await self._send_one(claim, marks))

        held = {c.attempt_id for c in claims}
        self._sending.update(held)

        def release(ids) -> None:
            for attempt_id in set(ids) & held:
                held.discard(attempt_id)
                self._sending[attempt_id] -= 1
                if self._sending[attempt_id] <= 0:
                    del self._sending[attempt_id]

        tasks = [asyncio.ensure_future(answer(c)) for c in claims]
        arrived: list[tuple[Claim, str, Any]] = []
        try:
            for next_answer in asyncio.as_completed(tasks):
                arrived.append(await next_answer)
                if len(arrived) >= RECORD_EVERY:
                    await self._record(arrived)
                    release(c.attempt_id for c, _, _ in arrived)
                    arrived = []
            if arrived:
                await self._record(arrived)
        finally:
            for task in tasks:
                task.cancel()
            release(c.attempt_id for c in claims)

    async def _record(self, answers: list[tuple[Claim, str, Any]]) -> None:
        submitted, retry_later, rejected = [], [], []
        now = time.time()
        for claim, outcome, value in answers:
            if outcome == "ok":
                submitted.append((claim.attempt_id, value))
            elif outcome == "rejected":
                rejected.append((claim, value))
            elif outcome == "skipped":
                continue                     # not ours to send: whoever owns it records it
            else:
                # 'pending': refused (throttled...) so not created, and no longer in flight
                delay = SETTLE_SECONDS if outcome == "unknown" else 2.0
                status = "unknown" if outcome == "unknown" else "unsent"
                retry_later.append((claim.attempt_id, status, now + delay))
        first_poll = now + min(self.settings.effective_poll_interval, 5.0)
        if submitted:
            orphans = await self.store.record_submitted(submitted, first_poll)
            for _attempt_id, backend_id in orphans:
                await self._cancel_orphan(backend_id)
            self.wake.poller.set()
        if retry_later:
            await self.store.set_submit_status(retry_later)
        for claim, error in rejected:
            await self._reject(claim, error)

    async def _send_one(self, claim: Claim, marks: _MarkAhead) -> tuple[str, Any]:
        request = claim.request
        log = self.log.bind(job_name=request["job_name"], queue=request["queue"])
        async with self._sem:
            # From here the job may exist: a crash now must be followed by a lookup.
            if not await marks.before_send(claim.attempt_id):
                # Recorded, or taken by another send, since it was read: never send it twice.
                log.info("submit_skipped", attempt_id=claim.attempt_id)
                return "skipped", None
            if (self._held() or 0.0) > 0:
                # Refused by another call of this batch meanwhile: not sent, so resendable.
                return "pending", None
            try:
                job_id = await self.backend.submit(to_submit_request(request))
            except SubmitOutcomeUnknown as exc:
                log.warning("submit_outcome_unknown", error=exc.message)
                return "unknown", None
            except BackendError as exc:
                if exc.retryable:
                    # A refusal of credentials is logged once (backend_auth_failed).
                    (log.debug if exc.details.get("auth") else log.info)(
                        "submit_deferred", kind=exc.kind, error=exc.message)
                    return "pending", None
                log.warning("submit_rejected", error=exc.message)
                return "rejected", exc
        log.info("job_submitted", job_id=job_id, **{k.split(":")[1]: v
                                                   for k, v in request["tags"].items()})
        return "ok", job_id

    async def _reconcile(self, claims: list[Claim]) -> bool:
        """Attempts that may exist in the backend: adopt them, or mark them safe to send.

        Each answer is recorded as soon as it comes: a crash in the middle of a batch keeps
        what was learnt (otherwise a daemon restarted more often than a batch of ListJobs
        takes would look the same names up forever and never submit anything)."""
        if not claims:
            return False

        async def look(claim: Claim) -> None:
            request = claim.request
            async with self._sem:
                try:
                    found = await self.backend.find_by_name(request["job_name"], request["queue"])
                except BackendError as exc:
                    (self.log.debug if exc.details.get("auth") else self.log.info)(
                        "reconcile_deferred", job_name=request["job_name"], error=exc.message)
                    await self.store.set_submit_status(
                        [(claim.attempt_id, "unknown", time.time() + SETTLE_SECONDS)])
                    return
            if found is not None:
                orphans = await self.store.record_submitted(
                    [(claim.attempt_id, found.job_id)],
                    time.time() + min(self.settings.effective_poll_interval, 5.0))
                self.log.info("submit_reconciled", job_name=request["job_name"],
                              job_id=found.job_id, outcome="adopted")
                for _, backend_id in orphans:
                    await self._cancel_orphan(backend_id)
                self.wake.poller.set()
            else:
                await self.store.set_submit_status([(claim.attempt_id, "unsent", time.time())])
                self.log.info("submit_reconciled", job_name=request["job_name"],
                              outcome="not_found_resending")

        await asyncio.gather(*(look(c) for c in claims))
        return True

    async def _reject(self, claim: Claim, error: BackendError) -> None:
        failure = FailedAttempt(SUBMIT_REJECTED, error.message, None, None, None, None, 0, 0)
        decision = decide(failure, RetryPolicy())
        assert isinstance(decision, GiveUp)
        # One transaction: a crash between the two left the job SUBMITTING with a FAILED
        # attempt, which nothing would look at again.
        await self.store.fail_attempt(claim.attempt_id, error.message,
                                      (claim.job_id, decision))
        self.log.warning("job_failed", job_name=claim.request["job_name"],
                         failure_class=SUBMIT_REJECTED, reason=decision.reason)

    async def _cancel_orphan(self, backend_id: str) -> None:
        """The user cancelled the job while its SubmitJob was in flight: cancel it now."""
        try:
            await self.backend.cancel(backend_id, "cancelled by batchd user", terminate=True)
        except BackendError as exc:
            self.log.warning("orphan_cancel_failed", job_id=backend_id, error=exc.message)


class _MarkAhead:
    """Marks a batch's attempts 'unknown' (they may exist from now on) in groups, in send
    order, each group before the first of its attempts is sent. Only attempts still 'unsent'
    in the store are marked, and only those are sent (`before_send` says which): the batch
    was read a moment earlier, and an attempt may have been sent and recorded meanwhile.

    One transaction per attempt was a quarter of the daemon's SQL at a 400 TPS budget. A
    group costs at most MARK_AHEAD lookups by name after a crash for attempts that were marked
    but never sent; lookups are recorded one by one, so a daemon restarted again and again
    still makes progress once it stays up SETTLE_SECONDS (tests/e2e/test_crash_safety.py)."""

    def __init__(self, store: Store, claims: list[Claim]) -> None:
        self.store = store
        self._order = [c.attempt_id for c in claims]
        self._next = 0                  # index of the first attempt in _order not yet marked
        self._marked: set[int] = set()
        self._taken: set[int] = set()   # marked by this batch: may be sent
        self._lock = asyncio.Lock()

    async def before_send(self, attempt_id: int) -> bool:
        """Mark (with its group) before the send; True if this attempt may be sent. True at
        most once per attempt: the same attempt twice in one batch is sent once."""
        if attempt_id in self._marked:
            return self._use(attempt_id)
        async with self._lock:
            if attempt_id in self._marked:
                return self._use(attempt_id)
            group = [attempt_id]
            while len(group) < MARK_AHEAD and self._next < len(self._order):
                candidate = self._order[self._next]
                self._next += 1
                if candidate not in self._marked and candidate != attempt_id:
                    group.append(candidate)
            self._taken |= await self.store.take_for_sending(group,
                                                             time.time() + SETTLE_SECONDS)
            self._marked.update(group)
        return self._use(attempt_id)

    def _use(self, attempt_id: int) -> bool:
        if attempt_id in self._taken:
            self._taken.discard(attempt_id)
            return True
        return False
