"""Benchmark scenarios: sizes, fake AWS configuration, daemon flags, inputs, lower bounds.

Units: `duration_mean`, `poll_sim` and every makespan figure are *simulated* seconds (the fake's
clock runs `time_scale` times faster than real time); `rate_limit` and `fake_tps` are real
calls per second (the fake's TPS limit and batchd's budget both run in real time). The daemon's
`--poll-interval` is real seconds, so a 30 s simulated poll interval is `30 / time_scale`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

BUCKET = "bench"
JOBDEF_VCPUS = 1.0            # the fake's default job definition: 1 vCPU, 2048 MiB
SCENARIOS = ("throughput", "pipeline", "scale", "responsive")


@dataclass
class Scenario:
    name: str                      # report key, e.g. "throughput-45"
    kind: str                      # throughput | pipeline | scale
    samples: int
    steps: int = 1
    time_scale: float = 60.0
    poll_sim: float = 30.0         # simulated seconds between polls of one job
    rate_limit: float = 45.0       # batchd --rate-limit (real TPS budget)
    fake_tps: float | None = 50.0  # the fake's TPS limit (None = unlimited)
    capacity: int = 100_000        # vCPUs of the single queue's compute environment
    duration_mean: float = 60.0    # simulated seconds RUNNING
    duration_spread: float = 0.0
    spot_rate: float = 0.0
    oom_rate: float = 0.0
    fail_fraction: float = 0.0     # samples whose every attempt fails (app error)
    max_in_flight: int | None = 1_000_000   # None: batchd's default per-queue cap
    wait_complete: bool = True     # run until the workflow ends (else: until all submitted)
    latency_calls: int = 50        # batchctl status / dashboard calls for p50/p95
    restart: bool = False          # measure the time until a restarted daemon answers
    # With wait_complete off: once everything is tracked and measured, jump the fake's clock
    # past every job's end and run on until the workflow ends, so CPU covers a full run.
    finish: bool = False
    users: int = 1                 # responsive: clients importing and creating at once
    timeout: float = 3600.0        # real seconds before the run is abandoned
    seed: int = 7
    notes: str = ""

    @property
    def jobs(self) -> int:
        return self.samples * self.steps

    @property
    def poll_real(self) -> float:
        return self.poll_sim / self.time_scale

    def fake_config(self) -> dict[str, Any]:
        return {
            "time_scale": self.time_scale, "seed": self.seed,
            "duration_mean": self.duration_mean, "duration_spread": self.duration_spread,
            "spot_rate": self.spot_rate, "oom_rate": self.oom_rate,
            "tps_limit": self.fake_tps,
            # Long runs at high time scales must not see finished jobs vanish mid-run.
            "retention_seconds": 10 * 365 * 86400,
            "log_lines": 1,
            "queues": [{"name": "bench", "max_vcpus": self.capacity}],
            # Always-failing samples by rule: a `fake_behaviour` parameter on every job would
            # switch off the random spot/OOM outcomes for all of them.
            "rules": [{"match": {"param.fake_group": "fail"}, "behaviour": "app_error"}],
        }

    def daemon_args(self) -> list[str]:
        cap = [] if self.max_in_flight is None else ["--max-in-flight", str(self.max_in_flight)]
        return ["--poll-interval", f"{self.poll_real:.6g}", "--rate-limit", f"{self.rate_limit:g}",
                *cap, "--log-level", "info"]

    # -- inputs ------------------------------------------------------------------------------
    def failing_samples(self) -> set[int]:
        if self.fail_fraction <= 0:
            return set()
        every = max(1, round(1 / self.fail_fraction))
        return {i for i in range(self.samples) if i % every == every // 2}

    def samples_csv(self) -> str:
        failing = self.failing_samples()
        lines = ["sample_name,file_name,behaviour"]
        for i in range(self.samples):
            lines.append(f"s{i:06d},s3://inputs/s{i:06d}.fq,"
                         f"{'fail' if i in failing else 'ok'}")
        return "\n".join(lines) + "\n"

    def definition(self, workflow: str) -> dict[str, Any]:
        analyses = []
        for step in range(self.steps):
            out = f"s3://{BUCKET}/{{project_name}}/{workflow}/{{sample_name}}.step{step}.json"
            params = {"out": out}
            if self.fail_fraction > 0:
                params["fake_group"] = "{behaviour}"
            analyses.append({"job_definition": "fake-jobdef", "queue": "bench",
                             "outputs": [out], "parameters": params,
                             "description": f"{self.kind} step {step}"})
        return {"workflow_name": workflow, "analyses": analyses}

    # -- bounds ------------------------------------------------------------------------------
    def lower_bound(self, fake_cfg: dict[str, Any] | None = None) -> dict[str, float]:
        """Makespan lower bound in simulated seconds (ignores retries: optimistic)."""
        cfg = fake_cfg or {}
        fixed = float(cfg.get("submitted_seconds", 1.0)) + float(cfg.get("starting_seconds", 5.0))
        critical = self.steps * (self.duration_mean + fixed)
        capacity = self.jobs * self.duration_mean * JOBDEF_VCPUS / max(1, self.capacity)
        tps = self.jobs / self.rate_limit * self.time_scale
        bounds = {"critical_path": critical, "capacity": capacity, "tps_budget": tps}
        bounds["lower_bound"] = max(bounds.values())
        bounds["binding"] = max(("critical_path", "capacity", "tps_budget"),
                                key=lambda k: bounds[k])
        return bounds

    def params(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["jobs"] = self.jobs
        out["poll_real"] = self.poll_real
        return out


# ------------------------------------------------------------------------------ catalogue
def build(kind: str, *, scale: float = 1.0, jobs: int | None = None,
          smoke: bool = False) -> list[Scenario]:
    """The runs of one scenario kind. `jobs` overrides the number of samples (x steps),
    `scale` multiplies the default sizes, `smoke` = tiny sizes and a fast clock (CI)."""

    def size(default: int, steps: int = 1) -> int:
        if jobs is not None:
            return max(1, jobs // steps)
        if smoke:
            return max(1, {"throughput": 300, "pipeline": 100, "scale": 500,
                           "responsive": 500}[kind] // 1)
        return max(1, int(default * scale))

    if kind == "throughput":
        n = size(20_000)
        common = dict(kind=kind, samples=n, time_scale=600 if smoke else 60,
                      duration_mean=60.0, duration_spread=0.2, capacity=1_000_000,
                      timeout=120 if smoke else 3600,
                      notes="single-step jobs of ~60 s (sim); capacity never binds")
        # At AWS's fixed SubmitJob quota only: a raised budget measured a bypass of botocore
        # that is gone (issue 15); `scale` still submits faster, to fill up quickly.
        return [Scenario(name="throughput-45", rate_limit=45, fake_tps=50, **common)]
    if kind == "pipeline":
        n = size(10_000, 3)
        # Capacity chosen so that vCPU-seconds / capacity is the binding bound (RUNNABLE
        # waits), ~1.5x the TPS bound at a 45 TPS budget.
        tscale = 600 if smoke else 30
        duration = 600.0
        tps_bound = n * 3 / 45 * tscale
        capacity = max(4, int(n * 3 * duration / (1.5 * max(tps_bound, 3 * duration))))
        return [Scenario(name="pipeline", kind=kind, samples=n, steps=3, time_scale=tscale,
                         rate_limit=45, fake_tps=50, capacity=capacity,
                         duration_mean=duration, duration_spread=0.5, spot_rate=0.05,
                         oom_rate=0.02, fail_fraction=0.005,
                         # batchd's default cap (1,000 in flight per queue), as a user runs
                         # it: unlimited, every step-0 job would sit in AWS's FIFO queue
                         # ahead of the later steps.
                         max_in_flight=None,
                         timeout=120 if smoke else 3600,
                         notes="3 steps, spread 0.5, capacity forces RUNNABLE waits, "
                               "5% spot, 2% OOM, 0.5% samples always fail")]
    if kind == "scale":
        n = size(100_000)
        return [Scenario(name="scale", kind=kind, samples=n, time_scale=1.0 if not smoke else 10,
                         rate_limit=400, fake_tps=500, capacity=1_000_000,
                         duration_mean=36_000.0, duration_spread=0.1, wait_complete=False,
                         restart=True, finish=True, latency_calls=10 if smoke else 50,
                         timeout=180 if smoke else 3600,
                         notes="long jobs: all tracked in flight while measuring, then the "
                               "fake's clock jumps past their end and the run completes; "
                               "submitted at a raised 400 TPS budget")]
    if kind == "responsive":
        # Local backend, nothing submitted: only the daemon's answers while it takes in big
        # imports and creates are measured (tests/bench/responsive.py).
        n = size(100_000, 3)
        common = dict(kind=kind, samples=n, steps=3, wait_complete=False,
                      timeout=180 if smoke else 3600,
                      notes="100,000-row import + 300,000-job create while another client "
                            "asks for a small workflow's status; loop lag sampled every 10 ms")
        return [Scenario(name="responsive", users=1, **common),
                Scenario(name="responsive-2", users=2, **common)]
    raise ValueError(f"unknown scenario {kind!r}; choose from {', '.join(SCENARIOS)} or all")


def write_inputs(scenario: Scenario, directory, workflow: str) -> tuple[str, str]:
    csv = directory / f"{scenario.name}.csv"
    wf = directory / f"{scenario.name}.json"
    csv.write_text(scenario.samples_csv())
    wf.write_text(json.dumps(scenario.definition(workflow)))
    return str(csv), str(wf)
