"""Helpers for the e2e tests that run a real `batchd --backend aws` process against an AWS
emulator over HTTP: the project's fake AWS (`python -m tests.fakeaws`, a subprocess) or moto's
server. batchd finds the emulator only through the standard `AWS_ENDPOINT_URL` variable.
`Driver` drives the daemon the way a user does: `batchctl` subprocesses.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

from tests.daemon_harness import REPO, Daemon

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def aws_env(endpoint: str, root: Path) -> dict[str, str]:
    """The environment of a daemon that must reach `endpoint` and nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
    }


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------ the fake
class FakeProcess:
    """`python -m tests.fakeaws` as a subprocess plus its `/_fake/` control API."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fake-", dir="/tmp"))
        cfg = self.dir / "fake.json"
        cfg.write_text(json.dumps(config))
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self._err = open(self.dir / "fake.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeaws", "--port", "0", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=REPO)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("FAKEAWS_URL="):
            self.stop()
            raise RuntimeError(f"fake AWS did not start: {line!r}\n"
                               f"{(self.dir / 'fake.log').read_text(errors='replace')}")
        self.url = line.strip().split("=", 1)[1]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self, names: bool = False) -> dict[str, Any]:
        return self._call("GET", "/_fake/stats" + ("?names=1" if names else ""))

    def calls(self, op: str) -> int:
        return self.stats()["calls"].get(op, 0)

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "/_fake/config", changes)

    def forget(self, job_ids: list[str]) -> int:
        return self._call("POST", "/_fake/forget", {"job_ids": job_ids})["forgotten"]

    def jobs(self, **query: Any) -> list[dict[str, Any]]:
        return self._call("GET", "/_fake/jobs?" + urllib.parse.urlencode(query))["jobs"]

    def put_object(self, uri: str, body: bytes = b"{}") -> None:
        bucket, _, key = uri[len("s3://"):].partition("/")
        req = urllib.request.Request(f"{self.url}/{bucket}/{urllib.parse.quote(key)}",
                                     data=body, method="PUT")
        urllib.request.urlopen(req, timeout=30).read()

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under `prefix` (ListObjectsV2 pages; counted by the fake like any call)."""
        import xml.etree.ElementTree as ET
        ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
        keys: list[str] = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            with urllib.request.urlopen(f"{self.url}/{bucket}?{urllib.parse.urlencode(query)}",
                                        timeout=30) as resp:
                root = ET.fromstring(resp.read())
            keys += [e.text for e in root.iter(f"{ns}Key")]
            token_el = root.find(f"{ns}NextContinuationToken")
            if token_el is None:
                return keys
            token = token_el.text

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
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------ the daemon
def new_aws_daemon(endpoint: str, *args: str) -> Daemon:
    """A batchd on `--backend aws` (not started) whose only way to AWS is `endpoint`."""
    root = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHD_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(aws_env(endpoint, root))
    return Daemon(root=root, env=env, args=["--backend", "aws", *args])


class Driver:
    """What a user does with batchctl (subprocesses), on one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def ctl(self, *args: str) -> str:
        return self.daemon.ctl(*args).stdout

    # -- setting up -------------------------------------------------------------------------
    def setup(self, project: str, samples_csv: str, definition: dict[str, Any],
              submit: bool = True, import_project: bool = True) -> str:
        """Import the project (unless it exists), create the workflow, submit it."""
        root = self.daemon.root
        name = definition["workflow_name"]
        wf = root / f"{project}-{name}.json"
        wf.write_text(json.dumps(definition))
        if import_project:
            csv = root / f"{project}.csv"
            csv.write_text(samples_csv)
            self.ctl("import", project, "--metadata", str(csv))
        self.ctl("create", project, "--definition", str(wf))
        target = f"{project}/{name}"
        if submit:
            self.ctl("submit", target)
        return target

    def register_jobdef(self, spec: dict[str, Any]) -> None:
        path = self.daemon.root / f"{spec['jobDefinitionName']}.jobdef.json"
        path.write_text(json.dumps(spec))
        self.ctl("jobdef", "register", str(path))

    # -- looking -----------------------------------------------------------------------------
    def status(self, target: str) -> dict[str, Any]:
        return self.daemon.ctl_json("status", target)

    def jobs(self, target: str) -> list[dict[str, Any]]:
        return self.daemon.ctl_json("status", target, "--jobs")["jobs"]

    def attempts(self, target: str, sample: str | None = None) -> list[dict[str, Any]]:
        return self.daemon.ctl_json("history", target,
                                    *(["--sample", sample] if sample else []))["attempts"]

    def queues(self) -> dict[str, Any]:
        return self.daemon.ctl_json("queues")

    def logs(self, target: str, sample: str, step: int) -> str:
        return self.ctl("logs", target, "--sample", sample, "--step", str(step))

    def wait_for(self, target: str, statuses=TERMINAL, timeout: float = 60.0,
                 check: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Poll the workflow's status until it is in `statuses` (and `check(status)`)."""
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

    # -- acting ------------------------------------------------------------------------------
    def cancel(self, target: str, reason: str, status: str | None = None) -> str:
        return self.ctl("cancel", target, "--reason", reason, "--yes",
                        *(["--status", status] if status else []))
