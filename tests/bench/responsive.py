"""The `responsive` scenario: does everyone else still get answers while big imports run?

A real `batchd --backend local` (under tests.bench.lagprobe) first gets a small project and
workflow of "another user". Then `users` clients at once each import the scenario's table
(100,000 rows at full size) and create its 3-step workflow (300,000 jobs), through batchctl,
while a thread asks for the small workflow's status over the socket again and again.
Reported: the event-loop lag samples (every 10 ms) taken between the first import's start and
the last create's end, and the latencies of those status requests.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from batchctl.client import Client, CtlError

from . import lagprobe
from .metrics import ProcSampler, percentile, timed
from .procs import BenchDaemon
from .runner import WORKFLOW, Run
from .scenarios import write_inputs

OTHER = "other"


def lag_summary(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    def pick(q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * scale, 2)

    return {"n": len(values), "p50": pick(50), "p95": pick(95), "p99": pick(99),
            "max": round(max(values) * scale, 2) if values else None}


def arrival_wait(lags: list[float], window: float, q: float) -> float | None:
    """The q-th percentile of the wait of a request arriving at a random moment of `window`
    seconds. A stall of L seconds is one late sample, so a percentile over the samples hides
    it (one 2.6 s stall among 900 samples leaves the p99 at 11 ms); by time, everything
    arriving during it waits for its end, 0..L s: P(wait > w) = sum(max(0, L - w)) / window."""
    if not lags or window <= 0:
        return None
    beyond = window * (1 - q / 100)
    lo, hi = 0.0, max(lags)
    if sum(lags) <= beyond:
        return 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(max(0.0, lag - mid) for lag in lags) > beyond:
            lo = mid
        else:
            hi = mid
    return hi


def loop_lag(lags: list[float], window: float) -> dict[str, Any]:
    """Milliseconds; p50/p99 by time (arrival_wait), samples_p99 over the samples."""
    per_sample = lag_summary(lags)
    out: dict[str, Any] = {"n": per_sample["n"], "max": per_sample["max"]}
    for q in (50, 99):
        wait = arrival_wait(lags, window, q)
        out[f"p{q}"] = None if wait is None else round(wait * 1000, 2)
    out["samples_p99"] = per_sample["p99"]
    out["stalled_seconds"] = round(sum(lag for lag in lags if lag > 0.1), 3)
    return out


class StatusProbe:
    """Another client: `GET` the small workflow's status back to back (20 ms apart) and keep
    each answer's latency. Errors are kept too: a refused request is not an answer."""

    def __init__(self, client: Client, path: str, pause: float = 0.02) -> None:
        self.client, self.path, self.pause = client, path, pause
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="status-probe")

    def start(self) -> StatusProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seconds, _ = timed(lambda: self.client.get(self.path))
                self.latencies.append(seconds)
            except CtlError as exc:
                self.errors.append(str(exc)[:300])
            self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=180)


class ResponsiveRun(Run):
    def _execute(self) -> None:
        s, r = self.s, self.result
        self.log(f"{s.name}: {s.users} user(s) each importing {s.samples} samples and creating "
                 f"{s.jobs} jobs on the local backend")
        daemon = self.daemon = BenchDaemon("http://127.0.0.1:9", ["--log-level", "info"],
                                           backend="local")
        lag_path = daemon.root / "loop-lag.txt"
        daemon.launcher = ["-m", "tests.bench.lagprobe", str(lag_path)]
        daemon.start(timeout=60)
        sampler = ProcSampler(daemon.proc.pid).start()

        # create checks the steps' job definition against the local registry
        jobdef = daemon.root / "jobdef.json"
        jobdef.write_text(json.dumps({
            "jobDefinitionName": "fake-jobdef", "type": "container",
            "containerProperties": {"image": "none", "command": ["true"], "resourceRequirements": [
                {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}}))
        self.ctl("jobdef", "register", str(jobdef))
        small = daemon.root / "other.csv"
        small.write_text("sample_name,file_name\n" +
                         "".join(f"o{i},o{i}.fq\n" for i in range(10)))
        small_wf = daemon.root / "other.json"
        small_wf.write_text(json.dumps(s.definition(WORKFLOW)))
        self.ctl("import", OTHER, "--metadata", str(small))
        self.ctl("create", OTHER, "--definition", str(small_wf))
        csv, wf = write_inputs(s, daemon.root, WORKFLOW)

        probe = StatusProbe(Client(str(daemon.socket), timeout=300),
                            f"/v1/projects/{OTHER}/workflows/{WORKFLOW}").start()
        times: dict[int, dict[str, float]] = {}
        failures: list[str] = []

        def user(i: int) -> None:
            try:
                project = f"big{i}"
                times[i] = {"import": self.ctl("import", project, "--metadata", csv),
                            "create": self.ctl("create", project, "--definition", wf)}
            except Exception as exc:  # noqa: BLE001 - reported as the run's error below
                failures.append(f"user {i}: {exc}"[:2000])

        started = time.time()
        users = [threading.Thread(target=user, args=(i,), name=f"user-{i}")
                 for i in range(s.users)]
        for thread in users:
            thread.start()
        for thread in users:
            thread.join()
        ended = time.time()
        probe.stop()
        if failures:
            raise RuntimeError("; ".join(failures))
        r["import_seconds"] = round(max(t["import"] for t in times.values()), 3)
        r["create_seconds"] = round(max(t["create"] for t in times.values()), 3)
        r["window_seconds"] = round(ended - started, 3)
        final = self.client.get(f"/v1/projects/big0/workflows/{WORKFLOW}")
        r["final_status"], r["final_counts"] = final["status"], final["counts"]
        r["jobs_created"] = final["total"] * s.users
        daemon.stop(timeout=120)
        r["daemon"] = sampler.stop()
        lags = lagprobe.read(str(lag_path), started, ended)
        r["loop_lag_ms"] = loop_lag(lags, ended - started)
        r["latency"] = {"status_during_ms": lag_summary(probe.latencies),
                        "status_errors": probe.errors[:5]}
        self.log(f"{s.name}: import {r['import_seconds']} s, create {r['create_seconds']} s, "
                 f"loop lag p99 {r['loop_lag_ms']['p99']} ms max {r['loop_lag_ms']['max']} ms, "
                 f"status p99 {r['latency']['status_during_ms']['p99']} ms")
