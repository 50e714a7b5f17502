"""Run one scenario end to end: the fake AWS (subprocess, compressed time), a real `batchd
--backend aws` process pointed at it through the standard AWS endpoint variables, driven only
through `batchctl` (subprocesses) and the control socket (`batchctl.client.Client`)."""

from __future__ import annotations

import compileall
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import batchctl
from batchctl.client import Client

from .metrics import (
    CounterSampler,
    DbView,
    ProcSampler,
    SimTime,
    combine_daemons,
    summary,
    time_command,
    timed,
)
from .procs import BenchDaemon, FakeProc
from .scenarios import Scenario, write_inputs

PROJECT = "bench"
WORKFLOW = "wf"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
NOT_YET_SUBMITTED = ("WAITING", "READY", "QUEUED", "SUBMITTING")


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Run:
    """One scenario run; `execute()` returns the report entry (a JSON-able dict)."""

    def __init__(self, scenario: Scenario, *, keep: bool = False,
                 progress: Callable[[str], None] = _log) -> None:
        self.s = scenario
        self.keep = keep
        self.log = progress
        self.fake: FakeProc | None = None
        self.daemon: BenchDaemon | None = None
        self.result: dict[str, Any] = {"scenario": scenario.name, "kind": scenario.kind,
                                       "params": scenario.params(), "jobs": scenario.jobs,
                                       "completed": False, "error": None}

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        assert self.daemon is not None
        return Client(str(self.daemon.socket), timeout=120)

    def ctl(self, *args: str) -> float:
        assert self.daemon is not None
        seconds, _ = timed(lambda: self.daemon.ctl(*args, timeout=600))
        return seconds

    def ctl_argv(self, *args: str) -> list[str]:
        assert self.daemon is not None
        return [sys.executable, "-m", "batchctl", "--socket", str(self.daemon.socket), *args]

    def wf_path(self) -> str:
        return f"/v1/projects/{PROJECT}/workflows/{urllib.parse.quote(WORKFLOW)}"

    def status(self) -> dict[str, Any]:
        return self.client.get(self.wf_path())

    def overview(self) -> dict[str, Any]:
        for wf in self.client.get("/v1/dashboard")["workflows"]:
            if wf["project"] == PROJECT and wf["workflow"] == WORKFLOW:
                return wf
        return self.status()

    # -- the run -----------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            self._execute()
            self.result["completed"] = True
        except Exception as exc:  # noqa: BLE001 - reported, the next scenario still runs
            self.result["error"] = f"{type(exc).__name__}: {exc}"[:4000]
            self.log(f"{self.s.name}: FAILED: {self.result['error'][:500]}")
        finally:
            self.result["wall_seconds"] = round(time.monotonic() - started, 2)
            self._teardown()
        return self.result

    def _execute(self) -> None:
        s, r = self.s, self.result
        self.log(f"{s.name}: {s.jobs} jobs, time scale {s.time_scale:g}, poll {s.poll_sim:g} s "
                 f"sim = {s.poll_real:.3g} s real, budget {s.rate_limit:g} TPS, "
                 f"fake TPS {s.fake_tps}")
        fake_cfg = s.fake_config()
        self.fake = FakeProc(fake_cfg)
        daemon = self.daemon = BenchDaemon(self.fake.url, s.daemon_args())
        daemon.start(timeout=60)
        sampler = ProcSampler(daemon.proc.pid).start()
        cpu_ready = sampler.cpu_at_start or 0.0
        fake_sampler = ProcSampler(self.fake.proc.pid, interval=1.0).start()

        csv, wf = write_inputs(s, daemon.root, WORKFLOW)
        r["import_seconds"] = round(self.ctl("import", PROJECT, "--metadata", csv), 3)
        r["create_seconds"] = round(self.ctl("create", PROJECT, "--definition", wf), 3)
        self.log(f"{s.name}: import {r['import_seconds']} s, create {r['create_seconds']} s")
        clock = SimTime(self.fake.stats)
        before = self.fake.stats()["calls"]
        submitted_real = time.time()
        counters = CounterSampler(self.fake.stats, 0.25 if s.jobs < 50_000 else 0.5).start()
        r["submit_seconds"] = round(self.ctl("submit", f"{PROJECT}/{WORKFLOW}"), 3)

        try:
            final = self._wait(submitted_real, s.wait_complete)
        finally:
            counters.stop()
        if not s.wait_complete:
            # Everything is submitted and tracked: let one poll round pass, then measure.
            time.sleep(min(s.poll_real * 1.5, 60))
        r["latency"] = self._latencies()
        samplers = [sampler]
        if s.restart:
            r["restart"] = self._restart()
            # The restarted daemon's CPU and memory count too (its start-up included).
            samplers.append(ProcSampler(self.daemon.proc.pid).start())
        if s.finish:
            r["tracked_counts"] = final["counts"]
            final = self._finish()
        r["final_status"] = final["status"]
        r["final_counts"] = final["counts"]
        stats = self.fake.stats()
        r["daemon"] = combine_daemons([smp.stop() for smp in samplers])
        r["fake_process"] = fake_sampler.stop()
        cpu = r["daemon"]["cpu_seconds"]
        # Start-up (imports, migrations) is a fixed cost: the per-job figure counts from ready.
        r["daemon"]["cpu_seconds_startup"] = round(cpu_ready, 2)
        r["daemon"]["cpu_per_1000_jobs"] = (round((cpu - cpu_ready) / (s.jobs / 1000), 3)
                                            if cpu else None)
        self._api_figures(stats, before)
        rate = counters.submit_rate()
        rate["budget"] = s.rate_limit
        rate["ratio"] = round(rate["overall"] / s.rate_limit, 3) if rate["overall"] else None
        r["submit_rate"] = rate
        self._db_figures(clock, fake_cfg)

    def _finish(self) -> dict[str, Any]:
        """Jump the fake's clock past the end of every job (they all succeed at once, outputs
        written), then wait for the daemon to see them end and check their outputs."""
        s = self.s
        jump = 2 * s.duration_mean * (1 + s.duration_spread)
        started = time.time()
        self.fake.call("POST", "/_fake/advance", {"seconds": jump})
        self.log(f"{s.name}: fake clock advanced {jump:g} s sim; running to the end")
        final = self._wait(started, True)
        self.result["finish_seconds"] = round(time.time() - started, 2)
        return final

    def _wait(self, submitted_real: float, complete: bool) -> dict[str, Any]:
        s = self.s
        deadline = time.monotonic() + s.timeout
        last_note = 0.0
        while True:
            # The dashboard carries status and counts and costs the daemon far less than the
            # workflow status (per-step counts): the harness must not load what it measures.
            status = self.overview()
            counts = status["counts"]
            done = (status["status"] in TERMINAL if complete
                    else not any(counts.get(k) for k in NOT_YET_SUBMITTED)
                    or status["status"] in TERMINAL)
            if done:
                self.log(f"{s.name}: {status['status']} after "
                         f"{time.time() - submitted_real:.1f} s real: {counts}")
                return status
            self.daemon.assert_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{s.name} still {status['status']} after {s.timeout} s: "
                                   f"{counts}")
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                self.log(f"{s.name}: {time.time() - submitted_real:.0f} s: {counts}")
            time.sleep(2.0 if s.jobs > 2000 else 0.25)

    def _latencies(self) -> dict[str, Any]:
        n = self.s.latency_calls
        d = self.daemon
        # As installed: pip writes batchctl's bytecode at install time. Without it (a fresh
        # clone, or PYTHONDONTWRITEBYTECODE as on the project's machine) every call compiled
        # render.py again: ~20 ms of each figure was the measuring setup's, not batchctl's.
        compileall.compile_dir(str(Path(batchctl.__file__).parent), quiet=1)
        target = f"{PROJECT}/{WORKFLOW}"
        status_cli = time_command(self.ctl_argv("status", target), d.env, str(d.root), n)
        dash_cli = time_command(self.ctl_argv("dashboard"), d.env, str(d.root), n)
        client = self.client
        status_api = [timed(lambda: client.get(self.wf_path()))[0] for _ in range(n)]
        dash_api = [timed(lambda: client.get("/v1/dashboard"))[0] for _ in range(n)]
        ms = 1000.0
        return {"status_cli_ms": summary(status_cli, ms), "dashboard_cli_ms": summary(dash_cli, ms),
                "status_api_ms": summary(status_api, ms),
                "dashboard_api_ms": summary(dash_api, ms)}

    def _api_figures(self, stats: dict[str, Any], before: dict[str, int]) -> None:
        s, r = self.s, self.result
        calls = {op: n - before.get(op, 0) for op, n in stats["calls"].items()}
        batch = {op: n for op, n in calls.items() if n and not op.startswith(("S3.", "Logs."))}
        s3 = {op: n for op, n in calls.items() if n and op.startswith("S3.")}
        outputs = s.jobs             # one output per job
        r["batch_calls"] = dict(sorted(batch.items()))
        r["batch_calls_per_job"] = {op: round(n / s.jobs, 4) for op, n in sorted(batch.items())}
        r["batch_calls_per_job"]["total"] = round(sum(batch.values()) / s.jobs, 4)
        r["s3_calls"] = dict(sorted(s3.items()))
        r["s3_calls_per_output"] = {op: round(n / outputs, 4) for op, n in sorted(s3.items())}
        r["s3_calls_per_output"]["total"] = round(sum(s3.values()) / outputs, 4)
        # Each job record DescribeJobs returned is parsed and recorded: with long jobs this,
        # not the number of calls, is what a job's polling costs the daemon.
        r["polls_per_job"] = round(stats.get("described_ids", 0) / s.jobs, 2)
        r["throttled"] = stats["throttled_total"]
        r["errors_5xx"] = stats["errors_5xx_total"]
        r["jobs_created_in_fake"] = stats["jobs_created"]
        r["duplicate_job_names"] = len(stats["duplicate_job_names"])
        r["fake_outcomes"] = stats["outcomes"]

    def _db_figures(self, clock: SimTime, fake_cfg: dict[str, Any]) -> None:
        s, r = self.s, self.result
        db = DbView(self.daemon.database)
        try:
            # After the clock jump of a `finish` run, the end times are simulated instants
            # inside the jump: no latency can be read from them.
            lat = ([] if s.finish else
                   [clock.sim(at) - stopped for stopped, at in db.detections()])
            det = summary(lat)
            det["unit"] = "simulated seconds"
            det["poll_interval_sim"] = s.poll_sim
            det["p50_ratio"] = round(det["p50"] / s.poll_sim, 3) if det["p50"] is not None else None
            det["p95_ratio"] = round(det["p95"] / s.poll_sim, 3) if det["p95"] is not None else None
            det["clock_error_sim"] = round(clock.error_sim, 3)
            det["negative"] = sum(1 for x in lat if x < -clock.error_sim - 0.01)
            r["detection_latency"] = det
            bounds = s.lower_bound(fake_cfg)
            start, end = db.span()
            makespan = None
            if s.wait_complete and start and end:
                makespan = round((end - start) * s.time_scale, 1)
            r["makespan"] = {"sim_seconds": makespan, "real_seconds":
                             round(end - start, 2) if (makespan and start and end) else None,
                             **{k: (round(v, 1) if isinstance(v, float) else v)
                                for k, v in bounds.items()},
                             "ratio": round(makespan / bounds["lower_bound"], 3)
                             if makespan else None}
            # The same bound with the work actually run (retried attempts included): the
            # ratio to it is the scheduling overhead alone, without the failures' extra work.
            work = db.vcpu_seconds()
            actual = max(bounds["critical_path"], bounds["tps_budget"],
                         work / max(1, s.capacity))
            r["makespan"]["work_vcpu_seconds"] = round(work, 1)
            r["makespan"]["lower_bound_actual_work"] = round(actual, 1)
            r["makespan"]["ratio_actual_work"] = (round(makespan / actual, 3)
                                                  if makespan and actual else None)
            r["attempts_by_state"] = db.attempts_by_state()
            r["failure_classes"] = db.failure_classes()
        finally:
            db.close()

    def _restart(self) -> dict[str, Any]:
        d = self.daemon
        seconds_stop, _ = timed(lambda: d.stop(timeout=120))
        start = time.perf_counter()
        d.start(timeout=120)
        answered = time.perf_counter() - start
        status_after, _ = timed(self.status)
        self.log(f"{self.s.name}: restart answered after {answered:.2f} s")
        return {"stop_seconds": round(seconds_stop, 2),
                "socket_answers_seconds": round(answered, 2),
                "first_status_ms": round(status_after * 1000, 1)}

    def _teardown(self) -> None:
        d = self.daemon
        if d is not None and d.proc is not None:
            d.stop(timeout=60)
        if self.fake is not None:
            self.fake.stop()
        if d is not None:
            if self.keep:
                self.result["kept_dir"] = str(d.root)
            else:
                d.remove()


def run_all(scenarios: list[Scenario], **kwargs: Any) -> list[dict[str, Any]]:
    from .responsive import ResponsiveRun  # it builds on Run

    return [(ResponsiveRun if s.kind == "responsive" else Run)(s, **kwargs).execute()
            for s in scenarios]


def machine() -> dict[str, Any]:
    import os
    import platform
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform()}
