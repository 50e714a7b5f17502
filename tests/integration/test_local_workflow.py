"""The foundation, end to end: a real batchd process, a real socket, batchctl as a subprocess,
jobs as real local processes."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_demo(daemon, demo: Path, project: str = "demo") -> dict:
    daemon.ctl("jobdef", "register", str(demo / "jobdefs" / "count-words.json"))
    daemon.ctl("jobdef", "register", str(demo / "jobdefs" / "summarise.json"))
    daemon.ctl("import", project, "--metadata", str(demo / "samples.csv"))
    daemon.ctl("create", project, "--definition", str(demo / "workflow.json"))
    daemon.ctl("submit", f"{project}/wordcount")
    return daemon.wait_for(f"{project}/wordcount")


def all_jobs(daemon, workflow: str) -> list[dict]:
    return daemon.ctl_json("status", workflow, "--jobs")["jobs"]


def test_demo_workflow_runs_to_completion(local_daemon, demo_copy):
    status = run_demo(local_daemon, demo_copy)
    assert status["status"] == "COMPLETED"
    assert status["counts"] == {"COMPLETED": 8}
    assert [s["counts"] for s in status["steps"]] == [{"COMPLETED": 4}, {"COMPLETED": 4}]
    summary = (demo_copy / "results" / "demo" / "sample-A.summary.txt").read_text()
    assert summary.startswith("E. coli: 12 words")
    jobs = all_jobs(local_daemon, "demo/wordcount")
    assert len(jobs) == 8 and all(j["attempt"] == 1 and not j["skipped"] for j in jobs)
    assert len(local_daemon.events("job_submitted")) == 8
    # Step 2 of a sample is only submitted after step 1 of that sample completed.
    completed = {e["job"] for e in local_daemon.events("job_completed")}
    assert len(completed) == 8
    dashboard = local_daemon.ctl_json("dashboard")["workflows"]
    assert [(w["project"], w["workflow"], w["status"]) for w in dashboard] == [
        ("demo", "wordcount", "COMPLETED")]
    text = local_daemon.ctl("status", "demo/wordcount").stdout
    assert "COMPLETED" in text and "count-words" in text


def test_second_run_skips_every_step_because_outputs_exist(daemon_factory, local_daemon,
                                                           demo_copy):
    run_demo(local_daemon, demo_copy)
    assert local_daemon.stop() == 0
    # A fresh daemon with an empty database, the same project and outputs: nothing runs.
    again = daemon_factory("--backend", "local", "--poll-interval", "0.2").start()
    status = run_demo(again, demo_copy)
    assert status["status"] == "COMPLETED"
    assert all(job["skipped"] for job in all_jobs(again, "demo/wordcount"))
    assert again.events("job_submitted") == []
    assert len(again.events("job_skipped")) == 8


def write_failing_workflow(root: Path, daemon) -> None:
    (root / "fail.py").write_text(
        "import sys, os\n"
        "mode, out = sys.argv[1], sys.argv[2]\n"
        "if mode == 'crash':\n    print('bad input file', file=sys.stderr); sys.exit(3)\n"
        "if mode == 'ok':\n    open(out, 'w').write('done')\n"
        "# mode 'silent': exits 0 without writing its output\n")
    (root / "jobdef.json").write_text(json.dumps({
        "jobDefinitionName": "maybe-fail",
        "containerProperties": {"command": ["python3", "fail.py", "Ref::mode", "Ref::out"],
                                "vcpus": 1, "memory": 256}}))
    (root / "samples.csv").write_text("sample_name,file_name,mode\n"
                                      "good,x,ok\ncrashes,x,crash\nsilent,x,silent\n")
    (root / "wf.json").write_text(json.dumps({
        "workflow_name": "failures",
        "analyses": [{"job_definition": "maybe-fail", "queue": "local",
                      "outputs": ["out/{sample_name}.txt"],
                      "parameters": {"mode": "{mode}", "out": "out/{sample_name}.txt"},
                      "retry": {"max_attempts": 2}}]}))
    (root / "out").mkdir()
    daemon.ctl("jobdef", "register", str(root / "jobdef.json"))
    daemon.ctl("import", "fails", "--metadata", str(root / "samples.csv"))
    daemon.ctl("create", "fails", "--definition", str(root / "wf.json"))


def test_nonzero_exit_and_missing_outputs_end_failed_with_reasons(local_daemon):
    write_failing_workflow(local_daemon.root, local_daemon)
    local_daemon.ctl("submit", "fails/failures")
    status = local_daemon.wait_for("fails/failures")
    assert status["status"] == "FAILED"
    assert status["counts"] == {"COMPLETED": 1, "FAILED": 2}
    jobs = {j["sample"]: j for j in all_jobs(local_daemon, "fails/failures")}
    assert jobs["good"]["state"] == "COMPLETED"
    assert jobs["crashes"]["failure_class"] == "app"
    assert jobs["crashes"]["exit_code"] == 3
    assert "exit code 3" in jobs["crashes"]["reason"]
    assert jobs["crashes"]["attempt"] == 2  # retry.max_attempts = 2
    assert jobs["silent"]["failure_class"] == "outputs_missing"
    assert "out/silent.txt" in jobs["silent"]["reason"]
    assert jobs["silent"]["exit_code"] == 0
    failed = local_daemon.events("job_failed")
    assert {e["failure_class"] for e in failed} == {"app", "outputs_missing"}


def test_restart_mid_run_resumes_and_runs_each_attempt_once(daemon_factory):
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2",
                            "--local-vcpus", "3", "--local-memory", "4096").start()
    root = daemon.root
    (root / "job.py").write_text(
        "import os, sys, time\n"
        "with open('runs.log', 'a') as f: f.write(os.environ['BATCHD_JOB_NAME'] + '\\n')\n"
        "time.sleep(float(sys.argv[2]))\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open(sys.argv[1] + '.tmp', 'w').write('x'); "
        "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n")
    (root / "jobdef.json").write_text(json.dumps({
        "jobDefinitionName": "sleepy",
        "containerProperties": {"command": ["python3", "job.py", "Ref::out", "Ref::secs"],
                                "vcpus": 1, "memory": 128}}))
    samples = "\n".join(f"s{i:02d},x" for i in range(12))
    (root / "samples.csv").write_text("sample_name,file_name\n" + samples + "\n")
    (root / "wf.json").write_text(json.dumps({
        "workflow_name": "chain",
        "analyses": [{"job_definition": "sleepy", "queue": "local",
                      "outputs": [f"out/{{sample_name}}.{step}"],
                      "parameters": {"out": f"out/{{sample_name}}.{step}", "secs": "0.7"}}
                     for step in (1, 2)]}))
    daemon.ctl("jobdef", "register", str(root / "jobdef.json"))
    daemon.ctl("import", "p", "--metadata", str(root / "samples.csv"))
    daemon.ctl("create", "p", "--definition", str(root / "wf.json"))
    daemon.ctl("submit", "p/chain")
    time.sleep(1.5)
    assert daemon.stop(signal.SIGTERM) == 0          # graceful: exit 0, socket removed
    assert not daemon.socket.exists()
    daemon.start()
    time.sleep(1.5)
    daemon.stop(signal.SIGKILL)                      # crash: stale socket left behind
    assert daemon.socket.exists()
    daemon.start()
    status = daemon.wait_for("p/chain", timeout=90)
    assert status["status"] == "COMPLETED", status
    runs = (root / "runs.log").read_text().split()
    assert len(runs) == len(set(runs)), "an attempt ran twice"
    assert len(runs) >= 24
    assert daemon.events("stale_socket_removed")
