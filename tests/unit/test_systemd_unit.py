"""The systemd packaging: the unit verifies, declares the contract the daemon relies on, the
config example covers every setting, and the daemon speaks sd_notify on a real datagram socket
(READY=1 only once the control socket answers, RELOADING=1/READY=1 around SIGHUP, STOPPING=1
on SIGTERM), also under MemoryDenyWriteExecute (the kernel's PR_SET_MDWE)."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from batchd.config import settings as settings_mod
from tests import raw_http
from tests.daemon_harness import REPO

SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "batchd.service"


def directives(path: Path) -> dict[str, list[str]]:
    """`Key=value` lines of a unit (keys may repeat, so not configparser)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd); the "
                           "unit's static checks below still run")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart= exists: point it at this checkout's entry point.
    batchd = Path(sys.executable).parent / "batchd"
    exe = str(batchd) if batchd.exists() else "/bin/true"
    unit = tmp_path / "batchd.service"
    unit.write_text(UNIT.read_text().replace("/opt/batchd/bin/batchd", exe))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    # verify exits 0 even for unknown keys or bad values: any output is a finding.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_unit_declares_what_the_daemon_relies_on():
    d = directives(UNIT)
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify" and one["User"] == "batchd" and one["Group"] == "batchd"
    assert one["StateDirectory"] == "batchd" and one["RuntimeDirectory"] == "batchd"
    assert one["RuntimeDirectoryMode"] == "0750" and one["ConfigurationDirectory"] == "batchd"
    assert one["Restart"] == "on-failure" and one["UMask"] == "0007"
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # Exit 2 is a bad setting (batchd/cli.py): a restart would fail the same way, forever.
    # 3 is another daemon owning the socket or state directory: the same.
    assert {"2", "3"} <= set(one["RestartPreventExitStatus"].split())
    assert "BATCHD_SOCKET=%t/batchd/batchd.sock" in d["Environment"]
    stop = int(one["TimeoutStopSec"].rstrip("s"))
    assert stop >= settings_mod.Settings().shutdown_timeout + 10
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                "ProtectControlGroups", "RestrictNamespaces", "LockPersonality",
                "MemoryDenyWriteExecute"):
        assert one[key] == "yes", key
    assert one["ProtectSystem"] == "strict" and one["SystemCallArchitectures"] == "native"
    assert one["CapabilityBoundingSet"] == ""
    assert one["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    # PrivateUsers would turn every client into "nobody" in SO_PEERCRED.
    assert "PrivateUsers" not in d and "DynamicUser" not in d


def _uncommented_example() -> str:
    # Settings are commented as `#key = value` / `#[section]` (no space); prose as `# text`.
    text = (SYSTEMD / "batchd.toml.example").read_text()
    return "\n".join(re.sub(r"^#(?=[\[A-Za-z_])", "", line) for line in text.splitlines())


def test_config_example_loads_and_covers_every_setting(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("BATCHD_"):
            monkeypatch.delenv(name)
    for text in ((SYSTEMD / "batchd.toml.example").read_text(), _uncommented_example()):
        path = tmp_path / "batchd.toml"
        path.write_text(text)
        loaded = settings_mod.load_settings({"config_file": str(path)}, env={})
        assert loaded.backend == "aws"
    data = tomllib.loads(_uncommented_example())
    named = {k for k, v in data.items() if not isinstance(v, dict)}
    for section, keys in settings_mod._TOML_SECTIONS.items():
        named |= {keys[k] for k in data.get(section, {})}
    every = {f.name for f in dataclasses.fields(settings_mod.Settings)} - {
        "retry", "queue_caps", "config_file", "ignored"}
    assert every - named == set(), "settings missing from batchd.toml.example"
    assert set(data["retry"]) == {f.name for f in dataclasses.fields(settings_mod.RetryDefaults)}
    assert data["queues"]["spot-queue"]["max_in_flight"] == 2000


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_creates_the_user_and_groups(tmp_path):
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSTEMD / "batchd.sysusers")],
                   check=True, capture_output=True, timeout=60)
    passwd = (tmp_path / "etc" / "passwd").read_text()
    groups = (tmp_path / "etc" / "group").read_text()
    assert re.search(r"^batchd:x:\d+:\d+:.*:/var/lib/batchd:", passwd, re.M)
    assert re.search(r"^batchd:x:", groups, re.M) and re.search(r"^batchd-admin:x:", groups,
                                                                   re.M)


# -- sd_notify on a real datagram socket -------------------------------------------------------
def _spawn(daemon, *, preexec_fn=None) -> subprocess.Popen:
    """Start the daemon without waiting for it (the harness's start() polls the socket)."""
    log_path = daemon.root / "batchd-1.log"
    daemon.log_paths.append(log_path)
    daemon._log = open(log_path, "wb")
    daemon.proc = subprocess.Popen(
        [sys.executable, "-m", "batchd", "--socket", str(daemon.socket), "--state-dir",
         str(daemon.state_dir), "--log-format", "json", *daemon.args],
        stdout=daemon._log, stderr=subprocess.STDOUT, env=daemon.env, cwd=daemon.root,
        preexec_fn=preexec_fn)
    return daemon.proc


def _receive(sock: socket.socket, daemon, timeout: float = 30.0) -> str:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except TimeoutError:
        raise AssertionError(f"no sd_notify message within {timeout}s:\n{daemon.log()}") from None


@pytest.fixture
def notify_socket(daemon_factory):
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2")
    path = daemon.root / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    daemon.env["NOTIFY_SOCKET"] = str(path)
    yield daemon, sock
    sock.close()


@pytest.mark.integration
def test_sd_notify_ready_reload_and_stopping(notify_socket):
    daemon, sock = notify_socket
    proc = _spawn(daemon)
    assert _receive(sock, daemon) == "READY=1"
    # READY=1 is sent only once the control socket answers: it must answer right now.
    assert daemon.ctl("ping", check=False).returncode == 0
    proc.send_signal(signal.SIGHUP)
    reloading = _receive(sock, daemon)
    assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert _receive(sock, daemon) == "READY=1"
    proc.send_signal(signal.SIGTERM)
    assert _receive(sock, daemon) == "STOPPING=1"
    assert proc.wait(timeout=30) == 0, daemon.log()[-4000:]
    assert daemon.events("config_reloaded") and daemon.events("daemon_stopped")


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def _deny_write_execute() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        os._exit(97)  # reported by the test as "kernel without PR_SET_MDWE"


@pytest.mark.integration
def test_daemon_works_under_memory_deny_write_execute(notify_socket):
    """MemoryDenyWriteExecute=yes: CPython, aiohttp, sqlite3 and structlog must never need
    a writable+executable mapping. The kernel's PR_SET_MDWE enforces the same rule (and is
    what systemd uses where available), inherited by the jobs' processes too."""
    daemon, sock = notify_socket
    proc = _spawn(daemon, preexec_fn=_deny_write_execute)
    sock.settimeout(30)
    try:
        message = sock.recv(4096).decode()
    except TimeoutError:
        if proc.poll() == 97:
            pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
        raise AssertionError(daemon.log()) from None
    assert message == "READY=1"
    demo = daemon.root / "demo"
    shutil.copytree(REPO / "examples" / "demo", demo)
    from tests.integration.test_local_workflow import run_demo

    status = run_demo(daemon, demo)
    assert status["status"] == "COMPLETED", status
    status_code, metrics = raw_http.get(daemon.socket, "/metrics")
    assert status_code == 200 and 'batchd_jobs{state="COMPLETED"} 8' in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
