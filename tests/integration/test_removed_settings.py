"""A config written for an older batchd still starts: removed settings are ignored and named
in a `setting_ignored` warning at start-up and at every reload."""

from __future__ import annotations

import signal

import pytest

from tests.integration.test_reload_and_metrics import wait_event

pytestmark = pytest.mark.integration


def test_old_direct_calls_setting_starts_and_warns(daemon_factory, tmp_path):
    config = tmp_path / "batchd.toml"
    config.write_text("[aws]\ndirect_calls = false\n[poll]\ninterval = 0.2\n")
    daemon = daemon_factory("--backend", "local", "--config", str(config),
                            env={"BATCHD_AWS_DIRECT_CALLS": "1"}).start()
    warned = wait_event(daemon, "setting_ignored", count=2)
    assert sorted(e["where"] for e in warned) == [
        f"{config}: [aws] direct_calls", "environment variable BATCHD_AWS_DIRECT_CALLS"]
    assert {e["setting"] for e in warned} == {"aws_direct_calls"}
    assert all(e["level"] == "warning" for e in warned)
    assert daemon.ctl_json("daemon", "status")["settings"]["poll_interval"] == 0.2

    daemon.proc.send_signal(signal.SIGHUP)
    wait_event(daemon, "config_reloaded")
    assert len(wait_event(daemon, "setting_ignored", count=4)) == 4
    daemon.assert_alive()
