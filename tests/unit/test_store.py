"""The Store on a real SQLite file: migrations, atomic imports, the scheduling transitions."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

import pytest

from batchd.errors import Conflict, NotFound
from batchd.failures import GiveUp, Retry
from batchd.store import AttemptUpdate, Store


async def make_workflow(store: Store, samples=("a", "b"), steps=2) -> int:
    project_id = await store.create_project(
        name="p", columns=["sample_name", "file_name"], sample_col="sample_name",
        file_col="file_name", metadata_filename="m.csv",
        samples=[(s, f"{s}.fq", i + 2, {"sample_name": s, "file_name": f"{s}.fq"})
                 for i, s in enumerate(samples)])
    rows = await store.samples(project_id)
    jobs = [(r["id"], step, "q", json.dumps([f"/out/{r['name']}.{step}"]), "{}", None, None)
            for r in rows for step in range(steps)]
    analyses = [{"step": s, "job_definition": "jd", "queue": "q", "description": "",
                 "vcpus": 1, "memory": 1000, "timeout": None, "retry": None}
                for s in range(steps)]
    return await store.create_workflow(project_id=project_id, name="w", definition={},
                                       definition_filename="w.json", base_dir="/",
                                       analyses=analyses, jobs=jobs)


def plan(row):
    return {"job_name": f"{row['sample']}-{row['step']}-{row['attempts'] + 1}",
            "queue": row["queue"], "job_definition": row["job_definition"],
            "vcpus": row["a_vcpus"], "memory": row["memory"] or row["a_memory"], "timeout": None}


async def test_migrations_are_recorded_and_reopening_is_idempotent(tmp_path):
    path = tmp_path / "s.sqlite3"
    store = await Store.open(path)
    await store.close()
    store = await Store.open(path)
    rows = await store.read("SELECT version FROM schema_migrations")
    from batchd.store.base import _migrations
    assert [r["version"] for r in rows] == [v for v, _, _ in _migrations()]
    assert len(rows) >= 2
    mode = await store.read("PRAGMA journal_mode")
    assert mode[0][0] == "wal"
    await store.close()


async def test_duplicate_project_conflicts_and_leaves_the_first_intact(store):
    await make_workflow(store)
    with pytest.raises(Conflict):
        await store.create_project(name="p", columns=[], sample_col="s", file_col="f",
                                   metadata_filename=None, samples=[])
    assert len(await store.samples((await store.project("p"))["id"])) == 2


async def test_failed_import_leaves_nothing_behind(store):
    with pytest.raises(sqlite3.IntegrityError):
        await store.create_project(name="dup", columns=[], sample_col="s", file_col="f",
                                   metadata_filename=None,
                                   samples=[("x", "f", 2, {}), ("x", "f", 3, {})])
    with pytest.raises(NotFound):
        await store.project("dup")
    assert await store.read("SELECT * FROM samples") == []


async def test_chain_submit_claim_poll_check_releases_next_step(store):
    wf_id = await make_workflow(store)
    workflow = await store.workflow("p", "w")
    assert (await store.workflow_status(workflow))["status"] == "CREATED"
    assert await store.submit_workflow(wf_id) == 2
    assert await store.submit_workflow(wf_id) == 0  # idempotent
    to_check = await store.jobs_to_check(now=1e12, limit=10)
    assert {j["state"] for j in to_check} == {"READY"}
    await store.apply_checks(complete=[], absent=[j["id"] for j in to_check], unknown=[])
    assert await store.queued_groups() == [(wf_id, "q")]
    claims = await store.claim(wf_id, "q", 10, plan)
    assert len(claims) == 2 and await store.in_flight_by_queue() == {"q": 2}
    orphans = await store.record_submitted([(c.attempt_id, f"id-{c.attempt_id}")
                                            for c in claims], first_poll_at=0)
    assert orphans == []
    due = await store.attempts_due(now=1e12, limit=10)
    assert len(due) == 2
    first = due[0]
    await store.apply_poll([AttemptUpdate(first["id"], first["job_id"], "SUCCEEDED", None, None,
                                          0, "stream", 1.0, 2.0, None, 1e13, True)], [])
    checking = [j for j in await store.jobs_to_check(1e12, 10) if j["state"] == "CHECKING"]
    assert [j["id"] for j in checking] == [first["job_id"]]
    await store.apply_checks(complete=[(first["job_id"], False)], absent=[], unknown=[])
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][0]["counts"] == {"COMPLETED": 1, "SUBMITTED": 1}
    assert status["steps"][1]["counts"] == {"READY": 1, "WAITING": 1}
    assert status["status"] == "RUNNING"


async def test_failure_decisions_move_only_the_current_attempt(store):
    wf_id = await make_workflow(store, samples=("a",), steps=1)
    await store.submit_workflow(wf_id)
    job = (await store.jobs_to_check(1e12, 10))[0]
    await store.apply_checks(complete=[], absent=[job["id"]], unknown=[])
    claim = (await store.claim(wf_id, "q", 1, plan))[0]
    await store.record_submitted([(claim.attempt_id, "x")], 0)
    retry = Retry("oom; retrying with 2,000 MiB", "oom", 2000, 1, None, spot=False)
    await store.apply_failures([(claim.job_id, claim.attempt_id, retry)])
    # The same decision delivered twice (a late poll) must not count twice.
    await store.apply_failures([(claim.job_id, claim.attempt_id, retry)])
    row = (await store.read("SELECT * FROM jobs WHERE id = ?", (claim.job_id,)))[0]
    assert (row["state"], row["memory"], row["other_failures"]) == ("QUEUED", 2000, 1)
    second = (await store.claim(wf_id, "q", 1, plan))[0]
    assert second.request["memory"] == 2000 and second.request["job_name"] == "a-0-2"
    await store.record_submitted([(second.attempt_id, "y")], 0)
    await store.apply_failures([(claim.job_id, second.attempt_id,
                                 GiveUp("the program failed", "app"))])
    jobs, cursor = await store.list_jobs(wf_id)
    assert cursor is None
    assert jobs[0]["state"] == "FAILED" and jobs[0]["attempt"] == 2
    assert jobs[0]["failure_class"] == "app"
    history = await store.job_attempts(wf_id, sample="a")
    assert [h["attempt"] for h in history] == [1, 2]


async def test_cancelled_job_makes_a_late_submission_an_orphan(store):
    wf_id = await make_workflow(store, samples=("a",), steps=1)
    await store.submit_workflow(wf_id)
    job = (await store.jobs_to_check(1e12, 10))[0]
    await store.apply_checks(complete=[], absent=[job["id"]], unknown=[])
    claim = (await store.claim(wf_id, "q", 1, plan))[0]
    async with store.transaction() as conn:
        await conn.execute("UPDATE jobs SET state = 'CANCELLED' WHERE id = ?", (claim.job_id,))
    assert await store.record_submitted([(claim.attempt_id, "late")], 0) == [
        (claim.attempt_id, "late")]


async def test_list_jobs_paginates_by_cursor(store):
    wf_id = await make_workflow(store, samples=[f"s{i}" for i in range(7)], steps=1)
    seen, cursor = [], 0
    while True:
        page, nxt = await store.list_jobs(wf_id, limit=3, after=cursor)
        seen += [j["sample"] for j in page]
        if nxt is None:
            break
        cursor = nxt
    assert seen == [f"s{i}" for i in range(7)]


async def test_claim_takes_earlier_steps_first_unless_depth_first(store):
    wf_id = await make_workflow(store, samples=("a", "b", "c"), steps=2)
    await store.submit_workflow(wf_id)
    # every job QUEUED: step 0 via its READY check, step 1 as if released
    async with store.transaction() as conn:
        await conn.execute("UPDATE jobs SET state = 'QUEUED'")
    rows = await store.read("SELECT id, step FROM jobs ORDER BY id")
    step_of = {r["id"]: r["step"] for r in rows}
    breadth = await store.claim(wf_id, "q", 3, plan)
    assert [step_of[c.job_id] for c in breadth] == [0, 0, 0]
    depth = await store.claim(wf_id, "q", 2, plan, depth_first=True)
    assert [step_of[c.job_id] for c in depth] == [1, 1]
    plan_rows = await store.read(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs j WHERE j.workflow_id = 1 AND j.queue = 'q' "
        "AND j.state = 'QUEUED' ORDER BY j.step ASC, j.id LIMIT 10")
    assert not any("TEMP B-TREE" in r["detail"] for r in plan_rows), [dict(r) for r in plan_rows]


async def test_hot_queries_use_their_indexes(store):
    """No scan or sort of every QUEUED / READY job: each call was O(jobs queued) and, called
    a few times a second, 40 % of the pipeline benchmark's CPU at 10,000 samples."""
    wf_id = await make_workflow(store, samples=("a", "b", "c"), steps=2)
    await store.submit_workflow(wf_id)
    async with store.transaction() as conn:
        await conn.execute("UPDATE jobs SET state = 'QUEUED' WHERE step = 0")
    assert await store.queued_groups() == [(wf_id, "q")]
    assert len(await store.jobs_to_check(now=1e12, limit=10)) == 0
    async with store.transaction() as conn:
        await conn.execute("UPDATE jobs SET state = 'READY', next_check_at = 0 WHERE step = 1")
    assert len(await store.jobs_to_check(now=1e12, limit=10)) == 3
    for sql, params, index in ((store.QUEUED_GROUPS_SQL, (), "jobs_queued_groups"),
                               (store.JOBS_TO_CHECK_SQL, (1e12, 10), "jobs_to_check"),
                               (store.STILL_CURRENT_SQL.format("?,?"), (1, 2),
                                "jobs_by_current_attempt")):
        details = [r["detail"] for r in await store.read("EXPLAIN QUERY PLAN " + sql, params)]
        searches = [d for d in details if d.startswith(("SEARCH jobs", "SCAN jobs"))
                    and "PRIMARY KEY" not in d]
        assert searches and all(f"INDEX {index}" in d for d in searches), details
        assert not any("TEMP B-TREE" in d for d in details), details


async def _counts_match(store: Store) -> None:
    truth = {tuple(r) for r in await store.read(
        "SELECT workflow_id, step, queue, state, count(*) FROM jobs "
        "GROUP BY workflow_id, step, queue, state")}
    kept = {tuple(r) for r in await store.read(
        "SELECT workflow_id, step, queue, state, n FROM job_counts WHERE n != 0")}
    assert kept == truth


async def test_job_counts_follow_every_transition(store):
    wf_id = await make_workflow(store, samples=("a", "b", "c"))
    await _counts_match(store)
    await store.submit_workflow(wf_id)
    ready = await store.jobs_to_check(1e12, 10)
    await store.apply_checks(complete=[(ready[0]["id"], True)],
                             absent=[j["id"] for j in ready[1:]], unknown=[])
    await _counts_match(store)
    claims = await store.claim(wf_id, "q", 10, plan)
    await store.record_submitted([(c.attempt_id, f"id-{c.attempt_id}") for c in claims], 0)
    assert await store.in_flight_by_queue() == {"q": len(claims)}
    async with store.transaction() as conn:          # a job moved to another queue
        await conn.execute("UPDATE jobs SET queue = 'big' WHERE id = ?", (claims[0].job_id,))
    await _counts_match(store)
    assert await store.in_flight_by_queue() == {"q": len(claims) - 1, "big": 1}
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert sum(status["counts"].values()) == 6 and status["counts"]["SUBMITTED"] == 2
    assert [d["counts"] for d in await store.dashboard()] == [status["counts"]]


async def test_job_counts_are_filled_for_an_existing_database(tmp_path):
    path = tmp_path / "s.sqlite3"
    store = await Store.open(path)
    await make_workflow(store, samples=("a", "b"))
    async with store.transaction() as conn:           # as if created before migration 0005
        await conn.execute("DROP TABLE job_counts")
        for trigger in ("insert", "update", "delete"):
            await conn.execute(f"DROP TRIGGER job_counts_{trigger}")
        await conn.execute("DELETE FROM schema_migrations WHERE version = 5")
    await store.close()
    store = await Store.open(path)
    await _counts_match(store)
    assert (await store.read_one("SELECT sum(n) AS n FROM job_counts"))["n"] == 4
    await store.close()


def _count_trips(store: Store, connection: str = "writer") -> Callable[[], int]:
    """Round trips to a connection's database thread from now on (`Database.trips`)."""
    db = store._writer if connection == "writer" else store._reader
    start = db.trips
    return lambda: db.trips - start


async def _claimed(store: Store, samples: int, limit: int = 100, plan=plan):
    """A one-step workflow of `samples` samples with up to `limit` of them claimed."""
    wf_id = await make_workflow(store, samples=tuple(f"s{i}" for i in range(samples)), steps=1)
    await store.submit_workflow(wf_id)
    ready = await store.jobs_to_check(1e12, 100)
    await store.apply_checks(complete=[], absent=[j["id"] for j in ready], unknown=[])
    return wf_id, await store.claim(wf_id, "q", limit, plan)


async def test_hot_transactions_take_one_round_trip_each(store):
    """BEGIN, the deferred statements and COMMIT travel together: a poll record used to be
    seven round trips (~150 µs of CPU each), more than its SQL cost."""
    wf_id = await make_workflow(store, samples=("a", "b", "c"), steps=1)
    await store.submit_workflow(wf_id)
    jobs = await store.jobs_to_check(1e12, 10)
    trips = _count_trips(store)
    await store.apply_checks(complete=[], absent=[j["id"] for j in jobs], unknown=[])
    assert trips() == 1
    claims = await store.claim(wf_id, "q", 10, plan)
    assert trips() == 1 + 3             # the rows, their new attempt ids, the rest + COMMIT
    await store.record_submitted([(c.attempt_id, f"id-{c.attempt_id}") for c in claims], 0)
    assert trips() == 4 + 2             # the orphan check needs an answer mid-way
    due = await store.attempts_due(now=1e12, limit=10)
    await store.apply_poll([AttemptUpdate(a["id"], a["job_id"], "RUNNING", None, None, None,
                                          "s", 1.0, None, None, 1e13, True) for a in due], [])
    assert trips() == 7
    status = await store.workflow_status(await store.workflow("p", "w"))
    assert status["steps"][0]["counts"] == {"RUNNING": 3}


async def test_poll_plan_says_when_the_first_attempt_not_taken_is_due(store):
    """The poller's cycle reads what is due and when the next one is, in one trip (it used
    to take two or three). Due ones are topped up to whole batches."""
    _, claims = await _claimed(store, 12)
    await store.record_submitted([(c.attempt_id, f"id-{c.attempt_id}") for c in claims], 0)
    async with store.transaction() as conn:       # due at 10, 11, ... 21; two tied at 15
        await conn.executemany("UPDATE attempts SET next_poll_at = ? WHERE id = ?",
                               [(10 + i - (i == 6), c.attempt_id)
                                for i, c in enumerate(claims)])
    assert await store.attempts_due(9.5, 100, fill_to=5, fill_until=30) == []
    due = await store.attempts_due(11, 100, fill_to=5, fill_until=30)
    assert [a["next_poll_at"] for a in due] == [10, 11, 12, 13, 14]
    due = await store.attempts_due(11, 100, fill_to=5, fill_until=12.5)
    assert [a["next_poll_at"] for a in due] == [10, 11, 12]      # only within the window
    due = await store.attempts_due(14, 100, fill_to=5, fill_until=30)
    assert len(due) == 5 and {"workflow_id", "step"} <= set(due[0])
    trips = _count_trips(store, "reader")
    due, after = await store.poll_plan(11, 100, fill_to=5, fill_until=30)
    assert trips() == 1
    assert [a["next_poll_at"] for a in due] == [10, 11, 12, 13, 14] and after == 15
    due, after = await store.poll_plan(11, 100, fill_to=5, fill_until=12.5)
    assert [a["next_poll_at"] for a in due] == [10, 11, 12] and after == 13
    due, after = await store.poll_plan(9, 100, fill_to=5, fill_until=30)
    assert due == [] and after == 10               # nothing due: the soonest
    due, after = await store.poll_plan(100, 2)     # the limit cut the due ones short
    assert len(due) == 2 and after == 12
    due, after = await store.poll_plan(15.5, 100, fill_to=7, fill_until=30)
    assert [a["next_poll_at"] for a in due] == [10, 11, 12, 13, 14, 15, 15] and after == 17
    assert await store.next_poll_time() == 10
    async with store.transaction() as conn:       # nothing active: no time at all
        await conn.execute("UPDATE attempts SET state = 'SUCCEEDED'")
    assert await store.poll_plan(100, 100) == ([], None)


async def test_the_submitters_outlook_is_one_read_of_the_same_answers(store):
    wf_id, claims = await _claimed(store, 4, limit=3)
    await store.record_submitted([(claims[0].attempt_id, "id-0")], 0)
    await store.set_submit_status([(claims[1].attempt_id, "unknown", 5.0),
                                   (claims[2].attempt_id, "unsent", 5.0)])
    trips = _count_trips(store, "reader")
    outlook = await store.send_outlook(10.0, 100)
    assert trips() == 1
    assert [c.attempt_id for c in outlook.unknown] == [claims[1].attempt_id]
    assert [c.attempt_id for c in outlook.resend] == [claims[2].attempt_id]
    assert outlook.resend[0].request == claims[2].request
    assert outlook.groups == await store.queued_groups() == [(wf_id, "q")]   # "d" is queued
    assert outlook.in_flight == await store.in_flight_by_queue() == {"q": 3}
    assert (await store.send_outlook(4.0, 100)).unknown == []     # not due before 5


async def test_recent_runnable_waits_are_the_latest_few_per_queue(store):
    _, claims = await _claimed(store, 7)
    now = time.time()
    async with store.transaction() as conn:    # started 0, 10, 20... s ago, waited 1, 2, 3...
        await conn.executemany(
            "UPDATE attempts SET queue = ?, started_at = ?, runnable_at = ? WHERE id = ?",
            [("r" if i >= 5 else "q", now - 10 * i, now - 10 * i - (i + 1), c.attempt_id)
             for i, c in enumerate(claims)])
        await conn.execute("UPDATE attempts SET started_at = ? WHERE id = ?",
                           (now - 7 * 3600, claims[4].attempt_id))   # outside the window
    waits = await store.recent_runnable_waits(per_queue=3)
    assert {q: sorted(round(w) for w in v) for q, v in waits.items()} == {
        "q": [1, 2, 3], "r": [6, 7]}
    assert sorted(round(w) for w in (await store.recent_runnable_waits())["q"]) == [1, 2, 3, 4]


async def test_a_failing_batch_leaves_nothing_behind(store):
    """A statement failing at COMMIT time rolls back the statements deferred before it, and
    the writer is usable again (no transaction left open)."""
    await make_workflow(store, samples=("a",), steps=1)
    with pytest.raises(sqlite3.IntegrityError):
        async with store.batch() as batch:
            batch.defer("UPDATE projects SET name = 'renamed' WHERE id = 1")
            batch.defer_many("UPDATE jobs SET updated_at = ? WHERE id = ?", [(1.0, 1)])
            batch.defer("INSERT INTO projects (id, name) VALUES (1, 'again')")
    assert [r["name"] for r in await store.read("SELECT name FROM projects")] == ["p"]
    assert (await store.read("SELECT updated_at FROM jobs WHERE id = 1"))[0][0] != 1.0
    async with store.batch() as batch:
        batch.defer("UPDATE projects SET name = 'renamed' WHERE id = 1")
        rows = await batch.fetch("SELECT name FROM projects")
    assert [r["name"] for r in rows] == ["renamed"]
    assert [r["name"] for r in await store.read("SELECT name FROM projects")] == ["renamed"]


async def test_job_state_counts_match_the_jobs_themselves(store):
    """Daemon status and /metrics read the trigger-kept counts, not a scan of every job."""
    wf_id = await make_workflow(store, samples=("a", "b", "c"), steps=2)
    await store.submit_workflow(wf_id)
    ready = await store.jobs_to_check(1e12, 10)
    await store.apply_checks(complete=[(ready[0]["id"], True)], absent=[j["id"] for j in ready[1:]],
                             unknown=[])
    scanned = {r["state"]: r["n"] for r in await store.read(
        "SELECT state, count(*) AS n FROM jobs GROUP BY state")}
    assert await store.job_state_counts() == scanned
    assert sum(scanned.values()) == 6 and len(scanned) > 1
