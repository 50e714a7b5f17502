"""The benchmark harness must not rot: every scenario runs at a tiny size with a fast clock and
the report has every field. No timing assertions (CI machines vary); `make bench` is where the
figures are looked at."""

from __future__ import annotations

import json

import pytest

from tests.bench.__main__ import main
from tests.bench.report import REQUIRED_FIELDS, table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AWS_RUNS = ("throughput-45", "pipeline", "scale")
RESPONSIVE_RUNS = ("responsive", "responsive-2")
RUNS = AWS_RUNS + RESPONSIVE_RUNS


def test_every_scenario_runs_small_and_reports_every_field(tmp_path, capsys):
    report_path = tmp_path / "bench-report.json"
    code = main(["--smoke", "--scenario", "all", "--report", str(report_path)])
    report = json.loads(report_path.read_text())
    entries = {e["scenario"]: e for e in report["scenarios"]}
    assert set(entries) == set(RUNS)
    assert code == 0, {name: e["error"] for name, e in entries.items()}
    assert {"cpu", "cpus", "memory_gib", "python"} <= set(report["machine"])

    for name, entry in entries.items():
        missing = [key for key in REQUIRED_FIELDS if key not in entry]
        assert not missing, (name, missing)
        assert entry["completed"] and entry["error"] is None, (name, entry["error"])
        assert entry["targets"], name
    # responsive: local backend, nothing submitted; the figures are the loop's lag and another
    # client's status latency while big imports and creates run.
    for name in RESPONSIVE_RUNS:
        entry = entries[name]
        assert entry["final_status"] == "CREATED", entry["final_counts"]
        assert entry["jobs_created"] == entry["jobs"] * entry["params"]["users"]
        assert entry["import_seconds"] > 0 and entry["create_seconds"] > 0
        lag = entry["loop_lag_ms"]
        assert lag["n"] > 0 and lag["max"] is not None and lag["p99"] is not None, lag
        status = entry["latency"]["status_during_ms"]
        assert status["n"] > 0 and status["max"] is not None, entry["latency"]
        assert entry["latency"]["status_errors"] == []
        assert set(entry["targets"]) == {"loop_lag_max_ms", "loop_lag_p99_ms"}

    for name in AWS_RUNS:
        entry = entries[name]
        assert entry["jobs"] > 0
        assert entry["import_seconds"] > 0 and entry["create_seconds"] > 0
        assert entry["throttled"] is not None
        assert entry["batch_calls_per_job"]["SubmitJob"] >= 1.0, entry["batch_calls"]
        assert "total" in entry["s3_calls_per_output"]
        assert entry["submit_rate"]["n"] >= entry["jobs"]
        for key in ("overall", "budget", "ratio", "middle_90", "all_batch_calls_tps"):
            assert key in entry["submit_rate"], key
        for key in ("cpu_seconds", "system_cpu_seconds", "cpu_per_1000_jobs", "peak_rss_mb",
                    "event_loop_cpu_seconds"):
            assert entry["daemon"][key] is not None, (name, key)
        threads = entry["daemon"]["threads_cpu_seconds"]
        assert threads[0]["thread"] == "event loop" and len(threads) >= 2, threads
        for key in ("status_cli_ms", "dashboard_cli_ms", "status_api_ms", "dashboard_api_ms"):
            assert entry["latency"][key]["p50"] is not None, (name, key)
            assert entry["latency"][key]["p95"] is not None, (name, key)
        for key in ("sim_seconds", "lower_bound", "critical_path", "capacity", "tps_budget",
                    "ratio"):
            assert key in entry["makespan"], key
        for key in ("p50", "p95", "p50_ratio", "p95_ratio", "poll_interval_sim"):
            assert key in entry["detection_latency"], key
        assert entry["targets"], name
        for target in entry["targets"].values():
            assert set(target) == {"value", "target", "met"}

    for name in ("throughput-45", "pipeline"):
        entry = entries[name]
        assert entry["final_status"] == "COMPLETED", (name, entry["final_counts"])
        assert entry["makespan"]["sim_seconds"] > 0
        assert entry["detection_latency"]["n"] >= entry["jobs"]
        assert entry["detection_latency"]["p95"] is not None
    # Always-failing samples end FAILED after their retries; the workflow still completes
    # every other sample (status FAILED when any sample failed).
    pipeline = entries["pipeline"]
    assert pipeline["batch_calls_per_job"]["DescribeJobs"] > 0
    assert pipeline["polls_per_job"] >= 1
    # scale: measured with every job tracked in flight, then run to the end (the fake's clock
    # jumps), so its CPU figure covers a full run, across the restart.
    scale = entries["scale"]
    assert set(scale["tracked_counts"]) <= {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING",
                                            "RUNNING"}, scale["tracked_counts"]
    assert scale["final_status"] == "COMPLETED", scale["final_counts"]
    assert scale["final_counts"] == {"COMPLETED": scale["jobs"]}
    assert scale["restart"]["socket_answers_seconds"] > 0
    assert len(scale["daemon"]["processes"]) == 2
    assert scale["daemon"]["cpu_seconds"] == round(
        sum(p["cpu_seconds"] for p in scale["daemon"]["processes"]), 2)

    text = table(report)
    for name in RUNS:
        assert name in text
    assert "targets:" in text
