"""batchctl.render: pure text rendering of batchd's JSON answers (shapes from docs/design.md)."""

from __future__ import annotations

import os
import time

import pytest

from batchctl import render


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


STATUS = {
    "project": "myproj", "workflow": "FAMLI", "status": "RUNNING",
    "submitted_at": "2024-05-01T12:00:03.250+00:00", "total": 200000,
    "counts": {"WAITING": 90000, "RUNNING": 1234, "COMPLETED": 108000, "FAILED": 766},
    "steps": [
        {"step": 0, "description": "Analysis of WGS datasets with FAMLI (v0.9) and more words",
         "job_definition": "famli:14", "queue": "spot-test",
         "counts": {"RUNNING": 1234, "COMPLETED": 98000, "FAILED": 766}},
        {"step": 1, "description": "Summarise", "job_definition": "summ:2", "queue": "ondemand",
         "counts": {"WAITING": 90000, "COMPLETED": 10000}},
    ],
}


def job(sample, step=0, state="COMPLETED", **kw):
    row = {"sample": sample, "step": step, "state": state, "attempt": 1, "job_id": f"id-{sample}",
           "job_name": f"name-{sample}", "queue": "q", "reason": None, "failure_class": None,
           "exit_code": 0, "skipped": 0, "updated_at": "2024-05-01T12:00:00Z"}
    row.update(kw)
    return row


# -- cells and the generic table ---------------------------------------------------------------
def test_fmt_count_thousands_separators():
    assert render.fmt_count(0) == "0"
    assert render.fmt_count(1234567) == "1,234,567"
    assert render.fmt_count(None) == "-"
    assert render.fmt_count(2.0) == "2"


def test_truncate():
    assert render.truncate("short", 10) == "short"
    assert render.truncate("a" * 20, 10) == "a" * 7 + "..."
    assert len(render.truncate("x" * 100, 40)) == 40
    assert render.truncate("multi\nline\ttext", 40) == "multi line text"
    assert render.truncate(None, 5) == ""


def test_percent_rounds_down():
    assert render.percent(9996, 10000) == "99.9%"
    assert render.percent(1, 3) == "33.3%"
    assert render.percent(5, 5) == "100.0%"
    assert render.percent(0, 0) == "-"


def test_table_alignment_and_separators():
    out = render.table(["NAME", "COUNT"], [["alpha", 1234567], ["b", 5]])
    lines = out.splitlines()
    assert lines[0] == "NAME       COUNT"
    assert lines[1] == "alpha  1,234,567"
    assert lines[2] == "b              5"
    assert all(line == line.rstrip() for line in lines)


def test_table_explicit_align_and_footer():
    out = render.table(["A", "B"], [["x", "y"]], align="rl", footer=[["T", 3]])
    lines = out.splitlines()
    assert lines == ["A  B", "x  y", "-  -", "T  3"]


def test_table_none_is_dash_and_short_rows_padded():
    out = render.table(["A", "B", "C"], [["x", None]])
    assert out.splitlines()[1].split() == ["x", "-", "-"]


def test_format_time(utc):
    assert render.format_time("2024-05-01T12:00:03.5+00:00") == "2024-05-01 12:00:03"
    assert render.format_time("2024-05-01T12:00:03Z") == "2024-05-01 12:00:03"
    assert render.format_time(0) == "1970-01-01 00:00:00"
    assert render.format_time(None) == "-"
    assert render.format_time("not a time") == "not a time"


# -- status ------------------------------------------------------------------------------------
def test_state_columns_lifecycle_order_nonzero_plus_completed_failed():
    cols = render.state_columns([{"RUNNING": 1, "WAITING": 2, "QUEUED": 0}])
    assert cols == ["WAITING", "RUNNING", "COMPLETED", "FAILED"]
    assert render.state_columns([{}]) == ["COMPLETED", "FAILED"]
    # a state batchctl does not know yet (newer daemon) is shown last, not dropped
    assert render.state_columns([{"PAUSED": 3, "CANCELLED": 1}]) == [
        "COMPLETED", "FAILED", "CANCELLED", "PAUSED"]


def test_status_table(utc):
    out = render.status_table(STATUS)
    lines = out.splitlines()
    header = lines[0]
    assert header.startswith("myproj/FAMLI  RUNNING  200,000 jobs")
    assert "54.0% completed" in header and "766 failed" in header
    assert "submitted 2024-05-01 12:00:03" in header
    table_head = lines[2].split()
    assert table_head[:4] == ["STEP", "DESCRIPTION", "JOB", "DEFINITION"]
    assert table_head[-5:] == ["WAITING", "RUNNING", "COMPLETED", "FAILED", "TOTAL"]
    assert "QUEUED" not in lines[2] and "CANCELLED" not in lines[2]
    row0 = lines[3]
    assert row0.startswith("0 ")
    assert "famli:14" in row0 and "spot-test" in row0
    assert row0.split()[-5:] == ["0", "1,234", "98,000", "766", "100,000"]
    assert "..." in row0  # long description truncated
    assert "Analysis of WGS datasets with FAMLI (v0.9) and more words" not in out
    assert set(lines[5].replace(" ", "")) == {"-"}
    total = lines[6].split()
    assert total == ["TOTAL", "90,000", "1,234", "108,000", "766", "200,000"]
    assert all(line == line.rstrip() for line in lines)


def test_status_table_not_submitted_and_no_steps():
    out = render.status_table({"project": "p", "workflow": "w", "status": "CREATED",
                               "submitted_at": None, "total": 0, "counts": {}, "steps": []})
    assert "not submitted yet" in out
    assert "no steps" in out


def test_status_header_single_job():
    head = render.status_header({"project": "p", "workflow": "w", "status": "COMPLETED",
                                 "total": 1, "counts": {"COMPLETED": 1}})
    assert "1 job (100.0% completed)" in head


# -- jobs --------------------------------------------------------------------------------------
def test_jobs_table_columns_reason_and_skipped():
    jobs = [
        job("s1", 0, "FAILED", attempt=3, job_id="abc-123", exit_code=137,
            failure_class="nonzero_exit", reason="Essential container in task exited"),
        job("sample_two", 1, "COMPLETED", attempt=0, job_id=None, exit_code=None, skipped=1),
        job("s3", 1, "RUNNING", reason="x" * 300, exit_code=None),
    ]
    lines = render.jobs_table(jobs).splitlines()
    assert lines[0].split() == ["SAMPLE", "STEP", "STATE", "ATTEMPT", "JOB", "ID", "EXIT", "REASON"]
    assert lines[1].split()[:6] == ["s1", "0", "FAILED", "3", "abc-123", "137"]
    assert lines[1].endswith("nonzero_exit: Essential container in task exited")
    assert lines[2].split()[:6] == ["sample_two", "1", "COMPLETED", "-", "-", "-"]
    assert lines[2].endswith("skipped: outputs already present")
    assert lines[3].endswith("...")
    assert len(lines[3].split("  ")[-1]) <= render.REASON_WIDTH


def test_jobs_table_100k_rows_is_fast():
    jobs = [job(f"sample{i:06d}", i % 3, "COMPLETED") for i in range(100_000)]
    start = time.perf_counter()
    n = 0
    width = None
    for line in render.iter_jobs_table(jobs):
        n += 1
        width = width or len(line)
    elapsed = time.perf_counter() - start
    assert n == 100_001
    assert elapsed < 5, f"rendering 100,000 jobs took {elapsed:.2f} s"


def test_iter_jobs_table_is_lazy():
    lines = render.iter_jobs_table(iter([job("a")]))
    assert next(lines).startswith("SAMPLE")


# -- dashboard ---------------------------------------------------------------------------------
DASHBOARD = {"workflows": [
    {"project": "p", "workflow": "w", "status": "RUNNING", "total": 5000,
     "counts": {"WAITING": 600, "READY": 300, "QUEUED": 100, "SUBMITTED": 10, "RUNNING": 500,
                "CHECKING": 5, "COMPLETED": 2995, "FAILED": 490},
     "submitted_at": "2024-05-01T12:00:00Z", "updated_at": "2024-05-01T13:00:00Z"},
    {"project": "a", "workflow": "x", "status": "COMPLETED", "total": 40000,
     "counts": {"COMPLETED": 40000}, "submitted_at": None, "updated_at": None},
    {"project": "a", "workflow": "y", "status": "COMPLETED", "total": 12,
     "counts": {"COMPLETED": 12}, "submitted_at": None, "updated_at": None},
]}


def test_dashboard_folds_completed():
    out = render.dashboard_table(DASHBOARD)
    lines = out.splitlines()
    assert lines[0].split() == ["WORKFLOW", "STATUS", "TOTAL", "WAITING", "ACTIVE", "COMPLETED",
                                "FAILED", "DONE"]
    assert lines[1].split() == ["p/w", "RUNNING", "5,000", "1,000", "515", "2,995", "490",
                                "59.9%"]
    assert "a/x" not in out
    assert lines[-1] == "2 completed workflows (40,012 jobs); --all to list them"


def test_dashboard_all_lists_completed_sorted():
    out = render.dashboard_table(DASHBOARD, show_all=True)
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == ["a/x", "a/y", "p/w"]
    assert "--all" not in out
    assert "100.0%" in out


def test_dashboard_cancelled_column_only_when_needed():
    dash = {"workflows": [{"project": "b", "workflow": "y", "status": "CANCELLED", "total": 3,
                           "counts": {"COMPLETED": 2, "CANCELLED": 1}}]}
    head = render.dashboard_table(dash).splitlines()[0].split()
    assert "CANCELLED" in head


def test_dashboard_only_completed_and_empty():
    only = {"workflows": [DASHBOARD["workflows"][1]]}
    assert render.dashboard_table(only) == "1 completed workflow (40,000 jobs); --all to list them"
    assert "No workflows yet" in render.dashboard_table({"workflows": []})


# -- job definitions ---------------------------------------------------------------------------
def test_jobdefs_table_aws_and_flat_shapes():
    answer = {"job_definitions": [
        {"jobDefinitionName": "famli", "revision": 14, "containerProperties": {
            "command": ["famli", "--input", "Ref::file_name"],
            "resourceRequirements": [{"type": "VCPU", "value": "16"},
                                     {"type": "MEMORY", "value": "122000"}]}},
        {"jobDefinitionName": "old", "revision": 2,
         "containerProperties": {"command": ["true"], "vcpus": 2, "memory": 4096}},
        {"name": "echo", "revision": 1, "command": "echo hi", "vcpus": 1, "memory": 512},
    ]}
    lines = render.jobdefs_table(answer).splitlines()
    assert lines[0].split() == ["NAME", "REVISION", "COMMAND", "VCPUS", "MEMORY", "(MiB)"]
    assert lines[1].split() == ["echo", "1", "echo", "hi", "1", "512"]
    assert lines[2].split() == ["famli", "14", "famli", "--input", "Ref::file_name", "16",
                                "122,000"]
    assert lines[3].split() == ["old", "2", "true", "2", "4,096"]


def test_jobdefs_table_empty():
    assert "jobdef register" in render.jobdefs_table({"job_definitions": []})
    assert "jobdef register" in render.jobdefs_table([])


def test_render_module_is_stdlib_only():
    src = open(os.path.join(os.path.dirname(render.__file__), "render.py")).read()
    for heavy in ("aiohttp", "structlog", "botocore", "batchd."):
        assert f"import {heavy}" not in src and f"from {heavy}" not in src
