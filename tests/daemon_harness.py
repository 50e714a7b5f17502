"""Start a real `batchd` process on a real Unix socket and drive it with `batchctl`.

Used by the integration and e2e tiers. Everything lives in a short temporary directory
(Unix socket paths are limited to ~107 bytes, pytest's tmp_path can be longer) that is removed
when the test ends; a daemon that is still running then is stopped, and killed if it must be.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Daemon:
    root: Path
    env: dict[str, str]
    args: list[str]
    proc: subprocess.Popen | None = None
    runs: int = 0
    log_paths: list[Path] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "batchd.sock"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def start(self, timeout: float = 20.0) -> Daemon:
        self.runs += 1
        log_path = self.root / f"batchd-{self.runs}.log"
        self.log_paths.append(log_path)
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchd", "--socket", str(self.socket), "--state-dir",
             str(self.state_dir), "--log-format", "json", "--log-level", "debug", *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"batchd exited with {self.proc.returncode}:\n{self.log()}")
            if self.socket.exists() and self.ctl("ping", check=False).returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"batchd did not answer within {timeout}s:\n{self.log()}")

    def ctl(self, *args: str, check: bool = True, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "batchctl", "--socket", str(self.socket), *args],
            capture_output=True, text=True, env=self.env, input=input, timeout=timeout,
            cwd=self.root)
        if check and result.returncode != 0:
            raise AssertionError(f"batchctl {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def ctl_json(self, *args: str) -> Any:
        return json.loads(self.ctl(*args, "--json").stdout)

    def status(self, workflow: str) -> dict[str, Any]:
        return self.ctl_json("status", workflow)

    def wait_for(self, workflow: str, statuses=("COMPLETED", "FAILED", "CANCELLED"),
                 timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(workflow)
            if status["status"] in statuses:
                return status
            self.assert_alive()
            time.sleep(0.2)
        raise AssertionError(f"{workflow} still {status['status']} after {timeout}s: "
                             f"{status['counts']}\n{self.log()[-5000:]}")

    def assert_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"batchd died with {self.proc.returncode}:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Local jobs outlive the daemon by design: end any still running from this test.
        subprocess.run(["pkill", "-KILL", "-f", str(self.state_dir)], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def new_daemon(*args: str, env: dict[str, str] | None = None) -> Daemon:
    root = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHD_", "AWS_"))}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return Daemon(root=root, env=full_env, args=list(args))
