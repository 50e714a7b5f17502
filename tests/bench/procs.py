"""The two processes of a benchmark run: the fake AWS (`python -m tests.fakeaws`) and a real
`batchd --backend aws` that finds it only through the standard AWS endpoint variables.

Both are the tests' own helpers (tests/fakeaws_process.py, tests/daemon_harness.py) with the
benchmark's settings: no inherited BATCHD_*/AWS_* variables, longer timeouts, the daemon at
its default log level, readiness checked in-process, errors raised as RuntimeError. Stops only
the processes it started, by their own handles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from batchctl.client import Client, CtlError
from tests.daemon_harness import Daemon
from tests.fakeaws_process import FakeAwsProcess, aws_env, clean_env


class FakeProc(FakeAwsProcess):
    """`python -m tests.fakeaws` and its `/_fake/` control API."""

    STOP_TIMEOUT = 20.0

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config, prefix="bench-fake-", isolate_env=True)


class BenchDaemon(Daemon):
    """A real batchd process in a short temporary directory (Unix socket path limits)."""

    def __init__(self, endpoint: str, args: list[str], backend: str = "aws") -> None:
        root = Path(tempfile.mkdtemp(prefix="bench-bd-", dir="/tmp"))
        env = clean_env()
        env.update(aws_env(endpoint, root))
        super().__init__(root=root, env=env, args=["--backend", backend, "--log-format", "json",
                                                   *args])
        self._log = None
        self.launcher: list[str] | None = None     # e.g. ["-m", "tests.bench.lagprobe", OUT]

    @property
    def database(self) -> Path:
        return self.state_dir / "batchd.sqlite3"

    def start(self, timeout: float = 60.0) -> BenchDaemon:
        # Not Daemon.start: no debug logging (it would cost the figures measured) and the
        # socket is pinged in-process, so a restart's "answers after" is not a CLI's start-up.
        self.runs += 1
        log_path = self.root / f"batchd-{self.runs}.log"
        self.log_paths.append(log_path)
        self._log = open(log_path, "wb")
        # BENCH_PROFILE=DIR runs the daemon under cProfile timed by the event loop's CPU clock
        # and writes DIR/batchd-<run>.prof when it stops: where the CPU per job goes.
        profile = os.environ.get("BENCH_PROFILE")
        python = [sys.executable] + (["-m", "tests.bench.cpuprofile",
                                      str(Path(profile) / f"batchd-{self.runs}.prof")]
                                     if profile else self.launcher or ["-m", "batchd"])
        env = self.env
        if profile or self.launcher:    # their modules live in this repository's tests/
            env = {**env, "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).resolve().parents[2]),
                              env.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(
            [*python, "--socket", str(self.socket), "--state-dir",
             str(self.state_dir), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        # BENCH_PYSPY=DIR samples every thread with py-spy (attached, so the stop signal still
        # reaches batchd): unlike cProfile it sees SQLite's work in the database threads.
        spy = os.environ.get("BENCH_PYSPY")
        if spy:
            subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                 str(self.proc.pid), "--threads", "--rate", "50", "--format", "raw",
                 "--nonblocking", "--output", str(Path(spy) / f"batchd-{self.runs}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        result = super().ctl(*args, check=False, timeout=timeout)
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
        try:
            return super().stop(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            self._log.close()
            return code

    def tail(self, chars: int = 3000) -> str:
        logs = sorted(self.root.glob("batchd-*.log"))
        return logs[-1].read_text(errors="replace")[-chars:] if logs else ""

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
