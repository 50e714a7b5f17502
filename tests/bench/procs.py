"""The two processes of a benchmark run: the fake AWS (`python -m tests.fakeaws`) and a real
`batchd --backend aws` that finds it only through the standard AWS endpoint variables.

Self-contained on purpose (the e2e helpers evolve with their tests); stops only the processes
it started, by their own handles."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from batchctl.client import Client, CtlError

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHD_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class FakeProc:
    """`python -m tests.fakeaws` and its `/_fake/` control API."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-fake-", dir="/tmp"))
        cfg = self.dir / "fake.json"
        cfg.write_text(json.dumps(config))
        self._err = open(self.dir / "fake.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeaws", "--port", "0", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=self._err, env=_env(), cwd=REPO)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("FAKEAWS_URL="):
            self.stop()
            raise RuntimeError(f"fake AWS did not start: {line!r}")
        self.url = line.strip().split("=", 1)[1]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_fake/stats")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class BenchDaemon:
    """A real batchd process in a short temporary directory (Unix socket path limits)."""

    def __init__(self, endpoint: str, args: list[str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-bd-", dir="/tmp"))
        self.env = _env()
        self.env.update({
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials")})
        self.args = ["--backend", "aws", "--log-format", "json", *args]
        self.proc: subprocess.Popen | None = None
        self.runs = 0
        self._log = None

    @property
    def socket(self) -> Path:
        return self.root / "batchd.sock"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def database(self) -> Path:
        return self.state_dir / "batchd.sqlite3"

    def start(self, timeout: float = 60.0) -> "BenchDaemon":
        self.runs += 1
        self._log = open(self.root / f"batchd-{self.runs}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchd", "--socket", str(self.socket), "--state-dir",
             str(self.state_dir), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"batchd exited with {self.proc.returncode}: {self.tail()}")
            if self.socket.exists():
                try:
                    Client(str(self.socket), timeout=5).get("/v1/ping")
                    return self
                except CtlError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"batchd did not answer within {timeout}s: {self.tail()}")

    def ctl(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, "-m", "batchctl", "--socket", str(self.socket), *args],
            capture_output=True, text=True, env=self.env, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"batchctl {' '.join(args)} exited {result.returncode}: "
                               f"{result.stdout[-1000:]} {result.stderr[-2000:]}")
        return result

    def assert_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"batchd died with {self.proc.returncode}: {self.tail()}")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self._log:
            self._log.close()
        return code

    def tail(self, chars: int = 3000) -> str:
        logs = sorted(self.root.glob("batchd-*.log"))
        return logs[-1].read_text(errors="replace")[-chars:] if logs else ""

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
