"""Chaos: one run with every fault at once, and nothing may be lost or duplicated.

A workflow of a few hundred jobs (two steps per sample, spot reclaims and OOM kills drawn by
the fake at random, so jobs retry, some with more memory; a few samples fail for good) runs
against the fake AWS with all its faults on: random throttling, 5xx, lost SubmitJob answers,
S3 SlowDown on HEAD/LIST, CloudWatch Logs throttling and a ListJobs lag. Meanwhile the daemon
is SIGKILLed KILLS times at seeded random moments and restarted each time (as systemd would,
again and again if a start fails), and once mid-run its state directory (a real 32 MiB tmpfs,
needs root; without it that fault is reported as skipped) is filled up, kept full across a
kill, then freed. `batchctl logs` is read now and then throughout.

The fake is the referee. Its outcomes are a pure function of (seed, job name, attempt), and job
names are deterministic, so the test predicts every job's attempts and end state independently
of batchd (`expected_history`) and checks:
- every job terminal, the workflow counts exactly those predicted;
- duplicated = 0: the fake created at most one job per attempt name, and none batchd does not
  know (no orphan running unseen);
- lost = 0: every predicted attempt exists in batchd's history, with the fake's job id, the
  fake's end state and the failure class of what the fake did; attempts numbered 1..n.

`make chaos` runs it bigger (CHAOS_SAMPLES, CHAOS_KILLS, CHAOS_SEED override) and prints the
table: fault -> injected count (the fake's counters), kills, lost, duplicated, wall time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batchctl.client import Client
from batchd.naming import job_name
from tests import raw_http
from tests.e2e.aws_fixtures import Ops, analysis, aws_daemon_factory, fake_aws_factory, samples_csv  # noqa: F401 - fixtures
from tests.fakeaws.outcomes import _uniforms
from tests.integration.test_disk_full import fill

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# x 2 steps. 50 in the test run: under 20 % random throttling batchd's rate sits near its
# floor, so every 100 jobs add minutes (100 jobs ~2.5 min, 200 ~9 min alone on 2 cores).
SAMPLES = int(os.environ.get("CHAOS_SAMPLES", "50"))
KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
SEED = int(os.environ.get("CHAOS_SEED", "14"))
BAD_EVERY = 25            # sample i % BAD_EVERY == 0: step 1 always fails (app error)
PROJECT, WORKFLOW = "chaos", "wf"
FAULTS = {"throttle_rate": 0.20, "error_5xx_rate": 0.02, "drop_submit_response_rate": 0.05,
          "s3_503_rate": 0.10, "logs_throttle_rate": 0.20, "list_lag": 4.0}
OUTCOMES = {"spot_rate": 0.10, "oom_rate": 0.05}
MAX_ATTEMPTS, SPOT_ATTEMPTS = 4, 5
DISK_FULL_SECONDS = 6.0
POLL = float(os.environ.get("CHAOS_POLL", "0.5"))
CLASS_OF = {"spot": "spot", "oom": "oom", "app_error": "app"}


def sample_names() -> list[str]:
    return [f"{'bad' if i % BAD_EVERY == 0 else 's'}{i:05d}" for i in range(SAMPLES)]


def expected_history(sample: str, step: int) -> tuple[list[str], str]:
    """What the fake will do at each attempt of this job, and the job's end state, from the
    fake's outcome rule (tests/fakeaws/outcomes.py) and the retry policy of the workflow."""
    behaviours: list[str] = []
    spot = other = 0
    while True:
        name = job_name(PROJECT, WORKFLOW, sample, step, len(behaviours) + 1)
        if step == 1 and sample.startswith("bad"):
            behaviour = "app_error"
        else:
            u, _ = _uniforms(f"{SEED}/{name}/1")
            behaviour = ("spot" if u < OUTCOMES["spot_rate"] else
                         "oom" if u < OUTCOMES["spot_rate"] + OUTCOMES["oom_rate"] else
                         "success")
        behaviours.append(behaviour)
        if behaviour == "success":
            return behaviours, "COMPLETED"
        if behaviour == "spot":
            spot += 1
            if spot >= SPOT_ATTEMPTS:
                return behaviours, "FAILED"
        else:
            other += 1
            if other >= MAX_ATTEMPTS:
                return behaviours, "FAILED"


@dataclass
class Disk:
    """The state directory on its own small tmpfs: fill it, later free it."""

    path: Path
    mounted: bool = False
    full_since: float | None = None
    free_at: float = 0.0
    times_full: int = 0
    bytes_filled: int = 0

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0750", "tmpfs",
                               str(self.path)], capture_output=True, text=True)
        self.mounted = done.returncode == 0

    def fill(self, seconds: float) -> None:
        self.bytes_filled = fill(self.path)
        self.full_since, self.free_at = time.monotonic(), time.monotonic() + seconds
        self.times_full += 1

    def maybe_free(self, force: bool = False) -> None:
        if self.full_since is not None and (force or time.monotonic() >= self.free_at):
            (self.path / "filler").unlink()
            self.full_since = None

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@dataclass
class Run:
    kills: int = 0
    failed_starts: int = 0
    logs_reads: int = 0
    logs_unreadable: int = 0
    healthz_while_full: int | None = None
    deferred_starts: int = 0
    states_at_kills: Counter = field(default_factory=Counter)


# systemd/batchd.service: Restart=on-failure, but not after these exit statuses (usage error,
# bad settings); StartLimitBurst=5 failed starts and it gives up.
NOT_RESTARTED = (2, 3)
START_LIMIT = 5


def restart(daemon, disk: Disk, run: Run) -> None:
    """Start the daemon again as systemd would: a failed start is retried (a second later here,
    not RestartSec=5s, to keep the run short), but an exit status systemd does not restart, or
    too many failed starts, leaves batchd down: the run fails. The disk is freed when its
    time is up."""
    while True:
        disk.maybe_free()
        try:
            daemon.start(timeout=30)
            return
        except RuntimeError:
            run.failed_starts += 1
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.kill()           # started but never answered: ours, by handle
                daemon.proc.wait()
            code = daemon.proc.returncode if daemon.proc is not None else None
            assert code not in NOT_RESTARTED, (
                f"batchd exited with status {code} at start; systemd would not restart it:\n"
                f"{daemon.log()[-3000:]}")
            assert run.failed_starts < START_LIMIT, daemon.log()[-3000:]
            time.sleep(1.0)


def read_logs(daemon, sample: str, run: Run) -> None:
    """`batchctl logs` under Logs throttling: it answers (possibly saying a log could not be
    read), and never breaks the daemon."""
    result = daemon.ctl("logs", f"{PROJECT}/{WORKFLOW}", "--sample", sample, "--step", "0",
                        check=False, timeout=60)
    run.logs_reads += 1
    run.logs_unreadable += result.stdout.count("!! could not read this log")
    assert "Traceback" not in result.stderr, result.stderr


def workflow_status(daemon) -> dict:
    return Client(str(daemon.socket), timeout=60).get(f"/v1/projects/{PROJECT}/workflows/"
                                                      f"{WORKFLOW}")


@pytest.fixture
def disk():
    made: list[Disk] = []

    def make(path: Path) -> Disk:
        made.append(Disk(path))
        made[-1].mount()
        return made[-1]

    yield make
    for d in made:
        d.unmount()


def test_chaos_every_fault_at_once_loses_and_duplicates_nothing(
        fake_aws_factory, aws_daemon_factory, disk):  # noqa: F811
    rng = random.Random(SEED)
    names = sample_names()
    expected = {(s, step): expected_history(s, step) for s in names for step in (0, 1)}
    assert all(expected[(s, 0)][1] == "COMPLETED" for s in names), \
        f"seed {SEED} fails a step-0 job for good (its step 1 never runs): pick another seed"
    want_counts = Counter(state for _seq, state in expected.values())

    fake = fake_aws_factory(time_scale=200, duration_mean=1000, duration_spread=0.5,
                            retention_seconds=1e9, seed=SEED, **OUTCOMES, **FAULTS,
                            rules=[{"match": {"name": f"{PROJECT}-{WORKFLOW}-bad*-s1-*"},
                                    "behaviour": "app_error"}])
    daemon = aws_daemon_factory(fake.url, rate_limit=50, poll=POLL)
    state = disk(daemon.state_dir)
    daemon.start()
    ops = Ops(daemon)
    started = time.monotonic()
    retry = {"max_attempts": MAX_ATTEMPTS, "spot_attempts": SPOT_ATTEMPTS}
    target = ops.setup(PROJECT, samples_csv(names), {
        "workflow_name": WORKFLOW,
        "analyses": [analysis(0, retry=retry), analysis(1, retry=retry)]})
    full_at = rng.randrange(KILLS // 4, KILLS // 2) if state.mounted else -1

    run = Run()
    while run.kills < KILLS:
        time.sleep(rng.uniform(0.2, 1.5))
        status = workflow_status(daemon)
        if status["status"] != "RUNNING":
            break
        read_logs(daemon, rng.choice(names), run)
        if run.kills == full_at:
            state.fill(DISK_FULL_SECONDS)
            time.sleep(DISK_FULL_SECONDS / 3)           # running on a full disk, then killed
            run.healthz_while_full = raw_http.get(daemon.socket, "/healthz")[0]
            status = workflow_status(daemon)
        run.states_at_kills.update(s for s, n in status["counts"].items() if n)
        daemon.stop(signal.SIGKILL)
        run.kills += 1
        restart(daemon, state, run)                   # frees the disk once its time is up
        if state.full_since is not None:
            time.sleep(max(0.0, state.free_at - time.monotonic()))
            state.maybe_free()
    state.maybe_free(force=True)
    assert run.kills == KILLS, (f"the workflow ended after only {run.kills} kills; make it "
                                f"longer so every kill lands mid-run")

    # Random throttling holds batchd's rate budget near its floor (1 call/s): bigger runs
    # take minutes, so the wait grows with them.
    status = ops.wait_for(target, timeout=300 + 6 * SAMPLES)
    for sample in rng.sample(names, 3):
        read_logs(daemon, sample, run)
    wall = time.monotonic() - started
    daemon.assert_alive()
    run.deferred_starts = len(daemon.events("startup_paused_state_unwritable"))

    # Every job terminal, with exactly the predicted end states.
    jobs = ops.jobs(target)
    assert len(jobs) == len(expected)
    got_states = {key: j["state"] for key, j in jobs.items()}
    wrong = {k: (got_states[k], expected[k][1]) for k in expected
             if got_states[k] != expected[k][1]}
    assert not wrong, f"jobs in another end state than the fake's truth: {wrong}"
    assert status["counts"] == dict(want_counts), (status["counts"], want_counts)

    # The fake's truth, by attempt name.
    stats = fake.stats(names=True)
    truth = {j["jobName"]: j for j in fake.jobs(limit=10_000_000)}
    attempts = Client(str(daemon.socket), timeout=120).request(
        "GET", f"/v1/projects/{PROJECT}/workflows/{WORKFLOW}/attempts")["attempts"]
    ours = Counter(a["job_name"] for a in attempts)
    duplicated = {n: k for n, k in stats["submits_by_name"].items() if k > 1}
    orphans = set(stats["submits_by_name"]) - set(ours)
    lost = check_histories(expected, attempts, truth)

    print_table(stats, run, state, lost, duplicated, orphans, wall, len(expected),
                len(attempts))
    keep = os.environ.get("CHAOS_KEEP")
    if keep and (lost or duplicated or orphans):       # evidence for a defect, kept by hand
        import json
        import shutil
        Path(keep).mkdir(parents=True, exist_ok=True)
        for log in daemon.log_paths:
            if log.exists():
                shutil.copy(log, keep)
        names = set(duplicated) | orphans
        (Path(keep) / "evidence.json").write_text(json.dumps({
            "lost": lost, "duplicated": duplicated, "orphans": sorted(orphans),
            "fake_jobs": {n: fake.jobs(name=n) for n in names},
            "attempts": [a for a in attempts if a["job_name"] in names]}, indent=1))
    assert not duplicated, f"SubmitJob created more than one job for {sorted(duplicated)}"
    assert not orphans, f"jobs in AWS that batchd does not know: {sorted(orphans)}"
    assert set(ours.values()) == {1}, "an attempt name recorded twice"
    assert not lost, "\n".join(lost[:20])
    for fault, key in (("throttle", "throttled_total"), ("5xx", "errors_5xx_total"),
                       ("lost answer", "dropped_submits"), ("S3 503", "s3_503_total"),
                       ("logs throttle", "logs_throttled_total")):
        assert stats[key] > 0, f"no {fault} was injected: the run proved nothing about it"
    # The lag only bites a lookup made too early; batchd waits it out, so what is checked is
    # that lookups were made while it was on (each lost answer and each restart makes some).
    assert stats["calls"].get("ListJobs", 0) > 0
    if state.mounted:
        assert run.healthz_while_full == 503, "the disk was never full for the daemon"


def check_histories(expected, attempts, truth) -> list[str]:
    """Every predicted attempt, in batchd's history, matching the fake. One line per defect."""
    by_job: dict[tuple[str, int], list[dict]] = {}
    for a in attempts:
        by_job.setdefault((a["sample"], a["step"]), []).append(a)
    problems = []
    for (sample, step), (behaviours, _state) in expected.items():
        rows = sorted(by_job.get((sample, step), []), key=lambda a: a["attempt"])
        if [a["attempt"] for a in rows] != list(range(1, len(behaviours) + 1)):
            problems.append(f"{sample} step {step}: attempts {[a['attempt'] for a in rows]}, "
                            f"the fake ran {len(behaviours)}: {behaviours}")
            continue
        for row, behaviour in zip(rows, behaviours, strict=True):
            name = job_name(PROJECT, WORKFLOW, sample, step, row["attempt"])
            fake_job = truth.get(name)
            want = "SUCCEEDED" if behaviour == "success" else "FAILED"
            if row["job_name"] != name or fake_job is None:
                problems.append(f"{name}: not at the fake (batchd has {row['job_name']})")
            elif row.get("backend_job_id") != fake_job["jobId"]:
                problems.append(f"{name}: batchd has job id {row.get('backend_job_id')}, "
                                f"the fake {fake_job['jobId']}")
            elif fake_job["status"] != want or row["state"] != want:
                problems.append(f"{name}: fake {fake_job['status']}, batchd {row['state']}, "
                                f"predicted {want}")
            elif want == "FAILED" and row.get("failure_class") != CLASS_OF[behaviour]:
                problems.append(f"{name}: failure class {row.get('failure_class')}, the fake "
                                f"did {behaviour}")
    return problems


def print_table(stats, run, state, lost, duplicated, orphans, wall, jobs, attempts) -> None:
    rows = [
        ("Batch throttling (429), rate " + f"{FAULTS['throttle_rate']:.0%}",
         stats["throttled_total"]),
        (f"Batch 5xx, rate {FAULTS['error_5xx_rate']:.0%}", stats["errors_5xx_total"]),
        (f"SubmitJob answers lost, rate {FAULTS['drop_submit_response_rate']:.0%}",
         stats["dropped_submits"]),
        (f"S3 503 SlowDown on HEAD/LIST, rate {FAULTS['s3_503_rate']:.0%}",
         stats["s3_503_total"]),
        (f"Logs ThrottlingException, rate {FAULTS['logs_throttle_rate']:.0%}",
         stats["logs_throttled_total"]),
        (f"ListJobs lag {FAULTS['list_lag']:g} s: lookups (answers missing a lagging job)",
         f"{stats['calls'].get('ListJobs', 0)} ({stats['unlisted']})"),
        (f"disk full ({DISK_FULL_SECONDS:g} s, 32 MiB tmpfs)",
         f"{state.times_full} (/healthz {run.healthz_while_full})" if state.mounted
         else "skipped (needs root)"),
        ("SIGKILL + restart", run.kills),
        ("restarts that failed, retried", run.failed_starts),
        ("starts on the full disk (start-up writes deferred)", run.deferred_starts),
        ("spot / OOM / app error outcomes",
         " / ".join(str(stats["outcomes"].get(k, 0)) for k in ("spot", "oom", "app_error"))),
        ("batchctl logs reads (unreadable logs)", f"{run.logs_reads} ({run.logs_unreadable})"),
        ("jobs / attempts", f"{jobs} / {attempts}"),
        ("Batch calls (SubmitJob)", f"{stats['calls_total']} ({stats['calls']['SubmitJob']})"),
        ("LOST", len(lost)),
        ("DUPLICATED", len(duplicated) + len(orphans)),
        ("wall time", f"{wall:.0f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nchaos run (seed {SEED}, {SAMPLES} samples; states seen at kills: "
          f"{dict(run.states_at_kills)})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
