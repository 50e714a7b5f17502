"""The crash-point test's scenario and its checks (tests/e2e/test_crash_points.py).

One project `p`, eight samples, four workflows on the fake AWS:
- `p/wf`: one sample per behaviour: success, app failure retried, OOM retried with more memory,
  spot reclaim, outputs missing (given up after 3 attempts), a LOST job (the test makes the fake
  forget its first attempt while it runs), a SubmitJob AWS rejects (given up at once) and one
  that fails 3 times, is given up and then `batchctl resubmit`-ted (its 4th attempt succeeds).
- `p/cx`: every job hangs on a 2-vCPU queue, so when it is cancelled attempts are RUNNING
  (TerminateJob) and RUNNABLE (CancelJob).
- `p/cy`: every SubmitJob answer is held by the fake (`hold_submit_names`), so when it is
  cancelled its attempts are SUBMITTING with the send in flight; the answers come after the
  cancel, and those jobs must then be terminated in AWS.
- `p/cz`: every SubmitJob is refused (429, `throttle_submit_names`), so when it is cancelled
  its attempts are SUBMITTING, waiting to be sent again: they must never be.

The user's steps are batchctl commands (retried once, after a clean restart, if the daemon died
under them); waiting reads the control API directly (a batchctl process per poll would be
most of a run's time). `check` returns the outcome and raises AssertionError with one line.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchctl.client import Client, CtlError
from tests.e2e.aws_fixtures import _wf_path, analysis, samples_csv

SAMPLES = {"ok": "success", "retry": "app_error_once", "oom": "oom_once", "spot": "spot_once",
           "noout": "no_outputs", "lost": "hang_once", "resub": "app_error_x3",
           "reject": "not_a_behaviour"}    # the fake refuses this SubmitJob (HTTP 400)
TARGETS = ("p/wf", "p/cx", "p/cy", "p/cz")
CANCELLED_TARGETS = ("p/cx", "p/cy", "p/cz")
FINISHED = ("COMPLETED", "FAILED", "CANCELLED")
EARLY = ("WAITING", "READY", "QUEUED", "SUBMITTING")     # not in the backend yet
ATTEMPT_FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
AWS_ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
THROTTLED = "p-cz-"                  # job name prefix of the workflow whose SubmitJobs are refused
LOST_FIRST = "p-wf-lost-s0-a1-"       # job name prefix of the attempt the fake forgets
WAIT = 60.0                          # seconds per stage before giving up (then `check` fails)


@dataclass
class Run:
    fake: Any
    daemon: Any
    cancel_returned: float = float("inf")      # epoch seconds: every cancel had answered
    states_at_cancel: dict[str, dict[str, int]] = field(default_factory=dict)
    lost_forgotten: bool = False

    # -- the daemon ----------------------------------------------------------------------
    def alive(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    def start(self, env: dict[str, str]) -> None:
        self.daemon.env.update(env)
        try:
            self.daemon.start()
        except RuntimeError:
            pass               # died during start-up (a crash point): restarted below
        if not self.alive():
            self.restart_clean()

    def restart_clean(self) -> None:
        if self.daemon.proc is not None:
            self.daemon.stop()
        for key in ("BATCHD_CRASH_AT", "BATCHD_CRASH_LOG"):
            self.daemon.env.pop(key, None)
        self.daemon.start()

    def died_at(self, point: str, n: int) -> bool:
        return any(f"crash point {point} pass {n}" in p.read_text(errors="replace")
                   for p in self.daemon.log_paths if p.exists())

    def close(self) -> None:
        self.daemon.cleanup()
        self.fake.stop()

    # -- what a user does ----------------------------------------------------------------
    def act(self, *args: str) -> None:
        """A batchctl step that survives the daemon dying under it: restart clean, retry once
        (the retry may say "already exists" / "nothing to cancel" after a crash past the
        commit, which is the point)."""
        if self.alive() and self.daemon.ctl(*args, check=False).returncode == 0:
            return
        if not self.alive():
            self.restart_clean()
        self.daemon.ctl(*args, check=False)

    def read(self, path: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
        return Client(str(self.daemon.socket), timeout=30).get(path, query)

    def counts(self, target: str) -> dict[str, int]:
        return self.read(_wf_path(target))["counts"]

    def drive(self, done: Callable[[], bool], timeout: float = WAIT) -> bool:
        """Keep the daemon up (restarted clean after its crash) until `done()`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self.restart_clean()
            try:
                self.forget_lost()
                if done():
                    return True
            except (CtlError, OSError, KeyError, ValueError):
                pass           # the daemon died under the read: restarted above
            time.sleep(0.1)
        return False

    def forget_lost(self) -> None:
        """The fake forgets the lost sample's first attempt while it runs, once batchd has
        recorded its id (forgotten before that, it is indistinguishable from never sent)."""
        if self.lost_forgotten:
            return
        running = [j["jobId"] for j in self.fake.jobs(name=LOST_FIRST + "*")
                   if j["status"] == "RUNNING"]
        if not running:
            return
        jobs = self.read(_wf_path("p/wf") + "/jobs", {"sample": "lost"})["jobs"]
        if any(j["state"] == "RUNNING" for j in jobs):
            self.fake.forget(running)
            self.lost_forgotten = True


def scenario(fake_aws_factory, aws_daemon_factory, env: dict[str, str]) -> Run:
    fake = fake_aws_factory(time_scale=1000, duration_mean=20,
                            queues=[{"name": "default", "max_vcpus": 4096},
                                    {"name": "narrow", "max_vcpus": 2}],
                            hold_submit_names="p-cy-*", hold_submit_seconds=20,
                            throttle_submit_names=THROTTLED + "*")
    run = Run(fake, aws_daemon_factory(fake.url, poll=0.1))
    run.start(env)
    root = run.daemon.root
    (root / "p.csv").write_text(samples_csv(list(SAMPLES), behaviour=lambda s: SAMPLES[s]))
    definitions = {
        "wf": analysis(0, parameters={"fake_behaviour": "{behaviour}"},
                       retry={"max_attempts": 3}),
        "cx": {**analysis(0, parameters={"fake_behaviour": "hang"}), "queue": "narrow"},
        "cy": analysis(0, parameters={"fake_behaviour": "hang"}),
        "cz": analysis(0, parameters={"fake_behaviour": "hang"})}
    run.act("import", "p", "--metadata", str(root / "p.csv"))
    for name, step in definitions.items():
        (root / f"{name}.json").write_text(json.dumps({"workflow_name": name,
                                                       "analyses": [step]}))
        run.act("create", "p", "--definition", str(root / f"{name}.json"))
    run.act("submit", "p/wf")
    run.act("submit", "p/cx")
    run.drive(lambda: bool(run.counts("p/cx").get("RUNNING")
                           and run.counts("p/cx").get("RUNNABLE")))
    run.act("submit", "p/cy")

    def cy_in_flight() -> bool:
        counts = run.counts("p/cy")
        if counts.get("SUBMITTING") and fake.stats()["held_submits"]:
            return True
        # After a crash the held sends are reconciled by name instead: nothing to wait for.
        return bool(counts) and not any(counts.get(s) for s in EARLY)

    run.drive(cy_in_flight)
    run.act("submit", "p/cz")
    # Refused, recorded as such (waiting to be sent again); after a crash, once looked up.
    run.drive(lambda: any(a["submit_status"] in ("pending", "unsent") for a in run.read(
        _wf_path("p/cz") + "/attempts")["attempts"]))

    def note_states() -> bool:      # what the cancels meet (a drive: the daemon may die)
        run.states_at_cancel = {t.split("/")[1]: run.counts(t) for t in CANCELLED_TARGETS}
        for name in ("cy", "cz"):
            sending = [a["submit_status"] for a in run.read(_wf_path(f"p/{name}") + "/attempts")
                       ["attempts"] if a["state"] == "SUBMITTING"]
            run.states_at_cancel[f"{name}_sending"] = {s: sending.count(s) for s in set(sending)}
        return True

    run.drive(note_states)
    for target in CANCELLED_TARGETS:
        run.act("cancel", target, "--reason", "crash test", "--yes")
    run.cancel_returned = time.time()
    fake.call("POST", "/_fake/release", {})
    # `resub` gives up after 3 attempts (the workflow FAILED), then the user resubmits it.
    run.drive(lambda: run.read(_wf_path("p/wf"))["status"] in FINISHED)
    run.act("resubmit", "p/wf", "--sample", "resub", "--status", "FAILED")

    def settled() -> bool:
        if any(run.read(_wf_path(t))["status"] not in FINISHED for t in TARGETS):
            return False
        if [j for j in fake.jobs(limit=100000) if j["status"] in AWS_ACTIVE]:
            return False
        # The last polls record how the attempts ended (a terminated job's attempt included).
        return all(a["state"] in ATTEMPT_FINISHED for t in TARGETS
                   for a in run.read(_wf_path(t) + "/attempts")["attempts"])

    run.drive(settled)
    # Checked on a daemon that cannot die under the checks: one that did not reach its crash
    # point (or reached it after the last look) is restarted without the switch first.
    if not run.alive() or "BATCHD_CRASH_AT" in run.daemon.env:
        run.restart_clean()
        run.drive(settled)
    return run


@dataclass
class Outcome:
    states: dict[tuple[str, str], str]        # (workflow, sample) -> final job state
    attempts: dict[tuple[str, str], int]      # (workflow, sample) -> attempts made

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (target, _), state in self.states.items():
            out[target][state] += 1
        return {t: dict(c) for t, c in out.items()}

    def differences(self, reference: Outcome) -> str | None:
        if self.counts() != reference.counts():
            return f"terminal counts {self.counts()} != reference {reference.counts()}"
        for name, mine, ref in (("state", self.states, reference.states),
                                ("attempts", self.attempts, reference.attempts)):
            diff = {f"{t} {s}": (ref.get((t, s)), v) for (t, s), v in mine.items()
                    if ref.get((t, s)) != v}
            if diff:
                return f"job {name} differ (reference, this run): {diff}"
        return None


def check(run: Run) -> Outcome:
    """The invariants after a run; returns the outcome to compare with the reference."""
    jobs = {t: run.read(_wf_path(t) + "/jobs", {"limit": 1000})["jobs"] for t in TARGETS}
    states = {(t, j["sample"]): j["state"] for t, rows in jobs.items() for j in rows}
    stuck = {f"{t} {s}": v for (t, s), v in states.items() if v not in FINISHED}
    assert not stuck, f"jobs left non-terminal: {stuck}"
    stats = run.fake.stats(names=True)
    created = stats["submits_by_name"]
    dup = sorted(n for n, k in created.items() if k > 1)
    assert not dup, f"SubmitJob created more than one job for {dup}"
    fake_jobs = run.fake.jobs(limit=100000)
    active = sorted(j["jobName"] for j in fake_jobs if j["status"] in AWS_ACTIVE)
    assert not active, f"jobs still active in AWS after the end: {active}"
    late = {n: round(t - run.cancel_returned, 2) for n, t in stats["last_submit_at"].items()
            if n.startswith(("p-cx-", "p-cy-", "p-cz-")) and t > run.cancel_returned}
    assert not late, f"SubmitJob sent after its job was cancelled (s after): {late}"
    attempts = {t: run.read(_wf_path(t) + "/attempts")["attempts"] for t in TARGETS}
    known = {a["job_name"] for rows in attempts.values() for a in rows}
    strangers = sorted(set(created) - known)
    assert not strangers, f"AWS has jobs batchd has no attempt for: {strangers}"
    fake_ids = {j["jobName"]: j["jobId"] for j in fake_jobs}
    tries: dict[tuple[str, str], int] = {}
    for target, rows in attempts.items():
        per_job: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        for a in rows:
            per_job[(a["sample"], a["step"])].append(a)
        for (sample, _), history in per_job.items():
            _check_history(f"{target} {sample}", history, states[(target, sample)],
                           created, fake_ids)
            tries[(target, sample)] = len(history)
    return Outcome(states, tries)


def _check_history(label: str, history: list[dict[str, Any]], job_state: str,
                   created: dict[str, int], fake_ids: dict[str, str]) -> None:
    numbers = [a["attempt"] for a in history]
    assert numbers == list(range(1, len(numbers) + 1)), f"{label}: attempts {numbers}"
    for a in history:
        what = f"{label} attempt {a['attempt']}"
        assert f"-a{a['attempt']}-" in a["job_name"], f"{what}: name {a['job_name']}"
        assert a["state"] in ATTEMPT_FINISHED, f"{what} left {a['state']}"
        assert a["state"] == "SUCCEEDED" or a["status_reason"], f"{what}: no reason"
        if a["backend_job_id"]:
            in_aws = fake_ids.get(a["job_name"])
            assert in_aws == a["backend_job_id"] or (
                in_aws is None and a["failure_class"] == "lost"), \
                f"{what}: recorded job {a['backend_job_id']}, AWS has {in_aws}"
        else:
            assert not created.get(a["job_name"]), \
                f"{what}: AWS created {a['job_name']}, batchd never recorded its id"
    if job_state == "COMPLETED":
        assert history and history[-1]["state"] == "SUCCEEDED", \
            f"{label}: COMPLETED but its last attempt is {history[-1]['state']}"
    for before, after in itertools.pairwise(history):
        if before["failure_class"] == "oom":
            assert (after["memory"] or 0) > (before["memory"] or 0), \
                f"{label}: no memory bump after an OOM ({before['memory']} -> {after['memory']})"
