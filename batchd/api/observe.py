"""What an operator (or Prometheus) can ask the running daemon about itself.

- `GET /metrics`: Prometheus text format (jobs by state, AWS API calls and throttles by
  operation, refused credentials, the rate budget, event-loop lag, uptime, reloads).
- `GET /healthz`: 200 `{"status": "ok", ...}`, or 503 when the state database cannot take a
  write (read-only, disk full): what a load balancer or a `systemctl` watchdog script checks.
- `GET /v1/daemon`: the same numbers as JSON, for `batchctl daemon status`.

Everything here is cheap on purpose (one indexed GROUP BY, in-memory counters): a scraper every
15 s must not compete with the loops for the database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any

from aiohttp import web

from batchd import __version__
from batchd.api.context import CONTEXT
from batchd.errors import BatchdError, Unavailable

# Below this much free space on the state directory's filesystem the database is reported as
# not writable: SQLite needs room for the WAL and a checkpoint, and "full" is discovered too
# late (mid-transaction) otherwise.
MIN_FREE_BYTES = 16 * 1024 * 1024


class LagMonitor:
    """Event-loop lag: how late a timer set for `interval` seconds actually fires. A lag of
    seconds means something blocks the loop (a sync call, a huge JSON dump) and every request
    and poll waits behind it."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.last = 0.0
        self.max = 0.0          # since start
        self.samples = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - started - self.interval)
            self.last, self.max = lag, max(self.max, lag)
            self.samples += 1


class Counters:
    """Daemon-level counters other modules bump (reloads for now)."""

    def __init__(self) -> None:
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload: float | None = None


MONITOR = web.AppKey("lag_monitor", LagMonitor)
COUNTERS = web.AppKey("daemon_counters", Counters)


async def db_health(ctx: Any) -> tuple[bool, str | None, int | None]:
    """(writable, why not, free bytes). A write probe catches read-only files and mounts; the
    free-space floor catches a disk that is about to be full before a transaction finds out."""
    free: int | None = None
    try:
        free = shutil.disk_usage(ctx.settings.state_dir).free
    except OSError:
        pass
    try:
        await ctx.store.writable_check()
    except BatchdError as exc:
        return False, exc.message, free
    except Exception as exc:  # noqa: BLE001 - any sqlite failure here means "cannot write"
        return False, f"state database probe failed: {exc}", free
    if free is not None and free < MIN_FREE_BYTES:
        return False, (f"only {free // 1024} KiB free on the filesystem of "
                       f"{ctx.settings.state_dir}; batchd refuses new work below "
                       f"{MIN_FREE_BYTES // (1024 * 1024)} MiB"), free
    return True, None, free


async def snapshot(request: web.Request) -> dict[str, Any]:
    ctx = request.app[CONTEXT]
    monitor, counters = request.app[MONITOR], request.app[COUNTERS]
    jobs = await ctx.store.job_state_counts()
    writable, problem, free = await db_health(ctx)
    backend = ctx.backend
    budget = getattr(backend, "budget", None)
    auth = backend.auth
    return {
        "version": __version__, "backend": backend.name, "pid": os.getpid(),
        "started_at": ctx.started_at, "uptime_seconds": round(time.time() - ctx.started_at, 3),
        "jobs": jobs,
        "api_calls": dict(getattr(backend, "calls", {}) or {}),
        "api_throttles": dict(getattr(backend, "throttles", {}) or {}),
        "rate_budget": budget.snapshot() if budget is not None else None,
        "backend_auth": auth.snapshot() if auth is not None else None,
        "loop_lag_seconds": round(monitor.last, 6),
        "loop_lag_max_seconds": round(monitor.max, 6),
        "db_writable": writable, "db_problem": problem, "disk_free_bytes": free,
        "settings": {"poll_interval": ctx.settings.effective_poll_interval,
                     "rate_limit": ctx.settings.rate_limit,
                     "max_in_flight": ctx.settings.max_in_flight,
                     "queue_caps": dict(ctx.settings.queue_caps),
                     "log_level": ctx.settings.log_level,
                     "config_file": ctx.settings.config_file},
        "reloads": counters.reloads, "reload_failures": counters.reload_failures,
        "last_reload": counters.last_reload,
    }


def _esc(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    """Exact integers (byte counts overflow %g's 6 digits), shortest exact floats."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def render_prometheus(snap: dict[str, Any]) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, Any], Any]]):
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            text = _number(value)
            lines.append(f"{name}{{{label}}} {text}" if label else f"{name} {text}")

    metric("batchd_info", "gauge", "Version and backend of the running daemon.",
           [({"version": snap["version"], "backend": snap["backend"]}, 1)])
    metric("batchd_uptime_seconds", "gauge", "Seconds since the daemon started.",
           [({}, snap["uptime_seconds"])])
    metric("batchd_jobs", "gauge", "Jobs by state (all projects and workflows).",
           [({"state": s}, n) for s, n in sorted(snap["jobs"].items())])
    metric("batchd_aws_api_calls_total", "counter", "AWS Batch API calls by operation.",
           [({"operation": op}, n) for op, n in sorted(snap["api_calls"].items())])
    metric("batchd_aws_api_throttles_total", "counter",
           "AWS Batch API calls answered 'slow down', by operation.",
           [({"operation": op}, n) for op, n in sorted(snap["api_throttles"].items())])
    auth = snap.get("backend_auth")
    if auth is not None:
        metric("batchd_backend_auth_failing", "gauge",
               "1 while AWS refuses batchd's credentials for some operation.",
               [({}, 1 if auth["failing"] else 0)])
        metric("batchd_backend_auth_failing_operation", "gauge",
               "1 for each operation AWS refuses batchd's credentials for right now.",
               [({"operation": op, "aws_code": r["aws_code"] or ""}, 1)
                for op, r in sorted(auth["operations"].items())])
        metric("batchd_backend_auth_failures_total", "counter",
               "AWS calls refused for credentials or permissions, by operation.",
               [({"operation": op}, n) for op, n in sorted(auth["failures_total"].items())])
    budget = snap["rate_budget"]
    if budget is not None:
        metric("batchd_rate_budget_calls_per_second", "gauge",
               "Current refill rate of the account-wide AWS API budget.", [({}, budget["rate"])])
        metric("batchd_rate_budget_ceiling_calls_per_second", "gauge",
               "Configured ceiling of the AWS API budget (rate_limit).",
               [({}, budget["ceiling"])])
        metric("batchd_rate_budget_waiting", "gauge", "Calls waiting for a token.",
               [({}, budget["waiting"])])
        metric("batchd_rate_budget_acquired_total", "counter", "Tokens granted by priority.",
               [({"priority": p}, n) for p, n in sorted(budget["acquired"].items())])
        metric("batchd_rate_budget_throttles_total", "counter", "Throttling answers seen.",
               [({}, budget["throttles"])])
        metric("batchd_rate_budget_server_errors_total", "counter", "5xx answers seen.",
               [({}, budget["server_errors"])])
        metric("batchd_rate_budget_cuts_total", "counter", "Times the rate was lowered.",
               [({}, budget["cuts"])])
    metric("batchd_event_loop_lag_seconds", "gauge", "Last measured event-loop lag.",
           [({}, snap["loop_lag_seconds"])])
    metric("batchd_event_loop_lag_max_seconds", "gauge", "Largest event-loop lag since start.",
           [({}, snap["loop_lag_max_seconds"])])
    metric("batchd_db_writable", "gauge", "1 if the state database can take a write.",
           [({}, 1 if snap["db_writable"] else 0)])
    if snap["disk_free_bytes"] is not None:
        metric("batchd_state_disk_free_bytes", "gauge", "Free space of the state directory.",
               [({}, snap["disk_free_bytes"])])
    metric("batchd_config_reloads_total", "counter", "Successful configuration reloads.",
           [({}, snap["reloads"])])
    metric("batchd_config_reload_failures_total", "counter", "Rejected configuration reloads.",
           [({}, snap["reload_failures"])])
    return "\n".join(lines) + "\n"


async def metrics(request: web.Request) -> web.Response:
    text = render_prometheus(await snapshot(request))
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def daemon_status(request: web.Request) -> web.Response:
    import json

    return web.json_response(await snapshot(request),
                             dumps=lambda d: json.dumps(d, default=str))


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    writable, problem, free = await db_health(ctx)
    body: dict[str, Any] = {"status": "ok" if writable else "unavailable",
                            "db_writable": writable, "disk_free_bytes": free,
                            "loop_lag_seconds": round(request.app[MONITOR].last, 6),
                            "stopping": ctx.stop.is_set()}
    if not writable:
        # The error object makes batchctl (and scripts) treat it like any other 503.
        body["error"] = Unavailable(problem or "the state database is not writable").to_json()
    return web.json_response(body, status=200 if writable else 503)


def install(app: web.Application, monitor: LagMonitor, counters: Counters) -> None:
    app[MONITOR] = monitor
    app[COUNTERS] = counters
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/daemon", daemon_status)
