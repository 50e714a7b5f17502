"""A failed attempt whose job was cancelled meanwhile (the user's cancel killed it) gets its
failure class recorded, but is not announced as `job_retrying`/`job_failed`: the store
leaves a cancelled job alone, so the log must not say it is retried."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from batchd.config.settings import Settings
from batchd.loops.poller import Poller
from batchd.wakeups import Wakeups
from tests.stub_backend import StubBackend


def _ctx(state: str) -> dict:
    return {"attempt_id": 7, "current_attempt_id": 7, "job_id": 3, "state": state,
            "retry": None, "exit_code": 137, "memory": 2048, "vcpus": 1.0, "timeout": None,
            "spot_failures": 0, "other_failures": 0}


def _decide(state: str) -> tuple[list, list[str]]:
    poller = Poller(None, StubBackend(), Settings(), Wakeups(),  # type: ignore[arg-type]
                    asyncio.Event())                              # (no store: never used)
    with capture_logs() as logs:
        decisions = poller.decisions([(_ctx(state), "app_error", "killed")])
    return decisions, [entry["event"] for entry in logs]


def test_a_running_jobs_failure_is_announced():
    decisions, events = _decide("RUNNING")
    assert len(decisions) == 1 and events == ["job_retrying"]


def test_a_cancelled_jobs_failed_attempt_is_decided_but_not_announced():
    decisions, events = _decide("CANCELLED")
    assert len(decisions) == 1                 # its failure class is still recorded
    assert "job_retrying" not in events and "job_failed" not in events
