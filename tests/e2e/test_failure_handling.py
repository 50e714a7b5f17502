"""Failure handling end to end: a real `batchd --backend aws` against the project's fake AWS.

The fake reports failures the way AWS Batch does (statusReason, container.reason, exit code in
DescribeJobs), chosen per sample with SubmitJob parameters (`fake_behaviour`,
`fake_required_memory`). Each test checks what a user sees through batchctl (job rows with
failure_class + reason, attempt history, compute spent) and, through the fake's counters, what
actually reached "AWS" (how many jobs were created for each sample).
"""

from __future__ import annotations

import pytest

from tests.e2e.aws_fixtures import (  # noqa: F401 - fixtures
    Ops,
    analysis,
    aws_daemon_factory,
    fake_aws_factory,
    samples_csv,
    submits_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def aws(fake_aws_factory, aws_daemon_factory):  # noqa: F811 - fixtures imported above
    """(fake, ops): a fresh fake AWS and a started daemon on it."""
    fake = fake_aws_factory()
    daemon = aws_daemon_factory(fake.url).start()
    return fake, Ops(daemon)


def _behaviours(table: dict[str, str]):
    return lambda sample: table.get(sample, "success")


# ------------------------------------------------------------------------------ classification
def test_each_failure_class_is_recognised_from_realistic_payloads(aws):
    """One sample per kind of failure, no retries: every failed job shows the right
    failure_class and a reason that says what happened, in `batchctl status --jobs --json`;
    the compute spent on the failed attempts is reported as wasted."""
    fake, ops = aws
    table = {"spot": "spot", "oom": "oom", "app": "app_error", "image": "image_error",
             "noout": "no_outputs", "hang": "hang"}
    names = ["ok", *table]
    target = ops.setup("classes", samples_csv(names, behaviour=_behaviours(table)), {
        "workflow_name": "wf", "analyses": [analysis(
            0, parameters={"fake_behaviour": "{behaviour}"}, timeout=600,
            retry={"max_attempts": 1, "spot_attempts": 1})]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "FAILED", status
    assert status["counts"] == {"COMPLETED": 1, "FAILED": len(table)}, status
    jobs = ops.jobs(target)
    assert jobs[("ok", 0)]["state"] == "COMPLETED"

    expected = {   # sample -> (failure_class, phrases the reason must contain)
        "spot": ("spot", ["spot instance", "reclaimed", "retry.spot_attempts = 1",
                          "on-demand queue"]),
        "oom": ("oom", ["ran out of memory with 2,048 MiB", "retry.max_attempts = 1"]),
        "app": ("app", ["the program failed (exit code 1", "retry.max_attempts = 1"]),
        "image": ("image", ["CannotPullContainerError", "fix the image",
                            "batchctl resubmit"]),
        "noout": ("outputs_missing", ["did not write its outputs",
                                      "s3://results/classes/wf/noout.step0.json"]),
        "hang": ("timeout", ["ran longer than 600 s timeout"]),
    }
    for sample, (cls, phrases) in expected.items():
        job = jobs[(sample, 0)]
        assert job["state"] == "FAILED", job
        assert job["failure_class"] == cls, job
        for phrase in phrases:
            assert phrase in job["reason"], (sample, phrase, job["reason"])
        assert job["attempt"] == 1, job

    # The payloads the classes came from are the ones AWS Batch sends.
    raw = {s: ops.history(target, s)[0] for s in expected}
    assert raw["spot"]["status_reason"].startswith("Host EC2 (instance i-")
    assert raw["spot"]["exit_code"] is None
    assert raw["oom"]["container_reason"].startswith("OutOfMemoryError")
    assert raw["oom"]["exit_code"] == 137
    assert raw["image"]["container_reason"].startswith("CannotPullContainerError")
    assert raw["hang"]["status_reason"] == "Job attempt duration exceeded timeout"
    assert raw["noout"]["state"] == "SUCCEEDED"          # Batch said fine; the outputs did not
    assert all(raw[s]["failure_class"] == cls for s, (cls, _) in expected.items())

    # Nothing was retried: one job per sample reached the fake.
    stats = fake.stats(names=True)
    assert stats["jobs_created"] == len(names) and stats["duplicate_job_names"] == {}

    compute = status["compute"]
    assert compute["useful_vcpu_hours"] > 0, compute          # the one that completed
    assert compute["wasted_vcpu_hours"] > 0, compute          # every failure that ran
    assert compute["wasted_gib_hours"] > 0, compute
    print(f"\nclasses: {', '.join(f'{s}->{c}' for s, (c, _) in expected.items())}; "
          f"compute {compute}")


# ------------------------------------------------------------------------------ oom
def test_oom_is_retried_with_twice_the_memory_and_completes(aws):
    """A sample needing 1,500 MiB given 1,024 runs out of memory; batchd resubmits it with
    2,048 MiB (memory_factor 2) and it completes. The history shows both attempts."""
    fake, ops = aws
    needs = {"big": 1500}
    target = ops.setup("oomretry", samples_csv(["small", "big"],
                                               need=lambda s: needs.get(s, 1)), {
        "workflow_name": "wf", "analyses": [analysis(
            0, parameters={"fake_required_memory": "{need}"},
            containerOverrides={"memory": 1024},
            retry={"max_attempts": 3, "memory_factor": 2.0, "max_memory": 16000})]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "COMPLETED", status
    assert status["counts"] == {"COMPLETED": 2}

    history = ops.history(target, "big")
    assert [(a["attempt"], a["memory"], a["state"], a["failure_class"]) for a in history] == [
        (1, 1024, "FAILED", "oom"), (2, 2048, "SUCCEEDED", None)], history
    assert history[0]["exit_code"] == 137
    jobs = ops.jobs(target)
    assert jobs[("big", 0)]["attempt"] == 2 and jobs[("big", 0)]["state"] == "COMPLETED"
    assert jobs[("small", 0)]["attempt"] == 1

    # What the fake actually ran: the second job was given 2,048 MiB.
    second = fake.jobs(name=history[1]["job_name"])
    assert len(second) == 1 and second[0]["_fake"]["memory"] == 2048, second
    stats = fake.stats(names=True)
    assert sorted(submits_for(stats, "oomretry", "big").values()) == [1, 1]
    assert stats["duplicate_job_names"] == {}

    compute = status["compute"]
    assert compute["useful_vcpu_hours"] > 0 and compute["wasted_vcpu_hours"] > 0, compute
    assert compute["wasted_gib_hours"] > 0, compute


def test_oom_beyond_max_memory_gives_up_then_resubmit_with_memory_completes(aws):
    """A sample needing 6,000 MiB with max_memory 2,048: 1,024 -> 2,048 -> give up with a
    reason naming max_memory (not after max_attempts=5). `batchctl resubmit --memory 8192`
    then completes it with a third attempt of 8,192 MiB."""
    fake, ops = aws
    needs = {"huge": 6000}
    target = ops.setup("oomcap", samples_csv(["fine", "huge"],
                                             need=lambda s: needs.get(s, 1)), {
        "workflow_name": "wf", "analyses": [analysis(
            0, parameters={"fake_required_memory": "{need}"},
            containerOverrides={"memory": 1024},
            retry={"max_attempts": 5, "memory_factor": 2.0, "max_memory": 2048})]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "FAILED", status
    assert status["counts"] == {"COMPLETED": 1, "FAILED": 1}
    job = ops.jobs(target)[("huge", 0)]
    assert job["failure_class"] == "oom" and job["attempt"] == 2, job
    assert "max_memory" in job["reason"] and "2,048 MiB" in job["reason"], job["reason"]
    assert "raise max_memory" in job["reason"], job["reason"]
    history = ops.history(target, "huge")
    assert [(a["memory"], a["failure_class"]) for a in history] == [(1024, "oom"),
                                                                    (2048, "oom")]

    ops.resubmit(target, status="FAILED", sample="huge", memory=8192)
    status = ops.wait_for(target, statuses=("COMPLETED",), timeout=60)
    assert status["counts"] == {"COMPLETED": 2}, status
    history = ops.history(target, "huge")
    assert [(a["attempt"], a["memory"], a["state"]) for a in history] == [
        (1, 1024, "FAILED"), (2, 2048, "FAILED"), (3, 8192, "SUCCEEDED")], history
    stats = fake.stats(names=True)
    assert sorted(submits_for(stats, "oomcap", "huge").values()) == [1, 1, 1]
    assert submits_for(stats, "oomcap", "fine") and stats["duplicate_job_names"] == {}
    print(f"\nresubmit via {'API' if 'resubmit' in ops.via_api else 'batchctl resubmit'}, "
          f"history via {'API' if 'history' in ops.via_api else 'batchctl history'}")


# ------------------------------------------------------------------------------ spot
def test_spot_reclaims_are_retried_without_spending_max_attempts(aws):
    """max_attempts = 1, and the instance is reclaimed twice: the job still completes on its
    third attempt, because spot reclaims count against spot_attempts only."""
    fake, ops = aws
    table = {"reclaimed": "spot_x2"}
    target = ops.setup("spot", samples_csv(["steady", "reclaimed"],
                                           behaviour=_behaviours(table)), {
        "workflow_name": "wf", "analyses": [analysis(
            0, parameters={"fake_behaviour": "{behaviour}"},
            retry={"max_attempts": 1, "spot_attempts": 5})]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "COMPLETED", status
    history = ops.history(target, "reclaimed")
    assert [(a["attempt"], a["state"], a["failure_class"]) for a in history] == [
        (1, "FAILED", "spot"), (2, "FAILED", "spot"), (3, "SUCCEEDED", None)], history
    assert all(a["status_reason"].startswith("Host EC2") for a in history[:2])
    # Same resources each time (a reclaim says nothing about the job).
    assert len({(a["memory"], a["vcpus"]) for a in history}) == 1
    stats = fake.stats(names=True)
    assert sorted(submits_for(stats, "spot", "reclaimed").values()) == [1, 1, 1]
    assert status["compute"]["wasted_vcpu_hours"] > 0, status["compute"]


# ------------------------------------------------------------------------------ app errors
def test_always_failing_sample_gives_up_after_max_attempts_while_others_complete(aws):
    """4 samples x 2 steps; one sample's step 0 always exits 1. It is tried exactly
    max_attempts = 3 times, then FAILED with a reason saying so; its step 1 never runs; every
    other job completes; the workflow ends FAILED."""
    fake, ops = aws
    table = {"bad": "app_error"}
    names = ["a", "b", "bad", "c"]
    target = ops.setup("apperr", samples_csv(names, behaviour=_behaviours(table)), {
        "workflow_name": "wf", "analyses": [
            analysis(0, parameters={"fake_behaviour": "{behaviour}"},
                     retry={"max_attempts": 3}),
            analysis(1)]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "FAILED", status
    assert status["counts"] == {"COMPLETED": 6, "FAILED": 1, "WAITING": 1}, status
    assert [s["counts"] for s in status["steps"]] == [{"COMPLETED": 3, "FAILED": 1},
                                                      {"COMPLETED": 3, "WAITING": 1}]
    jobs = ops.jobs(target)
    bad = jobs[("bad", 0)]
    assert bad["state"] == "FAILED" and bad["failure_class"] == "app", bad
    assert bad["attempt"] == 3 and bad["exit_code"] == 1, bad
    assert "gave up after 3 failed attempts (retry.max_attempts = 3)" in bad["reason"], bad
    assert jobs[("bad", 1)]["state"] == "WAITING" and jobs[("bad", 1)]["attempt"] == 0
    stats = fake.stats(names=True)
    assert sorted(submits_for(stats, "apperr", "bad").values()) == [1, 1, 1]
    assert stats["jobs_created"] == 3 + 6 and stats["duplicate_job_names"] == {}


# ------------------------------------------------------------------------------ outputs
def test_missing_outputs_are_retried_and_complete(aws):
    """Batch says SUCCEEDED but the outputs are not there (once): the job is not COMPLETED on
    Batch's word; it is retried as outputs_missing and completes on attempt 2."""
    fake, ops = aws
    table = {"forgetful": "no_outputs_once"}
    target = ops.setup("outs", samples_csv(["fine", "forgetful"],
                                          behaviour=_behaviours(table)), {
        "workflow_name": "wf", "analyses": [analysis(
            0, parameters={"fake_behaviour": "{behaviour}"}, retry={"max_attempts": 2})]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "COMPLETED", status
    history = ops.history(target, "forgetful")
    assert [(a["attempt"], a["state"], a["failure_class"]) for a in history] == [
        (1, "SUCCEEDED", "outputs_missing"), (2, "SUCCEEDED", None)], history
    job = ops.jobs(target)[("forgetful", 0)]
    assert job["state"] == "COMPLETED" and job["attempt"] == 2, job
    assert sorted(submits_for(fake.stats(names=True), "outs", "forgetful").values()) == [1, 1]


# ------------------------------------------------------------------------------ image
def test_image_error_fails_fast_after_one_attempt_saying_what_to_fix(aws):
    """A container that cannot be pulled is not retried (max_attempts = 5 notwithstanding):
    one attempt, FAILED, and the reason names the error and the fix."""
    fake, ops = aws
    table = {"broken": "image_error"}
    target = ops.setup("image", samples_csv(["fine", "broken"],
                                           behaviour=_behaviours(table)), {
        "workflow_name": "wf", "analyses": [analysis(
            0, parameters={"fake_behaviour": "{behaviour}"}, retry={"max_attempts": 5})]})
    status = ops.wait_for(target, timeout=60)
    assert status["status"] == "FAILED", status
    assert status["counts"] == {"COMPLETED": 1, "FAILED": 1}
    job = ops.jobs(target)[("broken", 0)]
    assert job["failure_class"] == "image" and job["attempt"] == 1, job
    assert "CannotPullContainerError" in job["reason"], job["reason"]
    assert "not retried" in job["reason"] and "fix the image" in job["reason"], job["reason"]
    assert list(submits_for(fake.stats(names=True), "image", "broken").values()) == [1]
    # It never ran: nothing wasted on it.
    assert ops.history(target, "broken")[0]["started_at"] is None
