"""cancel, resubmit, logs, history and queues against a real daemon on the local backend."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.test_local_workflow import run_demo, write_failing_workflow

pytestmark = pytest.mark.integration


def test_logs_and_history_of_a_finished_workflow(local_daemon, demo_copy):
    run_demo(local_daemon, demo_copy)
    text = local_daemon.ctl("logs", "demo/wordcount", "--sample", "sample-A").stdout
    assert "==> sample sample-A step 0 attempt 1" in text
    assert "data/sample-A.txt: 12 words" in text
    assert "E. coli: 12 words" in text
    out = local_daemon.root / "logs"
    local_daemon.ctl("logs", "demo/wordcount", "--step", "1", "--out", str(out))
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"sample-{s}.step1.attempt1.log" for s in "ABCD"]
    history = local_daemon.ctl_json("history", "demo/wordcount", "--sample", "sample-B")
    assert [(a["step"], a["attempt"], a["state"]) for a in history["attempts"]] == [
        (0, 1, "SUCCEEDED"), (1, 1, "SUCCEEDED")]
    table = local_daemon.ctl("history", "demo/wordcount", "--sample", "sample-B").stdout
    assert "SUCCEEDED" in table and "ATTEMPT" in table
    queues = local_daemon.ctl_json("queues")["queues"]
    assert [q["name"] for q in queues] == ["local"] and queues[0]["state"] == "ENABLED"
    status = local_daemon.status("demo/wordcount")
    assert status["compute"]["useful_vcpu_hours"] > 0
    assert status["compute"]["wasted_vcpu_hours"] == 0


def test_resubmit_after_fixing_the_cause(local_daemon):
    write_failing_workflow(local_daemon.root, local_daemon)
    local_daemon.ctl("submit", "fails/failures")
    local_daemon.wait_for("fails/failures")
    # The scientist fixes the script, then resubmits only what failed, with more memory.
    (local_daemon.root / "fail.py").write_text(
        "import sys\nopen(sys.argv[2], 'w').write('fixed')\n")
    result = local_daemon.ctl("resubmit", "fails/failures", "--memory", "512")
    assert "Resubmitted 2 jobs" in result.stdout
    status = local_daemon.wait_for("fails/failures")
    assert status["status"] == "COMPLETED", status
    jobs = {j["sample"]: j for j in local_daemon.ctl_json("status", "fails/failures",
                                                          "--jobs")["jobs"]}
    assert jobs["crashes"]["attempt"] == 3 and jobs["crashes"]["memory"] == 512
    assert jobs["good"]["attempt"] == 1
    assert local_daemon.status("fails/failures")["compute"]["wasted_vcpu_hours"] > 0
    nothing = local_daemon.ctl("resubmit", "fails/failures")
    assert "Resubmitted 0 jobs" in nothing.stdout


def test_cancel_stops_running_and_queued_jobs(daemon_factory):
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2", "--local-vcpus", "1",
                            "--local-memory", "2048").start()
    root = daemon.root
    (root / "jobdef.json").write_text(json.dumps({
        "jobDefinitionName": "sleeper",
        "containerProperties": {"command": ["sleep", "60"], "vcpus": 1, "memory": 64}}))
    (root / "samples.csv").write_text("sample_name,file_name\n" +
                                      "".join(f"s{i},x\n" for i in range(4)))
    (root / "wf.json").write_text(json.dumps({
        "workflow_name": "slow", "analyses": [{"job_definition": "sleeper", "queue": "local",
                                               "outputs": ["/nonexistent/{sample_name}"]}]}))
    daemon.ctl("jobdef", "register", str(root / "jobdef.json"))
    daemon.ctl("import", "p", "--metadata", str(root / "samples.csv"))
    daemon.ctl("create", "p", "--definition", str(root / "wf.json"))
    daemon.ctl("submit", "p/slow")
    deadline = time.monotonic() + 30
    while daemon.status("p/slow")["counts"].get("RUNNING", 0) < 1:
        assert time.monotonic() < deadline, daemon.status("p/slow")
        time.sleep(0.2)
    refused = daemon.ctl("cancel", "p/slow", "--reason", "wrong input", check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr  # no terminal to confirm
    result = daemon.ctl("cancel", "p/slow", "--reason", "wrong input", "--yes")
    assert "Cancelled 4 jobs" in result.stdout
    status = daemon.wait_for("p/slow", timeout=30)
    assert status["status"] == "CANCELLED" and status["counts"] == {"CANCELLED": 4}
    # The running sleep was terminated in the backend, not left to run for a minute.
    deadline = time.monotonic() + 20
    while True:
        attempts = daemon.ctl_json("history", "p/slow")["attempts"]
        if attempts and all(a["state"] == "FAILED" for a in attempts):
            break
        assert time.monotonic() < deadline, attempts
        time.sleep(0.3)
    assert any("wrong input" in (a["status_reason"] or "") for a in attempts)
    jobs = daemon.ctl_json("status", "p/slow", "--jobs")["jobs"]
    assert all(j["reason"] == "cancelled by user: wrong input" for j in jobs)


def test_unplaceable_job_is_flagged_then_failed_as_misconfiguration(daemon_factory):
    config_dir = daemon_factory().root  # a scratch dir for the TOML file
    config = config_dir / "batchd.toml"
    config.write_text("[stuck]\ninterval = 0.5\n")
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2", "--local-vcpus", "2",
                            "--local-memory", "1024", "--config", str(config)).start()
    root = daemon.root
    (root / "jobdef.json").write_text(json.dumps({
        "jobDefinitionName": "big",
        "containerProperties": {"command": ["true"], "vcpus": 1, "memory": 64}}))
    (root / "samples.csv").write_text("sample_name,file_name\nhuge,x\n")
    (root / "wf.json").write_text(json.dumps({
        "workflow_name": "big", "analyses": [{
            "job_definition": "big", "queue": "local", "outputs": ["/nonexistent/{sample_name}"],
            "containerOverrides": {"memory": 4096}}]}))
    daemon.ctl("jobdef", "register", str(root / "jobdef.json"))
    daemon.ctl("import", "p", "--metadata", str(root / "samples.csv"))
    daemon.ctl("create", "p", "--definition", str(root / "wf.json"))
    daemon.ctl("submit", "p/big")
    deadline = time.monotonic() + 30
    while True:
        job = daemon.ctl_json("status", "p/big", "--jobs")["jobs"][0]
        if job["stuck_reason"]:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "RUNNABLE" and "4096 MiB" in job["stuck_reason"]
    assert daemon.status("p/big")["stuck"] == 1
    # With the switch on, the same job is given up instead of waiting forever.
    daemon.stop()
    config.write_text("[stuck]\ninterval = 0.5\ncancel_unplaceable = true\n")
    daemon.start()
    status = daemon.wait_for("p/big", timeout=30)
    job = daemon.ctl_json("status", "p/big", "--jobs")["jobs"][0]
    assert status["status"] == "FAILED" and job["failure_class"] == "misconfiguration"
    assert "use a queue with larger instances" in job["reason"]
