"""Crash safety: SIGKILL the daemon over and over while it submits and polls 1,000 jobs.

The fake AWS is the referee: it counts every job created under every name, so a duplicate
(a SubmitJob resent after a crash without looking first) or a lost job (an attempt batchd
forgot) shows up there even when batchd's own view looks fine.

Scenario 1: 20 kill/restart cycles at random moments (0.2-1.5 s after each start).
Scenario 2: 12 cycles, while the fake also creates a job and then loses the SubmitJob response
(5% of calls), alternating after each kill the way it is lost: connection reset, and empty
HTTP 500. batchd must look those names up (ListJobs) and adopt the job instead of sending it
again. (Fewer kills only to keep the whole file under ~3 minutes: each restart costs ~2 s.)
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from batchctl.client import Client
from tests.e2e.aws_fixtures import Ops, analysis, aws_daemon_factory, fake_aws_factory, samples_csv  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SAMPLES = 500          # x 2 steps = 1,000 jobs


def _status(daemon) -> dict:
    return Client(str(daemon.socket), timeout=30).get(
        "/v1/projects/crash/workflows/wf")


@pytest.mark.parametrize("drop_submits, kills", [(False, 20), (True, 12)],
                         ids=["kills", "kills+lost_responses"])
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
        fake_aws_factory, aws_daemon_factory, drop_submits, kills):  # noqa: F811
    rng = random.Random(20240 + drop_submits)
    # Jobs run ~6-19 s of real time and step 1 of a sample is released only when its step 0
    # completed, so submitting, polling and output checks go on together for the whole run
    # and the kills land in all of them (the states seen at the kills are printed).
    config = {"time_scale": 200, "duration_mean": 2500, "duration_spread": 0.5}
    if drop_submits:
        config.update(drop_submit_response_rate=0.05, drop_submit_mode="close", seed=3)
    fake = fake_aws_factory(**config)
    daemon = aws_daemon_factory(fake.url, rate_limit=50).start()
    ops = Ops(daemon)
    names = [f"s{i:04d}" for i in range(SAMPLES)]
    started = time.monotonic()
    target = ops.setup("crash", samples_csv(names), {
        "workflow_name": "wf", "analyses": [analysis(0), analysis(1)]})
    total = 2 * SAMPLES

    cycles = 0
    seen_at_kill: Counter[str] = Counter()   # job states present at the moments of the kills
    modes: Counter[str] = Counter()
    while cycles < kills:
        time.sleep(rng.uniform(0.2, 1.5))
        status = _status(daemon)
        if status["status"] != "RUNNING":
            break
        seen_at_kill.update(state for state, n in status["counts"].items() if n)
        daemon.stop(signal.SIGKILL)
        cycles += 1
        if drop_submits:      # alternate how the SubmitJob answers get lost
            mode = "500" if cycles % 2 else "close"
            fake.configure(drop_submit_mode=mode)
            modes[mode] += 1
        daemon.start()
    assert cycles == kills, (f"the workflow ended after only {cycles} kills; make it longer "
                             f"so every kill lands mid-run")

    status = ops.wait_for(target, timeout=120)
    wall = time.monotonic() - started
    assert status["status"] == "COMPLETED", status
    assert status["counts"] == {"COMPLETED": total}, status

    # Nothing lost: every job completed, by running (no job found done without a submission).
    jobs = ops.jobs(target)
    assert len(jobs) == total
    assert all(j["state"] == "COMPLETED" and not j["skipped"] for j in jobs.values())
    attempts = Client(str(daemon.socket), timeout=60).request(
        "GET", "/v1/projects/crash/workflows/wf/attempts")["attempts"]
    assert all(a["state"] == "SUCCEEDED" for a in attempts), \
        Counter(a["state"] for a in attempts)
    ours = Counter(a["job_name"] for a in attempts)

    # Nothing duplicated: the fake created exactly one job per attempt name, and only names
    # batchd knows (no orphan job running unseen in the account).
    stats = fake.stats(names=True)
    by_name = stats["submits_by_name"]
    assert stats["duplicate_job_names"] == {}
    assert set(by_name.values()) == {1}
    assert set(by_name) == set(ours) and set(ours.values()) == {1}
    # Each job ran once: no failures were injected, so one attempt per job.
    assert len(by_name) == total == len(attempts)
    submit_calls = stats["calls"]["SubmitJob"]
    assert submit_calls == stats["jobs_created"] == total, stats["calls"]
    assert {j["job_name"] for j in jobs.values()} == set(by_name)

    reconciled = daemon.events("submit_reconciled")
    adopted = {e["job_name"] for e in reconciled if e.get("outcome") == "adopted"}
    resent = {e["job_name"] for e in reconciled if e.get("outcome") == "not_found_resending"}
    dropped = stats["dropped_submits"]
    if drop_submits:
        assert dropped > 0, "the fake lost no SubmitJob answer: the test proved nothing"
        # Every lost answer left a job batchd did not know the id of; each was looked up by
        # name and adopted (never sent again: see the one-job-per-name checks above).
        assert len(adopted) >= dropped, (len(adopted), dropped)
        # Most lost answers are noticed as such (a daemon killed while waiting for one never
        # logs it, but reconciles the attempt at its next start all the same).
        unknown = daemon.events("submit_outcome_unknown")
        assert len(unknown) > 0
        assert set(modes) == {"close", "500"}

    print(f"\ncrash safety ({'kills + lost SubmitJob answers' if drop_submits else 'kills'}): "
          f"{total} jobs, {cycles} SIGKILL/restart cycles (daemon runs: {daemon.runs}), "
          f"states seen at kills: {dict(seen_at_kill)}\n"
          f"  SubmitJob calls={submit_calls}, jobs created={stats['jobs_created']}, "
          f"distinct names={len(by_name)}, duplicates={len(stats['duplicate_job_names'])}, "
          f"dropped answers={dropped}"
          f"{f' (modes after kills: {dict(modes)})' if drop_submits else ''}, "
          f"reconciled: adopted={len(adopted)} not_found_resending={len(resent)}, "
          f"ListJobs={stats['calls'].get('ListJobs', 0)}, "
          f"DescribeJobs={stats['calls'].get('DescribeJobs', 0)}, wall={wall:.1f}s")
