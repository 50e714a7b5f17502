"""The submitter's side of the store: claiming QUEUED work and recording SubmitJob outcomes.

Every method is one transaction over a batch, so a crash at any instant leaves either the
whole batch recorded or none of it. An attempt is durable (SUBMITTING, 'unsent') before
anything is sent and is marked 'unknown' just before its SubmitJob; the guards in the WHERE
clauses (`state = 'SUBMITTING'`, `submit_status IN (...)`) keep a job the user cancelled
meanwhile from being sent, and make a late or repeated answer a no-op.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from batchd.store import loop_reads as reads
from batchd.store.base import StoreBase
from batchd.store.loop_reads import Claim, SendOutlook
from batchshared.model import CANCELLED, SUBMITTING

# An attempt that was never sent, closed because its job was cancelled: nothing exists in the
# backend, so there is nothing to cancel there. Only 'unsent'/'pending' attempts qualify: an
# 'unknown' one may exist and is looked up by name first (then cancelled there, or closed here).
CLOSE_UNSENT_SQL = ("UPDATE attempts SET state = 'CANCELLED', submit_status = NULL, "
                    "status_reason = 'cancelled before it was sent: nothing was submitted', "
                    "failure_class = 'cancelled' WHERE id = ? AND state = 'SUBMITTING' "
                    "AND submit_status IN ('unsent', 'pending')")


class SubmissionQueries(StoreBase):
    async def send_outlook(self, now: float, limit: int) -> SendOutlook:
        """What the submitter's cycle needs, in one round trip and one snapshot."""
        return await self.read_with(reads.send_outlook, now, limit)

    async def in_flight_by_queue(self) -> dict[str, int]:
        return await self.read_with(reads.in_flight_by_queue)

    QUEUED_GROUPS_SQL = reads.QUEUED_GROUPS_SQL     # (its query plan is tested)

    async def queued_groups(self) -> list[tuple[int, str]]:
        """(workflow_id, queue) pairs with QUEUED jobs, by workflow."""
        return await self.read_with(reads.queued_groups)

    async def claim(self, workflow_id: int, queue: str, limit: int,
                    plan: Callable[[dict[str, Any]], dict[str, Any]],
                    depth_first: bool = False) -> list[Claim]:
        """Turn up to `limit` QUEUED jobs into SUBMITTING attempts, earlier steps first
        (later steps with `depth_first`). `plan(row)` builds the request (job name,
        resources, parameters...). Durable before anything is sent."""
        now = time.time()
        async with self.batch() as batch:
            rows = [dict(r) for r in await batch.fetch(
                "SELECT j.id, j.step, j.attempts, j.parameters, j.command, j.environment, "
                "j.vcpus, j.memory, j.timeout, j.queue, s.name AS sample, w.name AS workflow, "
                "w.base_dir, p.name AS project, a.job_definition, a.vcpus AS a_vcpus, "
                "a.memory AS a_memory, a.timeout AS a_timeout FROM jobs j "
                "JOIN samples s ON s.id = j.sample_id JOIN workflows w ON w.id = j.workflow_id "
                "JOIN projects p ON p.id = w.project_id "
                "JOIN analyses a ON a.workflow_id = j.workflow_id AND a.step = j.step "
                "WHERE j.workflow_id = ? AND j.queue = ? AND j.state = 'QUEUED' "
                f"ORDER BY j.step {'DESC' if depth_first else 'ASC'}, j.id LIMIT ?",
                (workflow_id, queue, limit))]
            requests = [(row, plan(row)) for row in rows]
            batch.defer_many(
                "INSERT INTO attempts (job_id, attempt, job_name, queue, job_definition, "
                "vcpus, memory, timeout, request, state, submit_status, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,'unsent',?)",
                [(row["id"], row["attempts"] + 1, request["job_name"], request["queue"],
                  request["job_definition"], request["vcpus"], request["memory"],
                  request["timeout"], json.dumps(request), SUBMITTING, now)
                 for row, request in requests])
            # One query for the new ids (job names are unique) instead of one INSERT per row
            # for its lastrowid: each statement is a round trip to the database thread.
            ids: dict[str, int] = {}
            names = [request["job_name"] for _, request in requests]
            for start in range(0, len(names), 500):
                chunk = names[start:start + 500]
                for r in await batch.fetch(
                        f"SELECT id, job_name FROM attempts WHERE job_name IN "
                        f"({','.join('?' * len(chunk))})", chunk):
                    ids[r["job_name"]] = r["id"]
            claims = [Claim(ids[request["job_name"]], row["id"], request)
                      for row, request in requests]
            batch.defer_many(
                "UPDATE jobs SET state = ?, attempts = attempts + 1, current_attempt_id = ?, "
                "updated_at = ? WHERE id = ?",
                [(SUBMITTING, c.attempt_id, now, c.job_id) for c in claims])
            batch.defer_many(
                "INSERT INTO transitions (attempt_id, state, at) VALUES (?,?,?)",
                [(c.attempt_id, SUBMITTING, now) for c in claims])
        return claims

    async def attempts_to_send(self, now: float, limit: int, status: str) -> list[Claim]:
        """SUBMITTING attempts due for a (re)send ('pending': 'unsent', or 'pending' as
        written by earlier versions) or a reconciliation ('unknown')."""
        return await self.read_with(reads.attempts_to_send, now, limit, status)

    async def mark_all_submitting_unknown(self, settle_until: float = 0.0) -> int:
        """At start-up nobody knows whether an in-progress SubmitJob reached AWS. Only
        'unsent' attempts are known not to exist (never sent, found absent or refused, and
        not sent since: the submitter marks an attempt 'unknown' before each send), so they
        keep their status: otherwise a daemon restarted often would look them all up again
        every time. ('pending' is what earlier versions wrote, sent or not: unknown.)

        ListJobs lags SubmitJob, so a lookup is trusted only once the send has settled. Every
        send of the crashed daemon happened before this start, so `settle_until` (now plus
        the settle delay) is late enough for all of them; an 'unknown' attempt whose settle
        time is later still (a lost answer) keeps it. Keeping the time given at the mark was
        not enough: attempts are marked in groups ahead of their sends, and a send waiting
        for the rate budget can come long after its mark; sent just before the crash, it
        was looked up at once, not listed yet, found absent and sent again."""
        async with self.transaction() as conn:
            cur = await conn.execute("UPDATE attempts SET next_poll_at = CASE WHEN "
                                     "submit_status = 'unknown' THEN "
                                     "MAX(COALESCE(next_poll_at, 0), ?) ELSE ? END, "
                                     "submit_status = 'unknown' WHERE state = 'SUBMITTING' "
                                     "AND submit_status IS NOT 'unsent'",
                                     (settle_until, settle_until))
            return cur.rowcount

    async def take_for_sending(self, attempt_ids: Sequence[int], until: float) -> set[int]:
        """Mark attempts 'unknown' (they may exist from now on) just before their SubmitJob, but
        only those still known not to exist ('unsent', or 'pending' from earlier versions):
        the ids returned may be sent, and nothing else. An attempt recorded, or taken by
        another send, since its caller read it is left alone: exactly once does not rest on
        how fresh the caller's view was."""
        async with self.batch() as batch:
            rows = await batch.fetch(
                f"SELECT a.id, j.state AS job_state FROM attempts a JOIN jobs j ON j.id = a.job_id "
                f"WHERE a.id IN ({','.join('?' * len(attempt_ids))}) "
                "AND a.state = 'SUBMITTING' AND a.submit_status IN ('unsent', 'pending')",
                attempt_ids)
            # A job cancelled after its attempt was recorded (or whose unknown attempt was
            # then found absent) must never be sent: close the attempt instead, in this same
            # transaction, so no later read can take it either.
            taken = {r["id"] for r in rows if r["job_state"] != CANCELLED}
            closed = [r["id"] for r in rows if r["job_state"] == CANCELLED]
            batch.defer_many(CLOSE_UNSENT_SQL, [(a,) for a in closed])
            batch.defer_many("UPDATE attempts SET submit_status = 'unknown', next_poll_at = ? "
                             "WHERE id = ?", [(until, a) for a in taken])
        return taken

    async def set_submit_status(self, items: Sequence[tuple[int, str, float]]) -> None:
        """(attempt_id, 'pending'|'unsent'|'unknown', next try at)."""
        async with self.batch() as batch:
            batch.defer_many(
                "UPDATE attempts SET submit_status = ?, next_poll_at = ? "
                "WHERE id = ? AND state = 'SUBMITTING'",
                [(status, at, attempt_id) for attempt_id, status, at in items])

    # INDEXED BY: the planner took jobs_by_state and read every SUBMITTED job (thousands while
    # submitting at 400 TPS) once per 20 answers recorded.
    STILL_CURRENT_SQL = ("SELECT current_attempt_id FROM jobs INDEXED BY jobs_by_current_attempt "
                         "WHERE current_attempt_id IN ({}) AND state = 'SUBMITTED'")

    async def record_submitted(self, items: Sequence[tuple[int, str]],
                               first_poll_at: float) -> list[tuple[int, str]]:
        """(attempt_id, backend job id). Returns those whose job was cancelled meanwhile, so
        the caller cancels them in the backend too."""
        now = time.time()
        async with self.batch() as batch:
            batch.defer_many(
                "UPDATE attempts SET backend_job_id = ?, state = 'SUBMITTED', "
                "submit_status = NULL, submitted_at = ?, next_poll_at = ? "
                "WHERE id = ? AND state = 'SUBMITTING'",
                [(backend_id, now, first_poll_at, attempt_id) for attempt_id, backend_id in items])
            batch.defer_many(
                "UPDATE jobs SET state = 'SUBMITTED', updated_at = ? "
                "WHERE current_attempt_id = ? AND state = 'SUBMITTING'",
                [(now, attempt_id) for attempt_id, _ in items])
            # Jobs the update did not reach were cancelled (or resubmitted) meanwhile.
            ids = [attempt_id for attempt_id, _ in items]
            current = {r["current_attempt_id"] for r in await batch.fetch(
                self.STILL_CURRENT_SQL.format(",".join("?" * len(ids))), ids)} if ids else set()
            orphans = [(a, b) for a, b in items if a not in current]
            batch.defer_many("INSERT INTO transitions (attempt_id, state, at) "
                             "VALUES (?, 'SUBMITTED', ?)", [(a, now) for a, _ in items])
        return orphans
