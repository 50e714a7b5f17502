"""User actions on existing jobs: cancel and resubmit; and the per-queue and compute figures."""

from __future__ import annotations

import time
from typing import Any

from batchd.errors import Conflict, InvalidInput
from batchd.store.base import StoreBase
from batchd.store.submissions import CLOSE_UNSENT_SQL
from batchshared.model import (
    ACTIVE,
    BACKEND_ACTIVE,
    CANCELLED,
    COMPLETED,
    FAILED,
    FINISHED,
    QUEUED,
    READY,
    SUBMITTING,
    WAITING,
)


def _q(states: tuple[str, ...]) -> str:
    """An SQL literal list of states."""
    return ",".join(f"'{s}'" for s in states)


def _filters(workflow_id: int, state: str | None, sample: str | None, step: int | None,
             states: tuple[str, ...]) -> tuple[str, list[Any]]:
    where = ["j.workflow_id = ?", f"j.state IN ({_q(states)})"]
    params: list[Any] = [workflow_id]
    if state:
        where.append("j.state = ?")
        params.append(state)
    if sample:
        where.append("j.sample_id = (SELECT s.id FROM samples s JOIN workflows w "
                     "ON w.project_id = s.project_id WHERE w.id = ? AND s.name = ?)")
        params += [workflow_id, sample]
    if step is not None:
        where.append("j.step = ?")
        params.append(step)
    return " AND ".join(where), params


class ControlQueries(StoreBase):
    async def cancel_jobs(self, workflow_id: int, *, reason: str, state: str | None = None,
                          sample: str | None = None, step: int | None = None) -> dict[str, int]:
        """Mark matching unfinished jobs CANCELLED. Their attempts still alive in the backend
        are made due for polling at once: the poller sends CancelJob/TerminateJob for attempts
        whose job is CANCELLED (so a crash cannot forget a cancellation)."""
        now = time.time()
        where, params = _filters(workflow_id, state, sample, step,
                                 (WAITING, *ACTIVE))
        async with self.transaction() as conn:
            rows = await conn.fetchall(f"SELECT j.id, j.current_attempt_id, j.state FROM jobs j "
                                       f"WHERE {where}", params)
            await conn.executemany(
                f"UPDATE jobs SET state = '{CANCELLED}', reason = ?, failure_class = "
                f"'cancelled', updated_at = ? WHERE id = ?",
                [(f"cancelled by user: {reason}", now, r["id"]) for r in rows])
            in_backend = [r["current_attempt_id"] for r in rows if r["state"] in BACKEND_ACTIVE]
            # Not sent yet (throttled, or waiting its turn): closed now, never sent. A send in
            # progress has already marked its attempt 'unknown', which this leaves alone.
            await conn.executemany(CLOSE_UNSENT_SQL, [(r["current_attempt_id"],) for r in rows
                                                      if r["state"] == SUBMITTING])
            await conn.executemany("UPDATE attempts SET next_poll_at = 0 WHERE id = ?",
                                   [(a,) for a in in_backend])
        return {"cancelled": len(rows), "in_backend": len(in_backend)}

    async def resubmit_jobs(self, workflow_id: int, *, state: str | None = None,
                            sample: str | None = None, step: int | None = None,
                            memory: int | None = None, vcpus: float | None = None,
                            queue: str | None = None, timeout: int | None = None,
                            force: bool = False) -> int:
        """Give given-up (or, with force, completed) jobs a fresh retry budget and new
        resources. A job whose earlier step is not complete waits for it again."""
        row = await self.read_one("SELECT submitted_at FROM workflows WHERE id = ?",
                                  (workflow_id,))
        if row is None or row["submitted_at"] is None:
            raise Conflict("this workflow has not been submitted yet; use `batchctl submit`")
        states = (FAILED, CANCELLED, COMPLETED) if force else (FAILED, CANCELLED)
        if state and state not in states:
            raise InvalidInput(f"only jobs in {', '.join(states)} can be resubmitted"
                               + ("" if force else " (add --force to re-run COMPLETED jobs)"))
        where, params = _filters(workflow_id, state, sample, step, states)
        now = time.time()
        async with self.transaction() as conn:
            rows = await conn.fetchall(
                f"SELECT j.id, j.state, j.sample_id, j.step, (j.step = 0 OR EXISTS (SELECT 1 "
                f"FROM jobs p WHERE p.workflow_id = j.workflow_id AND p.sample_id = j.sample_id "
                f"AND p.step = j.step - 1 AND p.state = '{COMPLETED}')) AS ready FROM jobs j "
                f"WHERE {where}", params)
            updates = []
            for r in rows:
                if r["state"] == COMPLETED:
                    new_state = QUEUED  # forced: run even though the outputs exist
                else:
                    new_state = READY if r["ready"] else WAITING
                updates.append((new_state, memory, memory, vcpus, vcpus, timeout, timeout,
                                queue, queue, now, r["id"]))
            await conn.executemany(
                "UPDATE jobs SET state = ?, memory = CASE WHEN ? IS NULL THEN memory ELSE ? END,"
                " vcpus = CASE WHEN ? IS NULL THEN vcpus ELSE ? END,"
                " timeout = CASE WHEN ? IS NULL THEN timeout ELSE ? END,"
                " queue = CASE WHEN ? IS NULL THEN queue ELSE ? END,"
                " spot_failures = 0, other_failures = 0, skipped = 0, next_check_at = 0,"
                " reason = 'resubmitted by user', failure_class = NULL, updated_at = ? "
                "WHERE id = ?", updates)
            # Later steps of a re-run sample wait for it again (their outputs are re-checked).
            await conn.executemany(
                f"UPDATE jobs SET state = '{WAITING}', updated_at = ? WHERE workflow_id = ? "
                f"AND sample_id = ? AND step > ? AND state IN ({_q(FINISHED)})",
                [(now, workflow_id, r["sample_id"], r["step"]) for r in rows])
        return len(rows)

    async def compute_spent(self, workflow_id: int) -> dict[str, float]:
        """vCPU-hours and GiB-hours of attempts that ran, split into useful (the attempt that
        completed its job) and wasted (every other attempt)."""
        now = time.time()
        rows = await self.read(
            "SELECT (a.id = j.current_attempt_id AND j.state = 'COMPLETED') AS useful, "
            "sum((coalesce(a.stopped_at, ?) - a.started_at) * coalesce(a.vcpus, 0)) AS cpu_s, "
            "sum((coalesce(a.stopped_at, ?) - a.started_at) * coalesce(a.memory, 0) / 1024.0) "
            "AS gib_s FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE j.workflow_id = ? AND a.started_at IS NOT NULL GROUP BY 1",
            (now, now, workflow_id))
        out = {"useful_vcpu_hours": 0.0, "wasted_vcpu_hours": 0.0, "useful_gib_hours": 0.0,
               "wasted_gib_hours": 0.0}
        for r in rows:
            kind = "useful" if r["useful"] else "wasted"
            out[f"{kind}_vcpu_hours"] = round((r["cpu_s"] or 0) / 3600, 4)
            out[f"{kind}_gib_hours"] = round((r["gib_s"] or 0) / 3600, 4)
        return out

    async def queue_counts(self) -> dict[str, dict[str, int]]:
        rows = await self.read(f"SELECT queue, state, sum(n) AS n FROM job_counts "
                               f"WHERE state IN ({_q((*ACTIVE,))}) GROUP BY queue, state "
                               "HAVING sum(n) > 0")
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["queue"], {})[r["state"]] = r["n"]
        for r in await self.read("SELECT DISTINCT queue FROM analyses"):
            out.setdefault(r["queue"], {})
        return out

    # -- stuck jobs -----------------------------------------------------------------------
    async def runnable_attempts(self) -> list[dict[str, Any]]:
        rows = await self.read(
            "SELECT a.id, a.job_id, a.queue, a.vcpus, a.memory, a.status_reason, a.runnable_at "
            "FROM attempts a JOIN jobs j ON j.id = a.job_id AND j.current_attempt_id = a.id "
            "WHERE a.state = 'RUNNABLE' AND j.state = 'RUNNABLE'")
        return [dict(r) for r in rows]

    async def recent_runnable_waits(self, window: float = 6 * 3600,
                                    per_queue: int = 1000) -> dict[str, list[float]]:
        """Per queue: how long attempts that started recently had waited RUNNABLE (the
        `per_queue` latest: a median needs no more, and 100,000 jobs started within the
        window were all loaded into Python once a minute)."""
        rows = await self.read(
            "SELECT queue, wait FROM (SELECT queue, started_at - runnable_at AS wait, "
            "row_number() OVER (PARTITION BY queue ORDER BY started_at DESC) AS n "
            "FROM attempts WHERE started_at > ? AND runnable_at IS NOT NULL) WHERE n <= ?",
            (time.time() - window, per_queue))
        out: dict[str, list[float]] = {}
        for r in rows:
            out.setdefault(r["queue"], []).append(max(r["wait"], 0.0))
        return out

    async def set_stuck(self, flagged: list[tuple[int, str]], *, clear_others: bool) -> None:
        async with self.transaction() as conn:
            if clear_others:
                await conn.execute("UPDATE jobs SET stuck_reason = NULL "
                                   "WHERE stuck_reason IS NOT NULL")
            await conn.executemany("UPDATE jobs SET stuck_reason = ? WHERE id = ?",
                                   [(reason, job_id) for job_id, reason in flagged])

    async def poll_now(self, attempt_ids: list[int]) -> None:
        async with self.transaction() as conn:
            await conn.executemany("UPDATE attempts SET next_poll_at = 0 WHERE id = ?",
                                   [(a,) for a in attempt_ids])
