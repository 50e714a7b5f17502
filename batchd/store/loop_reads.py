"""The loops' reads, as functions of a sqlite3 connection run in the reader's thread.

`StoreBase.read_with` runs one of them in a single round trip to the reader's thread and a
single read transaction: a loop's cycle used to make four or five trips (~150 µs of CPU each,
more than most of these queries cost), and each could see a different moment.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from batchshared.model import BACKEND_ACTIVE, IN_FLIGHT

_IN_FLIGHT_SQL = ",".join(f"'{s}'" for s in IN_FLIGHT)
# The states of the attempts_to_poll partial index (migration 0001), which the poll queries use.
_ACTIVE_SQL = "(" + ",".join(f"'{s}'" for s in BACKEND_ACTIVE) + ")"


@dataclass(frozen=True)
class Claim:
    """A queued job turned into a new attempt, ready to be sent."""

    attempt_id: int
    job_id: int
    request: dict[str, Any]


# A loose index scan over jobs_queued_groups: one seek per pair, however many jobs are
# queued. INDEXED BY because without statistics SQLite preferred jobs_by_state and sorted
# every QUEUED job, twice per call: with 9,000 queued that was 40 % of the pipeline
# benchmark's CPU (tests/unit/test_store.py checks the plan).
QUEUED_GROUPS_SQL = (
    "WITH RECURSIVE g(w, q) AS ("
    " SELECT workflow_id, queue FROM jobs WHERE id = ("
    "  SELECT id FROM jobs INDEXED BY jobs_queued_groups WHERE state = 'QUEUED'"
    "   ORDER BY workflow_id, queue LIMIT 1)"
    " UNION ALL"
    " SELECT j.workflow_id, j.queue FROM g JOIN jobs j ON j.id = coalesce("
    "  (SELECT id FROM jobs INDEXED BY jobs_queued_groups WHERE state = 'QUEUED'"
    "   AND workflow_id = g.w AND queue > g.q ORDER BY queue LIMIT 1),"
    "  (SELECT id FROM jobs INDEXED BY jobs_queued_groups WHERE state = 'QUEUED'"
    "   AND workflow_id > g.w ORDER BY workflow_id, queue LIMIT 1)))"
    " SELECT w AS workflow_id, q AS queue FROM g")


@dataclass(frozen=True)
class SendOutlook:
    unknown: list[Claim]              # may exist in the backend: look up by name first
    resend: list[Claim]               # known not to exist: due for a (re)send
    groups: list[tuple[int, str]]     # (workflow_id, queue) with QUEUED jobs
    in_flight: dict[str, int]         # per queue


def send_outlook(conn: sqlite3.Connection, now: float, limit: int) -> SendOutlook:
    return SendOutlook(attempts_to_send(conn, now, limit, "unknown"),
                       attempts_to_send(conn, now, limit, "pending"),
                       queued_groups(conn), in_flight_by_queue(conn))


def attempts_to_send(conn: sqlite3.Connection, now: float, limit: int,
                     status: str) -> list[Claim]:
    statuses = ("pending", "unsent") if status == "pending" else (status, status)
    rows = conn.execute(
        "SELECT id, job_id, request FROM attempts WHERE state = 'SUBMITTING' "
        "AND submit_status IN (?, ?) AND next_poll_at <= ? ORDER BY next_poll_at LIMIT ?",
        (*statuses, now, limit)).fetchall()
    return [Claim(r["id"], r["job_id"], json.loads(r["request"])) for r in rows]


def queued_groups(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    rows = conn.execute(QUEUED_GROUPS_SQL).fetchall()
    return [(row["workflow_id"], row["queue"]) for row in rows]


def in_flight_by_queue(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(f"SELECT queue, sum(n) AS n FROM job_counts "
                        f"WHERE state IN ({_IN_FLIGHT_SQL}) GROUP BY queue "
                        "HAVING sum(n) > 0").fetchall()
    return {row["queue"]: row["n"] for row in rows}


_DUE_SQL = (
    "SELECT a.id, a.job_id, a.backend_job_id, a.job_name, a.queue, a.state, "
    "a.runnable_at, a.missing_polls, a.memory, a.vcpus, a.timeout, a.next_poll_at, "
    "j.state AS job_state, j.reason AS job_reason, j.current_attempt_id, "
    "j.workflow_id, j.step FROM attempts a JOIN jobs j ON j.id = a.job_id "
    f"WHERE a.state IN {_ACTIVE_SQL} ")


def poll_plan(conn: sqlite3.Connection, now: float, limit: int, fill_to: int,
              fill_until: float | None) -> tuple[list[dict[str, Any]], float | None]:
    rows = conn.execute(_DUE_SQL + "AND a.next_poll_at <= ? ORDER BY a.next_poll_at LIMIT ?",
                        (now, limit)).fetchall() if limit > 0 else []
    short = -len(rows) % fill_to
    if rows and short and fill_until is not None and len(rows) < limit:
        rows += conn.execute(_DUE_SQL + "AND a.next_poll_at > ? AND a.next_poll_at <= ? "
                             "ORDER BY a.next_poll_at LIMIT ?",
                             (now, fill_until, min(short, limit - len(rows)))).fetchall()
    # The attempts taken are the first ones in next_poll_at order, so the next one due is at
    # that offset of the partial index. (Were ties at the boundary ordered differently, the
    # time found would be a taken one's: earlier, one spare cycle, never a late poll.)
    after = conn.execute(f"SELECT next_poll_at FROM attempts INDEXED BY attempts_to_poll "
                         f"WHERE state IN {_ACTIVE_SQL} ORDER BY next_poll_at "
                         "LIMIT 1 OFFSET ?", (len(rows),)).fetchone()
    return [dict(r) for r in rows], (after[0] if after else None)
