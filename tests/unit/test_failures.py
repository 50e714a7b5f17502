"""Failure classes from realistic AWS Batch payloads, and the retry policy's decisions."""

import pytest

from batchd.failures import FailedAttempt, GiveUp, Retry, RetryPolicy, classify, decide


@pytest.mark.parametrize("status_reason, container_reason, exit_code, expected", [
    ("Host EC2 (instance i-0a1b2c3d4e5f67890) terminated.", None, None, "spot"),
    ("Essential container in task exited",
     "OutOfMemoryError: Container killed due to memory usage", 137, "oom"),
    ("OutOfMemoryError: Container killed due to memory usage", None, 137, "oom"),
    ("Job attempt duration exceeded timeout", None, None, "timeout"),
    ("Task failed to start",
     "CannotPullContainerError: Error response from daemon: pull access denied for "
     "example/missing, repository does not exist", None, "image"),
    ("Task failed to start", "CannotStartContainerError: Error response from daemon: "
     "failed to create shim task", None, "image"),
    ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/"
     "GPU) is higher than that can be met by the CE(s) attached to the job queue.", None, None,
     "misconfiguration"),
    ("Dependent Job failed", None, None, "dependency"),
    ("Essential container in task exited", None, 1, "app"),
    ("Cancelled by user via console", None, None, "cancelled"),
    ("Terminated by batchd user", None, None, "cancelled"),
])
def test_classify_realistic_payloads(status_reason, container_reason, exit_code, expected):
    assert classify(status_reason, container_reason, exit_code) == expected


def failed(cls, memory=8000, timeout=3600, spot=0, other=0, exit_code=None):
    return FailedAttempt(cls, "detail", exit_code, memory, 4, timeout, spot, other)


POLICY = RetryPolicy(max_attempts=3, spot_attempts=5, memory_factor=2, max_memory=20000,
                     timeout_factor=1.5)


def test_oom_doubles_memory_until_the_cap_then_gives_up():
    first = decide(failed("oom", memory=8000), POLICY)
    assert isinstance(first, Retry) and first.memory == 16000 and not first.spot
    capped = decide(failed("oom", memory=16000, other=1), POLICY)
    assert isinstance(capped, Retry) and capped.memory == 20000
    done = decide(failed("oom", memory=20000, other=1), POLICY)
    assert isinstance(done, GiveUp) and "max_memory" in done.reason
    assert "20,000 MiB" in done.reason


def test_spot_retries_do_not_spend_max_attempts():
    decision = decide(failed("spot", spot=3, other=2), POLICY)
    assert isinstance(decision, Retry) and decision.spot and decision.memory == 8000
    assert isinstance(decide(failed("spot", spot=4), POLICY), GiveUp)


def test_app_errors_give_up_after_max_attempts():
    assert isinstance(decide(failed("app", other=1, exit_code=1), POLICY), Retry)
    final = decide(failed("app", other=2, exit_code=1), POLICY)
    assert isinstance(final, GiveUp) and "3 failed attempts" in final.reason
    assert "exit code 1" in final.reason


@pytest.mark.parametrize("cls", ["image", "misconfiguration", "submit_rejected"])
def test_unfixable_failures_fail_fast(cls):
    decision = decide(failed(cls), POLICY)
    assert isinstance(decision, GiveUp) and "not retried" in decision.reason


def test_timeout_gets_a_longer_timeout():
    decision = decide(failed("timeout", timeout=3600), POLICY)
    assert isinstance(decision, Retry) and decision.timeout == 5400


def test_outputs_missing_is_retried_and_policy_merges_overrides():
    policy = RetryPolicy.merged(POLICY, {"max_attempts": 1})
    assert policy.max_attempts == 1 and policy.spot_attempts == 5
    assert isinstance(decide(failed("outputs_missing"), POLICY), Retry)
    assert isinstance(decide(failed("outputs_missing"), policy), GiveUp)


def test_cancelled_is_not_retried():
    decision = decide(failed("cancelled"), POLICY)
    assert isinstance(decision, GiveUp) and decision.cancelled


@pytest.mark.parametrize("container_reason", [
    "CannotPullContainerError: Error response from daemon: toomanyrequests: You have reached "
    "your pull rate limit. You may increase the limit by authenticating and upgrading",
    "CannotPullContainerError: failed to resolve ref docker.io/library/ubuntu:22.04: "
    "unexpected status from HEAD request: 429 Too Many Requests",
])
def test_registry_throttling_is_retried_not_an_image_error(container_reason):
    cls = classify("Task failed to start", container_reason, None)
    assert cls == "registry_throttled"
    decision = decide(FailedAttempt(cls, container_reason, None, 8000, 4, 3600, 0, 2), POLICY)
    assert isinstance(decision, Retry) and decision.spot and decision.memory == 8000
    assert "registry" in decision.reason
