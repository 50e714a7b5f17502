"""Socket handling, a second daemon, shutdown, and batchctl's messages when things are off."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_socket_mode_and_removal_on_exit(local_daemon):
    mode = stat.S_IMODE(os.stat(local_daemon.socket).st_mode)
    assert mode == 0o660
    assert local_daemon.stop(signal.SIGINT) == 0
    assert not local_daemon.socket.exists()
    assert local_daemon.events("daemon_stopping")


def test_second_daemon_on_live_socket_is_refused(local_daemon):
    result = subprocess.run(
        [sys.executable, "-m", "batchd", "--socket", str(local_daemon.socket), "--state-dir",
         str(local_daemon.root / "other")], capture_output=True, text=True,
        env=local_daemon.env, timeout=30)
    assert result.returncode == 3
    assert "already answering" in result.stderr
    local_daemon.ctl("ping")  # the first one is untouched


def test_second_daemon_on_same_state_dir_is_refused(local_daemon):
    result = subprocess.run(
        [sys.executable, "-m", "batchd", "--socket", str(local_daemon.root / "b.sock"),
         "--state-dir", str(local_daemon.state_dir)], capture_output=True, text=True,
        env=local_daemon.env, timeout=30)
    assert result.returncode == 3
    assert "already using the state directory" in result.stderr


def test_shutdown_through_the_api_exits_zero(local_daemon):
    local_daemon.ctl("daemon", "stop")
    assert local_daemon.proc.wait(timeout=30) == 0
    assert not local_daemon.socket.exists()


def test_batchctl_explains_daemon_not_running(daemon_factory):
    daemon = daemon_factory()
    result = daemon.ctl("status", "p/w", check=False)
    assert result.returncode == 3
    assert "not running" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_is_a_clear_error(daemon_factory):
    daemon = daemon_factory()
    config = daemon.root / "batchd.toml"
    config.write_text("poll_intervall = 3\n")
    result = subprocess.run([sys.executable, "-m", "batchd", "--config", str(config),
                             "--socket", str(daemon.socket)],
                            capture_output=True, text=True, env=daemon.env, timeout=30)
    assert result.returncode == 2
    assert "unknown setting 'poll_intervall'" in result.stderr
