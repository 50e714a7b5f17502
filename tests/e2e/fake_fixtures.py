"""Helpers for the e2e tests that run a real `batchd --backend aws` process against an AWS
emulator over HTTP: the project's fake AWS (`python -m tests.fakeaws`, a subprocess) or moto's
server. batchd finds the emulator only through the standard `AWS_ENDPOINT_URL` variable.
`Driver` drives the daemon the way a user does: `batchctl` subprocesses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.daemon_harness import Daemon
from tests.fakeaws_process import FakeAwsProcess, aws_env, new_aws_daemon

__all__ = ["TERMINAL", "Driver", "FakeProcess", "aws_env", "new_aws_daemon", "wait_until"]

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


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
class FakeProcess(FakeAwsProcess):
    """The shared fake AWS process (tests/fakeaws_process.py) with these tests' timeouts."""

    START_TIMEOUT = 20.0
    CALL_TIMEOUT = 30.0


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
