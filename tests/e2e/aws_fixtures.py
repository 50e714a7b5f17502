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
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from batchctl.client import Client
from tests.daemon_harness import REPO, Daemon
from tests.e2e.fake_fixtures import TERMINAL, Driver  # noqa: F401 - TERMINAL re-exported
from tests.fakeaws_process import FakeAwsProcess, new_aws_daemon

BUCKET = "results"


# ------------------------------------------------------------------------------ the fake
def fake_config(**overrides: Any) -> dict[str, Any]:
    """Fast simulated time: a 30 s job takes ~30 ms of real time."""
    config: dict[str, Any] = {"time_scale": 1000, "duration_mean": 30, "duration_spread": 0.5,
                              "queues": [{"name": "default", "max_vcpus": 4096}]}
    config.update(overrides)
    return config


def make_aws_daemon(endpoint: str, *args: str, poll: float = 0.2,
                    rate_limit: float = 200) -> Daemon:
    """A (not started) `batchd --backend aws` daemon talking to `endpoint`."""
    return new_aws_daemon(endpoint, "--poll-interval", str(poll), "--rate-limit",
                          str(rate_limit), *args)


@pytest.fixture
def fake_aws_factory():
    made: list[FakeAwsProcess] = []

    def make(**overrides: Any) -> FakeAwsProcess:
        fake = FakeAwsProcess(fake_config(**overrides))
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


@cache
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

    # Poll the workflow's status until it is in `statuses` (and `check(status)`): the same
    # loop as the fake-AWS tests' Driver (it only needs `self.status` and `self.daemon`).
    wait_for = Driver.wait_for


def submits_for(stats: dict[str, Any], project: str, sample: str) -> dict[str, int]:
    """The fake's jobs-created-per-name for one sample's attempts (names are readable:
    `<project>-<workflow>-<sample>-s<step>-a<attempt>-<hash>`)."""
    return {name: n for name, n in stats["submits_by_name"].items()
            if name.startswith(f"{project}-") and f"-{sample}-s" in name}
