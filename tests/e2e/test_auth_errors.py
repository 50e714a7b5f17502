"""AWS refusing batchd's credentials (an expired token) surfaces in daemon status, /metrics,
the jobs' reasons and the log, the loops back off instead of retrying at full rate, and once
the credentials work again everything completes with no job failed and none sent twice."""

from __future__ import annotations

import json
import time

import pytest

from tests import raw_http
from tests.e2e.fake_fixtures import wait_until
from tests.e2e.test_aws_fake import daemon_on, definition, events, fake_factory, samples_csv  # noqa: F401

pytestmark = pytest.mark.e2e

POLL = 0.25
CODE = "ExpiredTokenException"
FAULTED = ["SubmitJob", "DescribeJobs"]
ROUNDS = 6                   # refused rounds of DescribeJobs to wait for (the back-off's 6th)
SUBMIT_CONCURRENCY = 16      # the default: SubmitJobs out before the first refusal comes back
IN_FLIGHT = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


def _auth(ctl) -> dict:
    return ctl.daemon.ctl_json("daemon", "status")["backend_auth"]


def _metrics(ctl) -> str:
    code, text = raw_http.get(ctl.daemon.socket, "/metrics")
    assert code == 200
    return text


def test_refused_credentials_surface_back_off_and_recover(fake_factory, daemon_on):  # noqa: F811
    n = 10
    fake = fake_factory()
    ctl = daemon_on(fake.url, poll=POLL)
    # wf1's jobs run (in the fake) until the test moves the fake's clock on; wf2 is short.
    running = ctl.setup("cred", samples_csv(n),
                        definition("long", steps=1, fake_duration="10000000"))
    later = ctl.setup("cred", "", definition("short", steps=1, fake_duration="60"),
                      submit=False, import_project=False)
    wait_until(lambda: all(j["state"] == "RUNNING" for j in ctl.jobs(running)), 60,
               "wf1's jobs RUNNING (SubmitJob and DescribeJobs answered)")
    assert _auth(ctl) == {"failing": False, "operations": {}, "failures_total": {},
                          "backoff_base_seconds": POLL, "backoff_cap_seconds": 300.0}

    before = fake.stats()
    fake.configure(auth_error_code=CODE, auth_error_operations=FAULTED)
    started = time.monotonic()
    ctl.ctl("submit", later)          # its jobs now need SubmitJob, which is refused

    # Daemon status, /metrics and the jobs show it, within a few poll intervals.
    auth = wait_until(lambda: (a := _auth(ctl))["failing"] and set(a["operations"]) ==
                      set(FAULTED) and a, 40 * POLL + 20, "the refusal in daemon status")
    for op in FAULTED:
        assert auth["operations"][op]["aws_code"] == CODE
        assert "refused our credentials" in auth["operations"][op]["message"]
    text = _metrics(ctl)
    assert "batchd_backend_auth_failing 1" in text
    for op in FAULTED:
        assert f'batchd_backend_auth_failures_total{{operation="{op}"}}' in text
        assert f'batchd_backend_auth_failing_operation{{operation="{op}",aws_code="{CODE}"}} 1' \
            in text
    human = ctl.ctl("daemon", "status")
    assert "AWS REFUSES BATCHD'S CREDENTIALS for DescribeJobs (ExpiredTokenException" in human
    for target, op in ((running, "DescribeJobs"), (later, "SubmitJob")):
        wait_until(lambda op=op, target=target: all(f"({CODE}, {op})" in (j["waiting_reason"] or "")
                                                    for j in ctl.jobs(target)), 40 * POLL + 20,
                   f"every job of {target} waiting for {op}")
        assert f"waiting: AWS refuses the credentials ({CODE}, {op})" in ctl.ctl(
            "status", target, "--jobs")
    assert "AWS REFUSES BATCHD'S CREDENTIALS" in ctl.ctl("status", later)

    # Backing off: wait (by asking the daemon) for several refused probes of DescribeJobs.
    auth = wait_until(lambda: (a := _auth(ctl))["operations"]["DescribeJobs"]["rounds"] >= ROUNDS
                      and a, 300, f"{ROUNDS} refused rounds of DescribeJobs")
    fake.configure(auth_error_code=None, auth_error_operations=[])
    elapsed = time.monotonic() - started
    during = fake.stats()
    refused = {op: during["auth_refused"].get(op, 0) for op in FAULTED}
    sent = {op: during["calls"].get(op, 0) - before["calls"].get(op, 0) for op in FAULTED}
    for op in FAULTED:
        rounds = auth["operations"][op]["rounds"]
        # Every call the fake received during the fault was refused, and each round (the
        # first wave, then one probe per back-off) is one call; the first wave of SubmitJob
        # is what was already out when the first refusal came back.
        wave = SUBMIT_CONCURRENCY if op == "SubmitJob" else 1
        assert refused[op] <= sent[op] and refused[op] <= rounds + 1 + wave, (op, refused, auth)
    # Retrying at full rate would have sent a DescribeJobs at least every poll interval.
    full_rate = elapsed / POLL
    assert refused["DescribeJobs"] / full_rate < 0.5, (refused, elapsed)

    fake.call("POST", "/_fake/advance", {"seconds": 20000000})     # wf1's jobs end
    for target in (running, later):
        status = ctl.wait_for(target, timeout=120 + 2 * 300 * POLL)
        assert status["counts"] == {"COMPLETED": n}, status
    assert _auth(ctl)["failing"] is False
    assert "batchd_backend_auth_failing 0" in _metrics(ctl)
    assert all(j["waiting_reason"] is None and j["attempt"] == 1 for j in ctl.jobs(later))

    # Once per transition, per operation, not once per call.
    failed = events(ctl, "backend_auth_failed")
    restored = events(ctl, "backend_auth_restored")
    assert sorted(e["operation"] for e in failed) == sorted(FAULTED), failed
    assert all(e["aws_code"] == CODE for e in failed)
    assert sorted(e["operation"] for e in restored) == sorted(FAULTED), restored
    assert not events(ctl, "job_failed")
    stats = fake.stats(names=True)
    assert stats["duplicate_job_names"] == {}
    assert len(stats["submits_by_name"]) == 2 * n and set(stats["submits_by_name"].values()) \
        == {1}
    print(f"\nrefused credentials for {elapsed:.1f} s: {json.dumps(refused)} calls refused "
          f"(full rate: >= {full_rate:.0f} DescribeJobs)")
