"""The benchmark report: targets (from the issue) evaluated per run, a text table, JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

# Every run entry carries these keys (values may be None when a figure does not apply, e.g.
# makespan of the `scale` scenario, whose long jobs are never waited for).
REQUIRED_FIELDS = (
    "scenario", "kind", "params", "jobs", "completed", "error", "wall_seconds",
    "import_seconds", "create_seconds", "submit_seconds", "final_status", "final_counts",
    "submit_rate", "batch_calls", "batch_calls_per_job", "s3_calls", "s3_calls_per_output",
    "throttled", "detection_latency", "makespan", "daemon", "latency", "targets",
)


def _get(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _target(entry, name, path, op, limit, *, scale=1.0):
    value = _get(entry, path)
    if value is None:
        return name, {"value": None, "target": f"{op} {limit}", "met": None}
    met = value >= limit * scale if op == ">=" else value <= limit * scale
    return name, {"value": value, "target": f"{op} {round(limit * scale, 4)}", "met": met}


def evaluate(entry: dict[str, Any]) -> dict[str, Any]:
    """Targets from the issue that apply to this run."""
    kind, name = entry.get("kind"), entry.get("scenario")
    budget = _get(entry, "params.rate_limit") or 0
    poll = _get(entry, "params.poll_sim") or 30
    out: dict[str, Any] = {}
    checks = []
    if kind == "throughput":
        factor = 0.95 if budget <= 50 else 0.9
        checks.append(_target(entry, "submit_rate", "submit_rate.overall", ">=", budget,
                              scale=factor))
        if budget <= 50:
            checks.append(_target(entry, "throttled", "throttled", "<=", 0))
    if kind == "pipeline":
        checks += [_target(entry, "batch_calls_per_job", "batch_calls_per_job.total", "<=", 1.3),
                   _target(entry, "s3_calls_per_output", "s3_calls_per_output.total", "<=", 1.1),
                   _target(entry, "makespan_ratio", "makespan.ratio", "<=", 1.10)]
    if kind in ("throughput", "pipeline"):
        checks.append(_target(entry, "detection_p95_sim_s", "detection_latency.p95", "<=",
                              1.5 * poll))
    if kind == "scale":
        checks += [_target(entry, "peak_rss_mb", "daemon.peak_rss_mb", "<=", 300),
                   _target(entry, "status_cli_p50_ms", "latency.status_cli_ms.p50", "<=", 100),
                   _target(entry, "dashboard_cli_p50_ms", "latency.dashboard_cli_ms.p50", "<=",
                           200),
                   _target(entry, "import_s", "import_seconds", "<=", 10),
                   _target(entry, "create_s", "create_seconds", "<=", 10),
                   _target(entry, "restart_answer_s", "restart.socket_answers_seconds", "<=", 5)]
    if kind == "responsive":
        # Issue 14: big imports and creates must not stall everyone else's requests.
        checks += [_target(entry, "loop_lag_max_ms", "loop_lag_ms.max", "<=", 100),
                   _target(entry, "loop_lag_p99_ms", "loop_lag_ms.p99", "<=", 100)]
        return dict(checks)
    # Issue 15: CPU is judged at the real quota (45 TPS); scale keeps its older target. The
    # pipeline's figure is report-only: each of its jobs is polled many times (RUNNABLE waits).
    cpu_limit = {"throughput": 5, "scale": 3}.get(kind)
    if cpu_limit is not None:
        checks.append(_target(entry, "cpu_s_per_1000_jobs", "daemon.cpu_per_1000_jobs", "<=",
                              cpu_limit))
    for key, value in checks:
        out[key] = value
    del name
    return out


def finish(entries: list[dict[str, Any]], machine: dict[str, Any], args: dict[str, Any]
           ) -> dict[str, Any]:
    for entry in entries:
        entry["targets"] = evaluate(entry)
        for key in REQUIRED_FIELDS:
            entry.setdefault(key, None)
    return {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine,
            "args": args, "scenarios": entries}


def write_json(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


ROWS = [
    ("jobs", "jobs"), ("status", "final_status"), ("wall time (real s)", "wall_seconds"),
    ("import / create (s)", None), ("SubmitJob rate (TPS)", "submit_rate.overall"),
    ("  budget (TPS)", "submit_rate.budget"), ("  rate / budget", "submit_rate.ratio"),
    ("Batch calls / job", "batch_calls_per_job.total"),
    ("  SubmitJob / job", "batch_calls_per_job.SubmitJob"),
    ("  DescribeJobs / job", "batch_calls_per_job.DescribeJobs"),
    ("  ListJobs / job", "batch_calls_per_job.ListJobs"),
    ("job records polled / job", "polls_per_job"),
    ("S3 calls / output", "s3_calls_per_output.total"), ("throttled calls", "throttled"),
    ("detect p50 (sim s)", "detection_latency.p50"),
    ("detect p95 (sim s)", "detection_latency.p95"),
    ("  p95 / poll interval", "detection_latency.p95_ratio"),
    ("makespan (sim s)", "makespan.sim_seconds"), ("lower bound (sim s)", "makespan.lower_bound"),
    ("  binding bound", "makespan.binding"), ("makespan / bound", "makespan.ratio"),
    ("daemon CPU (s)", "daemon.cpu_seconds"), ("  CPU s / 1000 jobs", "daemon.cpu_per_1000_jobs"),
    ("  of which system (s)", "daemon.system_cpu_seconds"),
    ("  event-loop thread (s)", "daemon.event_loop_cpu_seconds"),
    ("daemon peak RSS (MB)", "daemon.peak_rss_mb"),
    ("status CLI p50/p95 ms", None), ("dashboard CLI p50/p95 ms", None),
    ("status API p50/p95 ms", None), ("dashboard API p50/p95 ms", None),
    ("restart: socket (s)", "restart.socket_answers_seconds"),
    ("loop lag p99/max ms (import+create)", None),
    ("status p99/max ms (import+create)", None),
]


def _cell(entry: dict[str, Any], label: str, path: str | None) -> str:
    if path:
        return _fmt(_get(entry, path))
    if label.startswith("import"):
        return f"{_fmt(entry.get('import_seconds'))} / {_fmt(entry.get('create_seconds'))}"
    for prefix, path in (("loop lag", "loop_lag_ms"),
                         ("status p99", "latency.status_during_ms")):
        if label.startswith(prefix):
            lat = _get(entry, path) or {}
            return f"{_fmt(lat.get('p99'), 1)} / {_fmt(lat.get('max'), 1)}"
    key = {"status CLI": "status_cli_ms", "dashboard CLI": "dashboard_cli_ms",
           "status API": "status_api_ms", "dashboard API": "dashboard_api_ms"}
    for prefix, name in key.items():
        if label.startswith(prefix):
            lat = _get(entry, f"latency.{name}") or {}
            return f"{_fmt(lat.get('p50'), 1)} / {_fmt(lat.get('p95'), 1)}"
    return "-"


def table(report: dict[str, Any]) -> str:
    entries = report["scenarios"]
    heads = ["metric"] + [e["scenario"] for e in entries]
    rows = [[label] + [_cell(e, label, path) for e in entries] for label, path in ROWS]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    out = [line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows]
    m = report["machine"]
    out.append(f"\nmachine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, "
               f"Python {m['python']}")
    out.append("\ntargets:")
    for e in entries:
        if e.get("error"):
            out.append(f"  {e['scenario']}: ERROR {e['error'][:300]}")
        for name, t in (e.get("targets") or {}).items():
            mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            out.append(f"  {e['scenario']:<16} {name:<22} {_fmt(t['value']):>12}  "
                       f"{t['target']:<12} {mark}")
    return "\n".join(out)
