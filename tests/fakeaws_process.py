"""The project's fake AWS (`python -m tests.fakeaws --port 0 --config ...`) as a subprocess, its
`/_fake/` control API, and the environment of a `batchd --backend aws` that reaches it (and
nothing else) through the standard `AWS_ENDPOINT_URL`.

Shared by the e2e fixtures (tests/e2e/fake_fixtures.py, tests/e2e/aws_fixtures.py) and the
benchmark harness (tests/bench/procs.py). Stops only the process it started, by its handle.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.daemon_harness import REPO, Daemon, new_daemon


def clean_env() -> dict[str, str]:
    """This process's environment without BATCHD_*/AWS_* variables, with the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHD_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def aws_env(endpoint: str, root: Path) -> dict[str, str]:
    """The AWS variables of a daemon that must reach `endpoint` and nothing else (no real
    credentials or config)."""
    return {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
    }


def new_aws_daemon(endpoint: str, *args: str) -> Daemon:
    """A batchd on `--backend aws` (not started) whose only way to AWS is `endpoint`."""
    daemon = new_daemon("--backend", "aws", *args)
    daemon.env.update(aws_env(endpoint, daemon.root))
    return daemon


class FakeAwsProcess:
    """`python -m tests.fakeaws` as a subprocess plus its `/_fake/` control API.

    The class attributes are the defaults of the keyword options (seconds): how long to wait
    for the fake to print its URL, for one control/S3 request, and for it to exit on SIGTERM
    before it is killed. `isolate_env=True` starts it without the caller's BATCHD_*/AWS_*
    variables; `prefix` names its temporary directory (config and `fake.log`, removed by
    `stop()`)."""

    START_TIMEOUT = 30.0
    CALL_TIMEOUT = 60.0
    STOP_TIMEOUT = 10.0

    def __init__(self, config: dict[str, Any], *, prefix: str = "fakeaws-",
                 start_timeout: float | None = None, call_timeout: float | None = None,
                 stop_timeout: float | None = None, isolate_env: bool = False) -> None:
        self.call_timeout = self.CALL_TIMEOUT if call_timeout is None else call_timeout
        self.stop_timeout = self.STOP_TIMEOUT if stop_timeout is None else stop_timeout
        start_timeout = self.START_TIMEOUT if start_timeout is None else start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        cfg = self.dir / "fake.json"
        cfg.write_text(json.dumps(config))
        if isolate_env:
            env = clean_env()
        else:
            env = dict(os.environ)
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self._err = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakeaws", "--port", "0", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=REPO)
        ready, _, _ = select.select([self.proc.stdout], [], [], start_timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("FAKEAWS_URL="):
            log = self.log_path.read_text(errors="replace")
            self.stop()
            raise RuntimeError(f"the fake AWS did not start: {line!r}\n{log}")
        self.url = line.strip().split("=", 1)[1]

    @property
    def log_path(self) -> Path:
        """The fake's stderr (gone after `stop()`)."""
        return self.dir / "fake.log"

    # -- the control API -----------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.call_timeout) as resp:
            return json.loads(resp.read())

    def stats(self, names: bool = False) -> dict[str, Any]:
        return self.call("GET", "/_fake/stats" + ("?names=1" if names else ""))

    def calls(self, op: str) -> int:
        return self.stats()["calls"].get(op, 0)

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self.call("POST", "/_fake/config", changes)

    def forget(self, job_ids: list[str]) -> int:
        return self.call("POST", "/_fake/forget", {"job_ids": job_ids})["forgotten"]

    def jobs(self, **query: Any) -> list[dict[str, Any]]:
        return self.call("GET", "/_fake/jobs?" + urllib.parse.urlencode(query))["jobs"]

    # -- S3 ------------------------------------------------------------------------------------
    def put_object(self, uri: str, body: bytes = b"{}") -> None:
        bucket, _, key = uri[len("s3://"):].partition("/")
        req = urllib.request.Request(f"{self.url}/{bucket}/{urllib.parse.quote(key)}",
                                     data=body, method="PUT")
        urllib.request.urlopen(req, timeout=self.call_timeout).read()

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
                                        timeout=self.call_timeout) as resp:
                root = ET.fromstring(resp.read())
            keys += [e.text for e in root.iter(f"{ns}Key")]
            token_el = root.find(f"{ns}NextContinuationToken")
            if token_el is None:
                return keys
            token = token_el.text

    # -- the end -------------------------------------------------------------------------------
    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()
        shutil.rmtree(self.dir, ignore_errors=True)
