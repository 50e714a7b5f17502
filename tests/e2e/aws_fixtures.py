"""Fixtures for the failure-handling and crash-safety e2e tests: the project's fake AWS as a
subprocess (`python -m tests.fakeaws --port 0 --config ...`) and real `batchd --backend aws`
daemons (tests/daemon_harness.py's `Daemon`, so `Daemon.start()` restarts one after a kill)
pointed at it through the standard `AWS_ENDPOINT_URL`.

`Ops` drives one daemon the way a user does, with batchctl subprocesses. `resubmit` and
`history` use the batchctl sub-commands when this checkout has them, else the same control
API request (`batchctl.client.Client`), so a test says what it proves, not how it is spelled.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import pytest

from batchctl.client import Client
from tests.daemon_harness import REPO, Daemon, new_daemon

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
BUCKET = "results"


# ------------------------------------------------------------------------------ the fake
class FakeAws:
    """The fake AWS in its own process, plus its `/_fake/` control API."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fakeaws-", dir="/tmp"))
        (self.dir / "config.json").write_text(json.dumps(config))
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self._err = open(self.dir / "fake.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeaws", "--port", "0", "--config",
             str(self.dir / "config.json")],
            stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=REPO)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("FAKEAWS_URL="):
            log = (self.dir / "fake.log").read_text(errors="replace")
            self.stop()
            raise RuntimeError(f"the fake AWS did not start: {line!r}\n{log}")
        self.url = line.strip().split("=", 1)[1]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self, names: bool = False) -> dict[str, Any]:
        return self.call("GET", "/_fake/stats" + ("?names=1" if names else ""))

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.call("POST", "/_fake/config", changes)

    def jobs(self, **query: Any) -> list[dict[str, Any]]:
        return self.call("GET", "/_fake/jobs?" + urllib.parse.urlencode(query))["jobs"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def fake_config(**overrides: Any) -> dict[str, Any]:
    """Fast simulated time: a 30 s job takes ~30 ms of real time."""
    config: dict[str, Any] = {"time_scale": 1000, "duration_mean": 30, "duration_spread": 0.5,
                              "queues": [{"name": "default", "max_vcpus": 4096}]}
    config.update(overrides)
    return config


def aws_env(endpoint: str, root: Path) -> dict[str, str]:
    """A daemon that reaches `endpoint` and nothing else (no real credentials or config)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(root / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials")}


def make_aws_daemon(endpoint: str, *args: str, poll: float = 0.2,
                    rate_limit: float = 200) -> Daemon:
    """A (not started) `batchd --backend aws` daemon talking to `endpoint`."""
    daemon = new_daemon("--backend", "aws", "--poll-interval", str(poll), "--rate-limit",
                        str(rate_limit), *args)
    daemon.env.update(aws_env(endpoint, daemon.root))
    return daemon


@pytest.fixture
def fake_aws_factory():
    made: list[FakeAws] = []

    def make(**overrides: Any) -> FakeAws:
        fake = FakeAws(fake_config(**overrides))
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.stop()


@pytest.fixture
def aws_daemon_factory():
    made: list[Daemon] = []

    def make(endpoint: str, *args: str, **kwargs: Any) -> Daemon:
        daemon = make_aws_daemon(endpoint, *args, **kwargs)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.cleanup()


# ------------------------------------------------------------------------------ workflows
def samples_csv(names: list[str], **columns: Callable[[str], Any]) -> str:
    """sample_name,file_name plus extra columns computed from each sample's name."""
    header = ["sample_name", "file_name", *columns]
    rows = [",".join([s, f"s3://inputs/{s}.fq", *(str(f(s)) for f in columns.values())])
            for s in names]
    return "\n".join([",".join(header), *rows]) + "\n"


def output(step: int) -> str:
    return f"s3://{BUCKET}/{{project_name}}/{{workflow_name}}/{{sample_name}}.step{step}.json"


def analysis(step: int, **extra: Any) -> dict[str, Any]:
    """One analysis on the fake's job definition; `parameters=` adds parameters."""
    params = {"out": output(step), **extra.pop("parameters", {})}
    return {"job_definition": "fake-jobdef", "queue": "default", "outputs": [output(step)],
            "parameters": params, **extra}


@lru_cache(maxsize=None)
def cli_help(*words: str) -> str | None:
    """The --help text of a batchctl sub-command, or None when this checkout lacks it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-m", "batchctl", *words, "--help"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=30)
    return result.stdout if result.returncode == 0 else None


def _wf_path(target: str) -> str:
    project, workflow = target.split("/")
    return (f"/v1/projects/{urllib.parse.quote(project, safe='')}/workflows/"
            f"{urllib.parse.quote(workflow, safe='')}")


class Ops:
    """What a user does with batchctl on one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.via_api: set[str] = set()     # sub-commands this batchctl lacks (API used)

    @property
    def client(self) -> Client:
        return Client(str(self.daemon.socket), timeout=60)

    def setup(self, project: str, samples: str, definition: dict[str, Any],
              import_project: bool = True) -> str:
        root = self.daemon.root
        csv = root / f"{project}.csv"
        wf = root / f"{project}-{definition['workflow_name']}.json"
        csv.write_text(samples)
        wf.write_text(json.dumps(definition))
        if import_project:
            self.daemon.ctl("import", project, "--metadata", str(csv))
        self.daemon.ctl("create", project, "--definition", str(wf))
        target = f"{project}/{definition['workflow_name']}"
        self.daemon.ctl("submit", target)
        return target

    def status(self, target: str) -> dict[str, Any]:
        return self.daemon.ctl_json("status", target)

    def jobs(self, target: str) -> dict[tuple[str, int], dict[str, Any]]:
        rows = self.daemon.ctl_json("status", target, "--jobs")["jobs"]
        return {(j["sample"], j["step"]): j for j in rows}

    def history(self, target: str, sample: str) -> list[dict[str, Any]]:
        """Every attempt of the sample's jobs, oldest first."""
        if cli_help("history") is not None:
            data = self.daemon.ctl_json("history", target, "--sample", sample)
            return data["attempts"] if isinstance(data, dict) else data
        self.via_api.add("history")
        return self.client.request("GET", _wf_path(target) + "/attempts",
                                   query={"sample": sample})["attempts"]

    def resubmit(self, target: str, *, status: str | None = None, sample: str | None = None,
                 step: int | None = None, memory: int | None = None,
                 force: bool = False) -> None:
        text = cli_help("resubmit")
        if text is not None:
            args = ["resubmit", target]
            for flag, value in (("--status", status), ("--sample", sample), ("--step", step),
                                ("--memory", memory)):
                if value is not None:
                    args += [flag, str(value)]
            if force:
                args.append("--force")
            if "--yes" in text:
                args.append("--yes")
            self.daemon.ctl(*args)
            return
        self.via_api.add("resubmit")
        body = {k: v for k, v in (("status", status), ("sample", sample), ("step", step),
                                  ("memory", memory)) if v is not None}
        if force:
            body["force"] = True
        self.client.request("POST", _wf_path(target) + "/resubmit", body)

    def wait_for(self, target: str, statuses=TERMINAL, timeout: float = 60.0,
                 check: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(target)
            if status["status"] in statuses and (check is None or check(status)):
                return status
            self.daemon.assert_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"{target} still {status['status']} after {timeout}s: "
                                     f"{status['counts']}\n{self.daemon.log()[-4000:]}")
            time.sleep(0.2)


def submits_for(stats: dict[str, Any], project: str, sample: str) -> dict[str, int]:
    """The fake's jobs-created-per-name for one sample's attempts (names are readable:
    `<project>-<workflow>-<sample>-s<step>-a<attempt>-<hash>`)."""
    return {name: n for name, n in stats["submits_by_name"].items()
            if name.startswith(f"{project}-") and f"-{sample}-s" in name}
