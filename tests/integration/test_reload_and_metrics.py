"""SIGHUP reload and the daemon's own health endpoints, against a real daemon."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from tests import raw_http

pytestmark = pytest.mark.integration


def wait_event(daemon, name: str, count: int = 1, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = daemon.events(name)
        if len(found) >= count:
            return found
        daemon.assert_alive()
        time.sleep(0.05)
    raise AssertionError(f"no {name} event within {timeout}s:\n{daemon.log()[-3000:]}")


def slow_workflow(daemon, samples: int = 6, seconds: float = 1.0) -> None:
    root = daemon.root
    (root / "jobdef.json").write_text(json.dumps({
        "jobDefinitionName": "slow",
        "containerProperties": {"command": [
            "python3", "-c", f"import sys, time; time.sleep({seconds}); "
            "open(sys.argv[1], 'w').write('x')", "Ref::out"], "vcpus": 1, "memory": 64}}))
    (root / "samples.csv").write_text("sample_name,file_name\n" + "".join(
        f"s{i},f{i}\n" for i in range(samples)))
    (root / "wf.json").write_text(json.dumps({
        "workflow_name": "slow", "analyses": [{
            "job_definition": "slow", "queue": "local", "outputs": ["out/{sample_name}"],
            "parameters": {"out": "out/{sample_name}"}}]}))
    (root / "out").mkdir()
    daemon.ctl("jobdef", "register", str(root / "jobdef.json"))
    daemon.ctl("import", "p", "--metadata", str(root / "samples.csv"))
    daemon.ctl("create", "p", "--definition", str(root / "wf.json"))


def test_sighup_applies_new_settings_without_dropping_work(daemon_factory, tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text("[submit]\nmax_in_flight = 1\n[poll]\ninterval = 0.2\n")
    daemon = daemon_factory("--backend", "local", "--config", str(config), "--local-vcpus", "4",
                            "--local-memory", "4096").start()
    slow_workflow(daemon)
    daemon.ctl("submit", "p/slow")
    time.sleep(1.0)
    counts = daemon.status("p/slow")["counts"]
    assert sum(counts.get(s, 0) for s in ("SUBMITTED", "RUNNABLE", "STARTING", "RUNNING")) <= 1

    # The file changes; the flag given at start-up (--log-level debug) keeps winning.
    config.write_text("[submit]\nmax_in_flight = 4\nconcurrency = 2\n[poll]\ninterval = 0.3\n"
                      '[log]\nlevel = "warning"\n[queues.other]\nmax_in_flight = 7\n')
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = wait_event(daemon, "config_reloaded")[0]
    assert reloaded["changed"]["max_in_flight"] == [1, 4]
    assert reloaded["changed"]["poll_interval"] == [0.2, 0.3]
    assert reloaded["changed"]["queue_caps"] == [{}, {"other": 7}]
    assert "log_level" not in reloaded["changed"]
    assert reloaded["ignored_until_restart"] == ["submit_concurrency"]
    assert wait_event(daemon, "config_reload_restart_needed")[0]["settings"] == [
        "submit_concurrency"]
    settings = daemon.ctl_json("daemon", "status")["settings"]
    assert settings["max_in_flight"] == 4 and settings["poll_interval"] == 0.3

    # A broken file is rejected as a whole; the daemon keeps the settings it had.
    config.write_text("[submit]\nmax_in_flight = -3\n")
    daemon.proc.send_signal(signal.SIGHUP)
    failed = wait_event(daemon, "config_reload_failed")[0]
    assert "max_in_flight" in failed["error"]
    assert daemon.ctl_json("daemon", "status")["settings"]["max_in_flight"] == 4

    status = daemon.wait_for("p/slow", timeout=120)
    assert status["status"] == "COMPLETED" and status["counts"] == {"COMPLETED": 6}
    jobs = daemon.ctl_json("status", "p/slow", "--jobs")["jobs"]
    assert all(j["attempt"] == 1 for j in jobs)  # nothing was dropped or resubmitted
    assert daemon.ctl_json("daemon", "status")["reloads"] == 1
    assert daemon.stop() == 0


def test_metrics_healthz_and_daemon_status(local_daemon):
    daemon = local_daemon
    slow_workflow(daemon, samples=2, seconds=0.1)
    daemon.ctl("submit", "p/slow")
    daemon.wait_for("p/slow")
    code, text = raw_http.get(daemon.socket, "/metrics")
    assert code == 200
    assert 'batchd_jobs{state="COMPLETED"} 2' in text
    assert re.search(r"^batchd_uptime_seconds \d", text, re.M)
    assert re.search(r"^batchd_event_loop_lag_seconds \d", text, re.M)
    assert "batchd_db_writable 1" in text
    assert '# TYPE batchd_aws_api_calls_total counter' in text
    code, body = raw_http.get(daemon.socket, "/healthz")
    health = json.loads(body)
    assert code == 200 and health["status"] == "ok" and health["db_writable"] is True
    assert health["loop_lag_seconds"] < 1.0
    result = daemon.ctl("daemon", "status")
    assert "state database: writable" in result.stdout
    assert "jobs: COMPLETED 2" in result.stdout and "event loop lag" in result.stdout
