"""The "daemon" group: `batchctl daemon status`, the daemon's own health for a person (the same
numbers Prometheus scrapes from /metrics, from `GET /v1/daemon`), and `batchctl daemon stop`."""

from __future__ import annotations

import argparse
import time

from batchctl import render
from batchctl.client import CtlError
from batchctl.registry import arg, command
from batchctl.util import dump_json
from batchshared.exitcodes import EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, EXIT_UNAVAILABLE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from typing import Any

    from batchctl.registry import Context


# Registered before `daemon status`: the order of `batchctl daemon --help` and its examples.
@command(
    "daemon stop",
    help="ask batchd to shut down",
    description="Ask batchd to stop cleanly (running backend jobs are not cancelled; the "
                "daemon picks them up again when it restarts). Waits until the socket stops "
                "answering, up to --request-timeout seconds, unless --no-wait.",
    example="batchctl daemon stop",
    args=[arg("--no-wait", action="store_true", help="return as soon as batchd has the request")],
)
def cmd_daemon_stop(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.post("/v1/shutdown")
    if args.no_wait:
        ctx.print("batchd is stopping")
        return EXIT_OK
    deadline = time.monotonic() + ctx.timeout
    ctx.client.timeout = min(ctx.timeout, 5.0)
    while time.monotonic() < deadline:
        try:
            ctx.client.get("/v1/ping")
        except CtlError as exc:
            if exc.exit_code == EXIT_NOT_RUNNING:
                ctx.print("batchd stopped")
                return EXIT_OK
            # shutting down (503 / connection closed mid-answer): keep waiting
        time.sleep(0.1)
    ctx.note(f"batchd was asked to stop but still answers on {ctx.socket_path} after "
             f"{ctx.timeout:g} s")
    return EXIT_ERROR


# A loop lag above this means something blocks the daemon: requests and polls wait behind it.
LAG_WARNING_SECONDS = 0.5


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _bytes(value: Any) -> str:
    if value is None:
        return "unknown"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover


def summary(status: dict) -> list[str]:
    """The human-readable lines of `batchctl daemon status`."""
    lines = [f"batchd {status.get('version', '?')} (backend {status.get('backend', '?')}, "
             f"pid {status.get('pid', '?')}), up {_duration(status.get('uptime_seconds') or 0)}"]
    if status.get("db_writable"):
        lines.append(f"state database: writable ({_bytes(status.get('disk_free_bytes'))} free)")
    else:
        lines.append(f"state database: NOT WRITABLE - new work is refused: "
                     f"{status.get('db_problem') or 'unknown reason'}")
    lag, lag_max = status.get("loop_lag_seconds") or 0.0, status.get("loop_lag_max_seconds") or 0.0
    note = "  (high: something blocks the daemon)" if lag > LAG_WARNING_SECONDS else ""
    lines.append(f"event loop lag: {lag * 1000:.1f} ms now, {lag_max * 1000:.1f} ms max{note}")
    jobs = status.get("jobs") or {}
    if jobs:
        order = [s for s in render.STATES if s in jobs] + sorted(set(jobs) - set(render.STATES))
        lines.append("jobs: " + ", ".join(f"{s} {render.fmt_count(jobs[s])}" for s in order))
    else:
        lines.append("jobs: none")
    budget = status.get("rate_budget")
    if budget:
        lines.append(f"AWS API budget: {budget.get('rate')} of {budget.get('ceiling')} calls/s"
                     f" ({budget.get('waiting', 0)} waiting, {budget.get('throttles', 0)} "
                     f"throttled, {budget.get('cuts', 0)} rate cuts)")
    problem = render.auth_problem(status.get("backend_auth"))
    if problem:
        lines.append(problem)
        for op, refusal in sorted((status["backend_auth"].get("operations") or {}).items()):
            lines.append(f"  {op}: {refusal.get('message')}")
    calls, throttles = status.get("api_calls") or {}, status.get("api_throttles") or {}
    if calls:
        lines.append("AWS API calls: " + ", ".join(
            f"{op} {n:,}" + (f" ({throttles[op]:,} throttled)" if throttles.get(op) else "")
            for op, n in sorted(calls.items())))
    settings = status.get("settings") or {}
    if settings:
        caps = settings.get("queue_caps") or {}
        cap_text = ", ".join(f"{q} {n}" for q, n in sorted(caps.items()))
        lines.append(f"settings: poll every {settings.get('poll_interval')} s, rate limit "
                     f"{settings.get('rate_limit')}/s, max in flight "
                     f"{settings.get('max_in_flight')} per queue"
                     + (f" ({cap_text})" if cap_text else "")
                     + f", log level {settings.get('log_level')}")
        if settings.get("config_file"):
            lines.append(f"config file: {settings['config_file']}")
    reloads, failures = status.get("reloads") or 0, status.get("reload_failures") or 0
    if reloads or failures:
        when = render.format_time(status.get("last_reload")) if status.get("last_reload") else "-"
        lines.append(f"config reloads: {reloads} (last {when}), {failures} rejected")
    return lines


@command(
    "daemon status",
    help="show batchd's health: database, loop lag, jobs, AWS credentials and API budget",
    description="Summarise the running daemon for a person: uptime, whether its state "
                "database can take writes (exit code 8 if not: new work is refused), event "
                "loop lag, jobs by state, whether AWS refuses batchd's credentials (per "
                "operation: the AWS code, since when, how many calls), the AWS API rate "
                "budget and calls, and the settings in force (after any reload). Prometheus "
                "can scrape the same numbers from GET /metrics on the socket.",
    example="batchctl daemon status\n"
            "batchctl daemon status --json",
    args=[arg("--json", action="store_true", help="print the daemon's JSON")],
)
def cmd_daemon_status(ctx: Context, args: argparse.Namespace) -> int:
    status = ctx.client.get("/v1/daemon")
    if args.json:
        dump_json(ctx, status)
    else:
        for line in summary(status):
            ctx.print(line)
    return EXIT_OK if status.get("db_writable", True) else EXIT_UNAVAILABLE
