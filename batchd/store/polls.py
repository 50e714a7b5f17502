"""The poller's and the checker's side of the store: polls, retry decisions, output checks.

Every method is one transaction over a batch, so a crash at any instant leaves either the
whole batch recorded or none of it. Guards in the WHERE clauses (`current_attempt_id = ?`,
`state IN (...)`) make a late answer about an old attempt, or about a job the user cancelled
meanwhile, a no-op instead of a corruption.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from batchd.failures import GiveUp, Retry
from batchd.store import loop_reads as reads
from batchd.store.base import StoreBase
from batchd.store.loop_reads import _IN_FLIGHT_SQL
from batchshared.model import (
    CANCELLED,
    CHECKING,
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    QUEUED,
    READY,
    WAITING,
)


@dataclass(frozen=True)
class AttemptUpdate:
    attempt_id: int
    job_id: int
    state: str
    status_reason: str | None
    container_reason: str | None
    exit_code: int | None
    log_stream: str | None
    started_at: float | None
    stopped_at: float | None
    runnable_at: float | None
    next_poll_at: float
    changed: bool               # record a transition
    vcpus: float | None = None  # as the backend reports them (fills in job definition defaults)
    memory: int | None = None


class PollQueries(StoreBase):
    # -- poller -------------------------------------------------------------------------------
    async def poll_plan(self, now: float, limit: int, *, fill_to: int = 1,
                        fill_until: float | None = None) -> tuple[list[dict[str, Any]],
                                                                   float | None]:
        """`attempts_due()`, and when the first active attempt not among them is due (None:
        none left), in one round trip: what a poller cycle needs."""
        return await self.read_with(reads.poll_plan, now, limit, fill_to, fill_until)

    async def attempts_due(self, now: float, limit: int, *, fill_to: int = 1,
                           fill_until: float | None = None) -> list[dict[str, Any]]:
        """Active attempts due at `now` (soonest first), then, if any, topped up to a
        multiple of `fill_to` with those due next, up to `fill_until`."""
        due, _ = await self.poll_plan(now, limit, fill_to=fill_to, fill_until=fill_until)
        return due

    async def next_poll_time(self) -> float | None:
        _, at = await self.poll_plan(0.0, 0)
        return at

    async def apply_poll(self, updates: Sequence[AttemptUpdate],
                         missing: Sequence[tuple[int, float]],
                         failures: Sequence[tuple[int, int, Retry | GiveUp]] = ()) -> None:
        """Record one DescribeJobs batch: attempt fields, job mirror states, transitions, and
        the retry decisions (job_id, attempt_id, decision) for attempts it reports FAILED,
        all in one transaction: recorded apart, a crash between the two left a FAILED
        attempt whose job nothing would ever move again (a terminal attempt is not polled)."""
        now = time.time()
        async with self.batch() as batch:
            batch.defer_many(
                "UPDATE attempts SET state = ?, status_reason = ?, container_reason = ?, "
                "exit_code = ?, log_stream = coalesce(?, log_stream), "
                "started_at = coalesce(?, started_at), stopped_at = coalesce(?, stopped_at), "
                "runnable_at = coalesce(runnable_at, ?), next_poll_at = ?, missing_polls = 0, "
                "vcpus = coalesce(vcpus, ?), memory = coalesce(memory, ?) WHERE id = ?",
                [(u.state, u.status_reason, u.container_reason, u.exit_code, u.log_stream,
                  u.started_at, u.stopped_at, u.runnable_at, u.next_poll_at, u.vcpus, u.memory,
                  u.attempt_id) for u in updates])
            active = [u for u in updates if u.changed and u.state in IN_FLIGHT]
            batch.defer_many(
                f"UPDATE jobs SET state = ?, updated_at = ? WHERE current_attempt_id = ? "
                f"AND state IN ({_IN_FLIGHT_SQL})",
                [(u.state, now, u.attempt_id) for u in active])
            done = [u for u in updates if u.changed and u.state == "SUCCEEDED"]
            batch.defer_many(
                f"UPDATE jobs SET state = '{CHECKING}', next_check_at = 0, updated_at = ? "
                f"WHERE current_attempt_id = ? AND state IN ({_IN_FLIGHT_SQL})",
                [(now, u.attempt_id) for u in done])
            batch.defer_many(
                "INSERT INTO transitions (attempt_id, state, reason, at) VALUES (?,?,?,?)",
                [(u.attempt_id, u.state, u.status_reason, now) for u in updates if u.changed])
            batch.defer_many(
                "UPDATE attempts SET missing_polls = missing_polls + 1, next_poll_at = ? "
                "WHERE id = ?", [(at, attempt_id) for attempt_id, at in missing])
            _defer_failures(batch, failures, now)

    async def defer_polls(self, items: Sequence[tuple[int, float]]) -> None:
        """(attempt_id, next poll at) after a describe that could not be answered."""
        async with self.batch() as batch:
            batch.defer_many("UPDATE attempts SET next_poll_at = ? WHERE id = ?",
                             [(at, attempt_id) for attempt_id, at in items])

    async def fail_attempt(self, attempt_id: int, reason: str,
                           decided: tuple[int, Retry | GiveUp] | None = None) -> None:
        """An attempt that ended without the backend saying so (a rejected submit), with the
        retry decision (job_id, decision) in the same transaction (see apply_poll)."""
        now = time.time()
        async with self.batch() as batch:
            batch.defer("UPDATE attempts SET state = 'FAILED', status_reason = ?, "
                        "stopped_at = coalesce(stopped_at, ?) WHERE id = ?",
                        (reason, now, attempt_id))
            batch.defer("INSERT INTO transitions (attempt_id, state, reason, at) "
                        "VALUES (?, 'FAILED', ?, ?)", (attempt_id, reason, now))
            if decided is not None:
                _defer_failures(batch, [(decided[0], attempt_id, decided[1])], now)

    async def mark_lost(self, attempt_id: int, reason: str) -> None:
        """The backend forgot this attempt (most likely after it finished): the attempt is
        FAILED as `lost` and its job goes to CHECKING, so its outputs decide (present ->
        COMPLETED; absent -> the retry policy, as a `lost` failure) whatever the retry budget."""
        now = time.time()
        async with self.transaction() as conn:
            await conn.execute("UPDATE attempts SET state = 'FAILED', failure_class = 'lost', "
                               "status_reason = ?, stopped_at = coalesce(stopped_at, ?) "
                               "WHERE id = ?", (reason, now, attempt_id))
            await conn.execute("INSERT INTO transitions (attempt_id, state, reason, at) "
                               "VALUES (?, 'FAILED', ?, ?)", (attempt_id, reason, now))
            await conn.execute(
                f"UPDATE jobs SET state = '{CHECKING}', next_check_at = 0, updated_at = ? "
                f"WHERE current_attempt_id = ? AND state IN ({_IN_FLIGHT_SQL})",
                (now, attempt_id))

    # -- failures (poller and checker) --------------------------------------------------------
    async def failure_context(self, attempt_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Per attempt: what the retry policy needs (counters, resources, analysis policy)."""
        ids = list(attempt_ids)
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows = await self.read(
                "SELECT t.id AS attempt_id, t.memory, t.vcpus, t.timeout, t.failure_class, "
                "t.status_reason, t.container_reason, t.exit_code, j.id AS job_id, j.state, "
                "j.current_attempt_id, j.spot_failures, j.other_failures, a.retry "
                "FROM attempts t JOIN jobs j ON j.id = t.job_id JOIN analyses a "
                "ON a.workflow_id = j.workflow_id AND a.step = j.step "
                f"WHERE t.id IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r["attempt_id"]: dict(r) for r in rows})
        return out

    async def apply_failures(self, items: Sequence[tuple[int, int, Retry | GiveUp]]) -> None:
        """(job_id, attempt_id, decision). Only the job's current attempt moves the job."""
        async with self.batch() as batch:
            _defer_failures(batch, items, time.time())

    async def undecided_failures(self) -> list[dict[str, Any]]:
        """Current attempts that ended FAILED while their job is still in flight: left by a
        crash between recording an answer and deciding on it (versions that used two
        transactions). Each row carries what `failure_context` does plus the backend id."""
        rows = await self.read(
            "SELECT t.id AS attempt_id, t.backend_job_id, t.memory, t.vcpus, t.timeout, "
            "t.failure_class, t.status_reason, t.container_reason, t.exit_code, "
            "j.id AS job_id, j.state, j.current_attempt_id, j.spot_failures, "
            "j.other_failures, a.retry FROM jobs j JOIN attempts t ON t.id = j.current_attempt_id "
            "JOIN analyses a ON a.workflow_id = j.workflow_id AND a.step = j.step "
            f"WHERE j.state IN ({_IN_FLIGHT_SQL}) AND t.state = 'FAILED'")
        return [dict(r) for r in rows]

    # -- output checker -----------------------------------------------------------------------
    # The partial index, not jobs_by_state + a sort of every READY job (10,000 at a submit).
    JOBS_TO_CHECK_SQL = (
        "SELECT id, state, outputs, current_attempt_id FROM jobs INDEXED BY jobs_to_check "
        "WHERE state IN ('READY', 'CHECKING') AND next_check_at <= ? "
        "ORDER BY next_check_at, id LIMIT ?")

    async def jobs_to_check(self, now: float, limit: int) -> list[dict[str, Any]]:
        rows = await self.read(self.JOBS_TO_CHECK_SQL, (now, limit))
        return [dict(r) for r in rows]

    async def next_steps_waiting(self, job_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """job id -> {id, outputs} of the same sample's next step, if it is WAITING."""
        found: dict[int, dict[str, Any]] = {}
        ids = list(job_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for r in await self.read(
                    "SELECT j.id AS previous, n.id, n.outputs FROM jobs j JOIN jobs n "
                    "ON n.workflow_id = j.workflow_id AND n.sample_id = j.sample_id "
                    f"AND n.step = j.step + 1 WHERE j.id IN ({','.join('?' * len(chunk))}) "
                    f"AND n.state = '{WAITING}'", chunk):
                found[r["previous"]] = {"id": r["id"], "outputs": r["outputs"]}
        return found

    async def apply_checks(self, *, complete: Sequence[tuple[int, bool]],
                           absent: Sequence[int], unknown: Sequence[tuple[int, float]]) -> None:
        """complete: (job_id, skipped) -> COMPLETED and release the next step; absent: READY
        jobs whose outputs are missing -> QUEUED (next steps released here included: their
        outputs were checked with their predecessor's); unknown: try again at that time."""
        now = time.time()
        async with self.batch() as batch:
            batch.defer_many(
                f"UPDATE jobs SET state = '{COMPLETED}', skipped = ?, reason = NULL, "
                f"updated_at = ? WHERE id = ? AND state IN ('{READY}', '{CHECKING}')",
                [(int(skipped), now, job_id) for job_id, skipped in complete])
            batch.defer_many(
                f"UPDATE jobs SET state = '{READY}', next_check_at = 0, updated_at = ? "
                f"WHERE state = '{WAITING}' AND (workflow_id, sample_id, step) = "
                f"(SELECT workflow_id, sample_id, step + 1 FROM jobs WHERE id = ? "
                f"AND state = '{COMPLETED}')",
                [(now, job_id) for job_id, _ in complete])
            batch.defer_many(
                f"UPDATE jobs SET state = '{QUEUED}', updated_at = ? "
                f"WHERE id = ? AND state = '{READY}'", [(now, job_id) for job_id in absent])
            batch.defer_many("UPDATE jobs SET next_check_at = ? WHERE id = ?",
                                   [(at, job_id) for job_id, at in unknown])
            ids = [job_id for job_id, _ in complete]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                batch.defer(
                    "UPDATE workflows SET updated_at = ? WHERE id IN (SELECT DISTINCT "
                    f"workflow_id FROM jobs WHERE id IN ({','.join('?' * len(chunk))}))",
                    [now, *chunk])


def _defer_failures(batch: Any, items: Sequence[tuple[int, int, Retry | GiveUp]],
                    now: float) -> None:
    """(job_id, attempt_id, decision) into a batch. Only the job's current attempt, still in
    flight or being checked, moves the job: a decision delivered twice counts once."""
    for job_id, attempt_id, decision in items:
        batch.defer("UPDATE attempts SET failure_class = ? WHERE id = ?",
                    (decision.failure_class, attempt_id))
        guard = (f"WHERE id = ? AND current_attempt_id = ? AND state IN "
                 f"({_IN_FLIGHT_SQL}, '{CHECKING}')")
        if isinstance(decision, Retry):
            batch.defer(
                "UPDATE jobs SET state = 'QUEUED', reason = ?, failure_class = ?, "
                "memory = ?, vcpus = ?, timeout = ?, spot_failures = spot_failures + ?, "
                f"other_failures = other_failures + ?, updated_at = ? {guard}",
                (decision.reason, decision.failure_class, decision.memory,
                 decision.vcpus, decision.timeout, int(decision.spot),
                 int(not decision.spot), now, job_id, attempt_id))
        else:
            state = CANCELLED if decision.cancelled else FAILED
            spot = decision.failure_class == "spot"
            batch.defer(
                f"UPDATE jobs SET state = ?, reason = ?, failure_class = ?, "
                f"spot_failures = spot_failures + ?, other_failures = other_failures + ?,"
                f" updated_at = ? {guard}",
                (state, decision.reason, decision.failure_class, int(spot),
                 int(not spot), now, job_id, attempt_id))
