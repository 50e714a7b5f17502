"""Projects, samples, workflows and the read side (status, dashboard, job listings)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from batchd.errors import Conflict, NotFound
from batchd.store.base import StoreBase
from batchshared.model import READY, WAITING, workflow_status


class ProjectQueries(StoreBase):
    # -- projects -----------------------------------------------------------------------------
    async def create_project(self, *, name: str, columns: Sequence[str], sample_col: str,
                             file_col: str, metadata_filename: str | None,
                             samples: Iterable[tuple[str, str, int, dict[str, str]]],
                             owner_uid: int | None = None, owner_name: str | None = None) -> int:
        """Create a project and all its samples in one transaction: all or nothing."""
        now = time.time()
        async with self.transaction() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO projects (name, owner_uid, owner_name, sample_col, file_col, "
                    "columns, metadata_filename, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    (name, owner_uid, owner_name, sample_col, file_col, json.dumps(list(columns)),
                     metadata_filename, now))
            except sqlite3.IntegrityError:
                raise Conflict(f"project {name!r} already exists; choose another name "
                               "(projects are never overwritten)") from None
            project_id = cast(int, cur.lastrowid)
            await conn.executemany(
                "INSERT INTO samples (project_id, name, file_name, line, metadata) "
                "VALUES (?,?,?,?,?)",
                ((project_id, s_name, s_file, line, json.dumps(meta, ensure_ascii=False))
                 for s_name, s_file, line, meta in samples))
        return project_id

    async def project(self, name: str) -> sqlite3.Row:
        row = await self.read_one("SELECT * FROM projects WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"no project named {name!r}; `batchctl import {name} --metadata "
                           "FILE.csv` creates it")
        return row

    async def projects(self) -> list[dict[str, Any]]:
        rows = await self.read(
            "SELECT p.name, p.created_at, p.owner_name, "
            "(SELECT count(*) FROM samples s WHERE s.project_id = p.id) AS samples, "
            "(SELECT count(*) FROM workflows w WHERE w.project_id = p.id) AS workflows "
            "FROM projects p ORDER BY p.name")
        return [dict(row) for row in rows]

    async def samples(self, project_id: int, chunk: int = 5000) -> list[sqlite3.Row]:
        """Every sample of the project, in id order. Read in chunks: the API's reads share one
        connection (one thread, first come first served) and a 100,000-row fetch in one go
        held every other user's status request behind it for ~0.3 s. Samples never change
        once imported, so the chunks add up to one consistent list."""
        span = await self.read_one("SELECT min(id) AS lo, max(id) AS hi FROM samples "
                                   "WHERE project_id = ?", (project_id,))
        rows: list[sqlite3.Row] = []
        if span is None or span["lo"] is None:
            return rows
        after = span["lo"] - 1
        while after < span["hi"]:
            # `+project_id`: walk the rowids (a project's samples are one insert, adjacent
            # ids) instead of the (project_id, name) index and a sort of the whole project
            # for every chunk.
            part = await self.read("SELECT id, name, file_name, metadata FROM samples "
                                   "WHERE id > ? AND id <= ? AND +project_id = ? "
                                   "ORDER BY id LIMIT ?", (after, span["hi"], project_id, chunk))
            if not part:
                break
            rows += part
            after = part[-1]["id"]
        return rows

    # -- workflows ----------------------------------------------------------------------------
    async def create_workflow(self, *, project_id: int, name: str, definition: dict[str, Any],
                              definition_filename: str | None, base_dir: str | None,
                              analyses: Sequence[dict[str, Any]],
                              jobs: Iterable[tuple[Any, ...]]) -> int:
        """`jobs` rows: (sample_id, step, queue, outputs_json, parameters_json, command_json,
        environment_json). All jobs start WAITING; submit releases step 0."""
        now = time.time()
        async with self.transaction() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO workflows (project_id, name, definition, definition_filename, "
                    "base_dir, steps, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                    (project_id, name, json.dumps(definition), definition_filename, base_dir,
                     len(analyses), now, now))
            except sqlite3.IntegrityError:
                raise Conflict(f"workflow {name!r} already exists in this project; give the "
                               "definition another workflow_name to run it again") from None
            workflow_id = cast(int, cur.lastrowid)
            await conn.executemany(
                "INSERT INTO analyses (workflow_id, step, job_definition, queue, description, "
                "vcpus, memory, timeout, retry) VALUES (?,?,?,?,?,?,?,?,?)",
                [(workflow_id, a["step"], a["job_definition"], a["queue"], a["description"],
                  a["vcpus"], a["memory"], a["timeout"],
                  json.dumps(a["retry"]) if a.get("retry") else None) for a in analyses])
            await conn.executemany(
                "INSERT INTO jobs (workflow_id, sample_id, step, state, queue, outputs, "
                "parameters, command, environment, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                ((workflow_id, sample_id, step, WAITING, queue, outputs, params, command, env,
                  now) for sample_id, step, queue, outputs, params, command, env in jobs))
        return workflow_id

    async def workflow(self, project: str, name: str) -> sqlite3.Row:
        row = await self.read_one(
            "SELECT w.*, p.name AS project_name, p.owner_uid FROM workflows w "
            "JOIN projects p ON p.id = w.project_id WHERE p.name = ? AND w.name = ?",
            (project, name))
        if row is None:
            await self.project(project)  # a clearer message when the project is the problem
            raise NotFound(f"project {project!r} has no workflow named {name!r}; "
                           f"`batchctl create {project} --definition FILE.json` creates one")
        return row

    async def analyses(self, workflow_id: int) -> list[sqlite3.Row]:
        return await self.read("SELECT * FROM analyses WHERE workflow_id = ? ORDER BY step",
                               (workflow_id,))

    async def submit_workflow(self, workflow_id: int) -> int:
        """Release every sample's first step. Idempotent: a second submit releases nothing."""
        now = time.time()
        async with self.transaction() as conn:
            await conn.execute("UPDATE workflows SET submitted_at = coalesce(submitted_at, ?), "
                               "updated_at = ? WHERE id = ?", (now, now, workflow_id))
            cur = await conn.execute(
                "UPDATE jobs SET state = ?, next_check_at = 0, updated_at = ? "
                "WHERE workflow_id = ? AND step = 0 AND state = ?",
                (READY, now, workflow_id, WAITING))
            return cur.rowcount

    # -- read side ----------------------------------------------------------------------------
    async def workflow_status(self, workflow: sqlite3.Row) -> dict[str, Any]:
        rows = await self.read("SELECT step, state, sum(n) AS n FROM job_counts "
                               "WHERE workflow_id = ? GROUP BY step, state HAVING sum(n) > 0",
                               (workflow["id"],))
        analyses = await self.analyses(workflow["id"])
        steps = {a["step"]: {"step": a["step"], "description": a["description"],
                             "job_definition": a["job_definition"], "queue": a["queue"],
                             "counts": {}} for a in analyses}
        totals: dict[str, int] = {}
        for row in rows:
            steps[row["step"]]["counts"][row["state"]] = row["n"]
            totals[row["state"]] = totals.get(row["state"], 0) + row["n"]
        stuck = await self.read_one("SELECT count(*) AS n FROM jobs WHERE workflow_id = ? AND "
                                    "stuck_reason IS NOT NULL", (workflow["id"],))
        return {
            "project": workflow["project_name"], "workflow": workflow["name"],
            "stuck": stuck["n"] if stuck else 0,
            "status": workflow_status(totals, workflow["submitted_at"] is not None),
            "created_at": workflow["created_at"], "submitted_at": workflow["submitted_at"],
            "total": sum(totals.values()), "counts": totals,
            "steps": [steps[k] for k in sorted(steps)],
        }

    async def job_state_counts(self) -> dict[str, int]:
        """Jobs per state over the whole database (daemon status, /metrics), from the counts
        the triggers keep (a GROUP BY over `jobs` read every job at each scrape)."""
        rows = await self.read("SELECT state, sum(n) AS n FROM job_counts GROUP BY state "
                               "HAVING sum(n) > 0")
        return {r["state"]: r["n"] for r in rows}

    async def dashboard(self) -> list[dict[str, Any]]:
        workflows = await self.read(
            "SELECT w.id, w.name, w.submitted_at, w.created_at, w.updated_at, "
            "p.name AS project_name FROM workflows w JOIN projects p ON p.id = w.project_id "
            "ORDER BY p.name, w.name")
        counts: dict[int, dict[str, int]] = {}
        for row in await self.read("SELECT workflow_id, state, sum(n) AS n FROM job_counts "
                                   "GROUP BY workflow_id, state HAVING sum(n) > 0"):
            counts.setdefault(row["workflow_id"], {})[row["state"]] = row["n"]
        result = []
        for wf in workflows:
            c = counts.get(wf["id"], {})
            result.append({"project": wf["project_name"], "workflow": wf["name"],
                           "status": workflow_status(c, wf["submitted_at"] is not None),
                           "total": sum(c.values()), "counts": c,
                           "created_at": wf["created_at"], "submitted_at": wf["submitted_at"],
                           "updated_at": wf["updated_at"]})
        return result

    async def list_jobs(self, workflow_id: int, *, state: str | None = None,
                        sample: str | None = None, step: int | None = None, limit: int = 500,
                        after: int = 0) -> tuple[list[dict[str, Any]], int | None]:
        """One page of jobs (latest attempt each), keyset-paginated by job id."""
        where = ["j.workflow_id = ?", "j.id > ?"]
        params: list[Any] = [workflow_id, after]
        if state:
            where.append("j.state = ?")
            params.append(state)
        if sample:
            where.append("s.name = ?")
            params.append(sample)
        if step is not None:
            where.append("j.step = ?")
            params.append(step)
        params.append(limit + 1)
        rows = await self.read(
            "SELECT j.id, s.name AS sample, j.step, j.state, j.attempts, j.skipped, j.reason, "
            "j.failure_class, j.stuck_reason, j.updated_at, j.queue, a.backend_job_id, a.job_name, "
            "a.exit_code, "
            "a.vcpus, a.memory, a.state AS attempt_state, a.log_stream "
            "FROM jobs j JOIN samples s ON s.id = j.sample_id "
            "LEFT JOIN attempts a ON a.id = j.current_attempt_id "
            f"WHERE {' AND '.join(where)} ORDER BY j.id LIMIT ?", params)
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = [{"sample": r["sample"], "step": r["step"], "state": r["state"],
                 "attempt": r["attempts"], "job_id": r["backend_job_id"],
                 "job_name": r["job_name"], "queue": r["queue"], "reason": r["reason"],
                 "failure_class": r["failure_class"], "exit_code": r["exit_code"],
                 "vcpus": r["vcpus"], "memory": r["memory"], "log_stream": r["log_stream"],
                 "skipped": bool(r["skipped"]), "stuck_reason": r["stuck_reason"],
                 "updated_at": r["updated_at"]} for r in rows]
        return jobs, (rows[-1]["id"] if more and rows else None)

    async def job_attempts(self, workflow_id: int, *, sample: str | None = None,
                           step: int | None = None) -> list[dict[str, Any]]:
        """Every attempt of the matching jobs, oldest first (history and logs)."""
        where = ["j.workflow_id = ?"]
        params: list[Any] = [workflow_id]
        if sample:
            where.append("s.name = ?")
            params.append(sample)
        if step is not None:
            where.append("j.step = ?")
            params.append(step)
        rows = await self.read(
            "SELECT s.name AS sample, j.step, a.* FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "JOIN samples s ON s.id = j.sample_id "
            f"WHERE {' AND '.join(where)} ORDER BY s.id, j.step, a.attempt", params)
        return [dict(r) for r in rows]
