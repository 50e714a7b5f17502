"""A real `batchd --backend aws` process, driven with batchctl, against AWS emulators over HTTP.

Most tests use the project's fake AWS (`python -m tests.fakeaws`, a subprocess: Batch + S3 +
Logs on the real wire protocols, compressed time, fault injection, call counters). The fake's
counters are the referee: they count what actually reached "AWS", so they show duplicates,
hidden retries and wasted calls that batchd's own view could not.

The last test runs the same daemon against moto's server, an independent implementation, to
show that every request batchd makes is accepted there too.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.e2e.fake_fixtures import Driver, FakeProcess, new_aws_daemon, wait_until
from tests.e2e.moto_process import moto_server_url

pytestmark = pytest.mark.e2e

BUCKET = "results"
REASON = "wrong reference genome"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture
def fake_factory():
    made: list[FakeProcess] = []

    def make(**config) -> FakeProcess:
        config.setdefault("time_scale", 1000)
        config.setdefault("duration_mean", 60)
        fake = FakeProcess(config)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.stop()


@pytest.fixture
def daemon_on():
    """daemon_on(endpoint, rate_limit=..., poll=...) -> a started batchd on --backend aws."""
    made = []

    def make(endpoint: str, *, rate_limit: float = 200, poll: float = 0.5, args=()) -> Driver:
        daemon = new_aws_daemon(endpoint, "--poll-interval", str(poll), "--rate-limit",
                                str(rate_limit), *args)
        made.append(daemon)
        daemon.start()
        return Driver(daemon)

    yield make
    for daemon in made:
        daemon.cleanup()


def samples_csv(n: int, **columns) -> str:
    """n samples s000.. with extra columns given as functions of the index."""
    names = ["sample_name", "file_name", *columns]
    rows = [",".join([f"s{i:03d}", f"s3://inputs/s{i:03d}.fq",
                      *(str(f(i)) for f in columns.values())]) for i in range(n)]
    return "\n".join([",".join(names), *rows]) + "\n"


def output(step: int) -> str:
    return f"s3://{BUCKET}/{{project_name}}/{{sample_name}}.step{step}.json"


def definition(name: str, steps: int = 2, queue: str = "default", **params) -> dict:
    return {"workflow_name": name, "analyses": [
        {"job_definition": "fake-jobdef", "queue": queue, "outputs": [output(step)],
         "parameters": {"out": output(step), **params}}
        for step in range(steps)]}


def by_sample(jobs: list[dict]) -> dict[tuple[str, int], dict]:
    return {(j["sample"], j["step"]): j for j in jobs}


def events(driver: Driver, name: str) -> list[dict]:
    return driver.daemon.events(name)


# ------------------------------------------------------------------------------ lifecycle
def test_lifecycle_300_samples_two_steps_then_rerun_skips_everything(fake_factory, daemon_on):
    """300 samples x 2 steps run to COMPLETED through SubmitJob/DescribeJobs/S3: one SubmitJob
    per job name, DescribeJobs in batches, outputs checked by LIST not HEAD; a second workflow
    with the same outputs is complete without a single SubmitJob."""
    n = 300
    fake = fake_factory(duration_mean=1500)     # ~1.5 s real: each job is polled a few times
    ctl = daemon_on(fake.url)
    target = ctl.setup("proj", samples_csv(n), definition("wgs"))
    status = ctl.wait_for(target, timeout=60)
    assert status["status"] == "COMPLETED", status
    assert status["counts"] == {"COMPLETED": 2 * n}
    assert [s["counts"] for s in status["steps"]] == [{"COMPLETED": n}, {"COMPLETED": n}]
    jobs = ctl.jobs(target)
    assert len(jobs) == 2 * n
    assert all(j["attempt"] == 1 and not j["skipped"] for j in jobs)

    stats = fake.stats(names=True)
    calls = stats["calls"]
    # Exactly one SubmitJob per job, each under its own deterministic name. Duplicates are
    # checked first and the fake's counters shown, so a failure says which of the two it
    # was: a job created twice, or a call that created nothing and was sent again.
    assert stats["duplicate_job_names"] == {}, stats
    # No faults are injected, but a loaded machine can still drop a connection. Every call
    # beyond one per job must then be one the daemon logged and explained (an unknown outcome
    # looked up by name, or a send that provably failed): an unexplained extra call fails.
    unknown = events(ctl, "submit_outcome_unknown")
    resent = [e for e in events(ctl, "submit_reconciled")
              if e["outcome"] == "not_found_resending"] + events(ctl, "submit_deferred")
    summary = {k: v for k, v in stats.items() if k != "submits_by_name"}
    summary["unknown_because"] = [e.get("error") for e in unknown]
    summary["resent"] = resent
    assert calls["SubmitJob"] == 2 * n + len(resent), summary
    assert len(resent) <= 3, summary
    assert len(stats["submits_by_name"]) == 2 * n
    assert set(stats["submits_by_name"].values()) == {1}
    assert stats["duplicate_job_names"] == {}
    assert {j["job_name"] for j in jobs} == set(stats["submits_by_name"])
    # DescribeJobs carries up to 100 ids: far fewer calls than jobs (each job is polled
    # several times over its life).
    describe_per_job = calls["DescribeJobs"] / (2 * n)
    assert describe_per_job < 0.2, calls
    # Lookups by name only for unknown outcomes (normally none).
    assert (calls.get("ListJobs", 0) == 0) == (not unknown), summary
    # Outputs checked by listing their dense prefix, not one HEAD per file (a HEAD only when
    # a check round has just a few jobs, as completions trickle in).
    lists, heads = calls.get("S3.ListObjectsV2", 0), calls.get("S3.HeadObject", 0)
    assert lists + heads < (2 * n) / 10, calls
    print(f"\nlifecycle: {2 * n} jobs, SubmitJob/job={calls['SubmitJob'] / (2 * n):.2f}, "
          f"DescribeJobs={calls['DescribeJobs']} ({describe_per_job:.3f}/job), "
          f"ListObjectsV2={lists} ({lists / (2 * n):.3f}/output), HeadObject={heads}")

    keys = fake.list_keys(BUCKET, "proj/")
    assert sorted(keys) == sorted(f"proj/s{i:03d}.step{step}.json"
                                  for i in range(n) for step in range(2))

    # Re-run: a second workflow producing the same outputs. Nothing is submitted.
    before = fake.stats()["calls"]
    again = ctl.setup("proj", "", definition("wgs-again"), import_project=False)
    status = ctl.wait_for(again, timeout=30)
    assert status["status"] == "COMPLETED" and status["counts"] == {"COMPLETED": 2 * n}
    assert all(j["skipped"] and j["attempt"] == 0 for j in ctl.jobs(again))
    after = fake.stats()["calls"]
    delta = {op: after.get(op, 0) - before.get(op, 0) for op in after}
    assert delta.get("SubmitJob", 0) == 0
    assert delta.get("DescribeJobs", 0) == 0
    assert 1 <= delta.get("S3.ListObjectsV2", 0) <= 4, delta    # one per step (1 page each)
    assert delta.get("S3.HeadObject", 0) == 0, delta
    print(f"re-run: {2 * n} jobs skipped with ListObjectsV2={delta['S3.ListObjectsV2']}, "
          f"SubmitJob=0, HeadObject=0")


# ------------------------------------------------------------------------------ throttling
def test_throttling_is_absorbed_by_the_adaptive_budget(fake_factory, daemon_on):
    """The fake allows 15 Batch calls/s, batchd is configured for 40: calls get 429s, batchd
    (not botocore) defers and resends them under a budget that drops below the limit, and
    every job is still created exactly once."""
    n = 80
    fake = fake_factory(tps_limit=15)
    ctl = daemon_on(fake.url, rate_limit=40)
    target = ctl.setup("thr", samples_csv(n), definition("wf", steps=1))
    status = ctl.wait_for(target, timeout=60)
    assert status["status"] == "COMPLETED" and status["counts"] == {"COMPLETED": n}, status

    stats = fake.stats(names=True)
    calls, throttled = stats["calls"], stats["throttled"]
    assert stats["throttled_total"] > 0, "the test did not exceed the fake's limit"
    assert throttled.get("SubmitJob", 0) > 0
    # One job per name: nothing was created twice.
    assert stats["jobs_created"] == n and len(stats["submits_by_name"]) == n
    assert stats["duplicate_job_names"] == {}
    # Every throttled SubmitJob was answered by batchd itself (logged, resent later under the
    # budget): as many deferrals as 429s, and no extra calls a hidden botocore retry would make.
    deferred = [e for e in events(ctl, "submit_deferred") if e.get("kind") == "throttled"]
    assert len(deferred) == throttled["SubmitJob"]
    assert calls["SubmitJob"] == n + throttled["SubmitJob"]
    failed_calls = [e for e in events(ctl, "aws_call_failed") if e.get("kind") == "throttled"]
    assert len(failed_calls) == stats["throttled_total"]
    # The budget adapted: at a fixed 40/s against 15/s, ~60% of the calls would be refused.
    share = stats["throttled_total"] / stats["calls_total"]
    print(f"\nthrottling: {stats['calls_total']} Batch calls, {stats['throttled_total']} "
          f"throttled ({share:.0%}), SubmitJob calls={calls['SubmitJob']} for {n} jobs, "
          f"DescribeJobs={calls.get('DescribeJobs', 0)}")
    assert share < 0.3, stats


# ------------------------------------------------------------------------------ 5xx
def test_server_errors_are_retried_and_reconciled_without_duplicates(fake_factory, daemon_on):
    """10% of Batch calls fail with 500/503. A 5xx on SubmitJob leaves the outcome unknown:
    batchd looks the name up (ListJobs) before sending again, so no job is duplicated."""
    n = 100
    fake = fake_factory(error_5xx_rate=0.1, seed=7)
    ctl = daemon_on(fake.url, rate_limit=100)
    target = ctl.setup("err", samples_csv(n), definition("wf", steps=1))
    status = ctl.wait_for(target, timeout=60)
    assert status["status"] == "COMPLETED" and status["counts"] == {"COMPLETED": n}

    stats = fake.stats(names=True)
    errors = stats["errors_5xx"]
    assert errors.get("SubmitJob", 0) > 0, stats
    assert stats["jobs_created"] == n
    assert set(stats["submits_by_name"].values()) == {1}
    assert stats["duplicate_job_names"] == {}
    unknown = events(ctl, "submit_outcome_unknown")
    reconciled = Counter(e["outcome"] for e in events(ctl, "submit_reconciled"))
    assert len(unknown) == errors["SubmitJob"]
    # The fake fails before any effect: every unknown submit is found absent, then resent.
    assert reconciled == {"not_found_resending": len(unknown)}
    assert stats["calls"]["ListJobs"] >= len(unknown)
    assert all(j["attempt"] == 1 for j in ctl.jobs(target))
    print(f"\n5xx: {stats['errors_5xx_total']} injected errors ({errors}), "
          f"{len(unknown)} unknown submits reconciled by name, 0 duplicates")


# ------------------------------------------------------------------------------ lost jobs
def test_jobs_forgotten_by_batch_are_reconciled_then_checked_or_resubmitted(fake_factory,
                                                                           daemon_on):
    """Jobs that vanish from DescribeJobs are not polled forever: after a few empty polls and
    a ListJobs lookup they are lost; their outputs are checked first, so a lost job whose
    outputs exist is COMPLETED as it is, and one without them gets attempt 2."""
    n, lost = 12, ["s000", "s001", "s002", "s003", "s004", "s005"]
    with_outputs = lost[:3]
    fake = fake_factory()
    ctl = daemon_on(fake.url)
    csv = samples_csv(n, behaviour=lambda i: "hang_once" if f"s{i:03d}" in lost else "success")
    target = ctl.setup("lost", csv, definition("wf", steps=1, fake_behaviour="{behaviour}"))

    def running_in_daemon():
        jobs = by_sample(ctl.jobs(target))
        return all(jobs[(s, 0)]["state"] == "RUNNING" for s in lost) and jobs
    jobs = wait_until(running_in_daemon, 30, "the hanging jobs to be RUNNING")
    ids = {s: jobs[(s, 0)]["job_id"] for s in lost}
    for sample in with_outputs:        # these finished their work before Batch forgot them
        fake.put_object(f"s3://{BUCKET}/lost/{sample}.step0.json")
    assert fake.forget(list(ids.values())) == len(lost)

    status = ctl.wait_for(target, timeout=30)
    assert status["status"] == "COMPLETED" and status["counts"] == {"COMPLETED": n}, status
    jobs = by_sample(ctl.jobs(target))
    lost_events = events(ctl, "job_lost")
    assert sorted(e["job_id"] for e in lost_events) == sorted(ids.values())
    submits = fake.stats(names=True)["submits_by_name"]
    assert set(submits.values()) == {1}
    for sample in lost:
        attempts = ctl.attempts(target, sample=sample)
        first = attempts[0]
        assert first["backend_job_id"] == ids[sample]
        assert first["state"] == "FAILED" and first["failure_class"] == "lost"
        if sample in with_outputs:       # completed by the attempt that ran, not "skipped"
            assert jobs[(sample, 0)]["attempt"] == 1 and len(attempts) == 1
            assert not jobs[(sample, 0)]["skipped"]
            assert not any(f"-{sample}-s0-a2-" in name for name in submits)
        else:
            assert jobs[(sample, 0)]["attempt"] == 2 and len(attempts) == 2
            assert attempts[1]["state"] == "SUCCEEDED"
            assert sum(f"-{sample}-s0-a2-" in name for name in submits) == 1
    # Nothing is left to poll: every attempt ended.
    assert all(a["state"] in ("SUCCEEDED", "FAILED") for a in ctl.attempts(target))
    print(f"\nlost: {len(lost)} forgotten jobs -> {len(with_outputs)} completed from their "
          f"outputs, {len(lost) - len(with_outputs)} resubmitted; ListJobs="
          f"{fake.calls('ListJobs')}")


def test_lost_job_with_outputs_completes_even_without_retries_left(fake_factory, daemon_on):
    """With retry.max_attempts = 1 a lost job has no retry left, yet its outputs are still
    checked before it is judged: present -> COMPLETED, absent -> FAILED as `lost`."""
    lost = ["s000", "s001"]
    fake = fake_factory()
    ctl = daemon_on(fake.url)
    wf = definition("wf", steps=1, fake_behaviour="{behaviour}")
    wf["analyses"][0]["retry"] = {"max_attempts": 1}
    csv = samples_csv(4, behaviour=lambda i: "hang_once" if f"s{i:03d}" in lost else "success")
    target = ctl.setup("once", csv, wf)

    def running_in_daemon():
        jobs = by_sample(ctl.jobs(target))
        return all(jobs[(s, 0)]["state"] == "RUNNING" for s in lost) and jobs
    jobs = wait_until(running_in_daemon, 30, "the hanging jobs to be RUNNING")
    fake.put_object(f"s3://{BUCKET}/once/s000.step0.json")
    assert fake.forget([jobs[(s, 0)]["job_id"] for s in lost]) == 2

    status = ctl.wait_for(target, timeout=30)
    assert status["status"] == "FAILED" and status["counts"] == {"COMPLETED": 3, "FAILED": 1}
    jobs = by_sample(ctl.jobs(target))
    assert jobs[("s000", 0)]["state"] == "COMPLETED" and jobs[("s000", 0)]["attempt"] == 1
    gone = jobs[("s001", 0)]
    assert gone["state"] == "FAILED" and gone["failure_class"] == "lost"
    assert "no longer returns job" in gone["reason"] and "s001.step0.json" in gone["reason"]
    assert gone["attempt"] == 1 and fake.stats()["jobs_created"] == 4


# ------------------------------------------------------------------------------ logs
def test_logs_returns_every_line_across_pages(fake_factory, daemon_on):
    """A 45-line log read through pages of 10 lines: every line, in order."""
    lines = 45
    fake = fake_factory(log_page_size=10)
    ctl = daemon_on(fake.url)
    target = ctl.setup("logs", samples_csv(2), definition("wf", steps=1,
                                                          fake_log_lines=str(lines)))
    assert ctl.wait_for(target, timeout=30)["status"] == "COMPLETED"
    before = fake.calls("Logs.GetLogEvents")
    text = ctl.logs(target, "s001", 0)
    pages = fake.calls("Logs.GetLogEvents") - before
    job_name = by_sample(ctl.jobs(target))[("s001", 0)]["job_name"]
    working = [line for line in text.splitlines() if "working, step" in line]
    assert working == [f"{job_name}: working, step {i} of {lines}" for i in range(1, lines + 1)]
    assert "s000" not in text.replace(job_name, "")           # only the asked-for job
    assert pages >= lines // 10 + 1, pages                     # several pages were read
    print(f"\nlogs: {len(working)} lines over {pages} GetLogEvents pages")


# ------------------------------------------------------------------------------ cancel + queues
def test_queues_then_cancel_runnable_then_all(fake_factory, daemon_on):
    """30 long jobs on a 10-vCPU queue: 10 RUNNING, 20 RUNNABLE. `batchctl queues` shows both
    views (cached); cancelling RUNNABLE sends CancelJob to exactly those; cancelling the rest
    sends TerminateJob to the running ones; the workflow ends CANCELLED."""
    n = 30
    fake = fake_factory(queues=[{"name": "default", "max_vcpus": 10}])
    ctl = daemon_on(fake.url)
    target = ctl.setup("cx", samples_csv(n), definition("wf", steps=2,
                                                        fake_duration="10000000"))
    ctl.wait_for(target, statuses=("RUNNING",), timeout=30,
                 check=lambda s: s["counts"] == {"RUNNING": 10, "RUNNABLE": 20, "WAITING": 30})

    first = ctl.queues()
    ctl.queues()
    third = ctl.queues()
    assert first == third
    [queue] = [q for q in first["queues"] if q["name"] == "default"]
    assert queue["counts"] == {"RUNNING": 10, "RUNNABLE": 20}
    assert queue["state"] == "ENABLED" and queue["status"] == "VALID"
    assert queue["max_vcpus"] == 10
    assert fake.calls("DescribeJobQueues") == 1                # cached between calls
    assert fake.calls("DescribeComputeEnvironments") == 1

    ctl.cancel(target, REASON, status="RUNNABLE")
    wait_until(lambda: not fake.jobs(status="RUNNABLE"), 15, "RUNNABLE jobs to be cancelled")
    status = ctl.wait_for(target, statuses=("RUNNING",), timeout=15,
                          check=lambda s: s["counts"].get("CANCELLED") == 20)
    assert status["counts"] == {"RUNNING": 10, "CANCELLED": 20, "WAITING": 30}
    failed = fake.jobs(status="FAILED")
    assert len(failed) == 20 and all(REASON in j["statusReason"] for j in failed)
    assert len(fake.jobs(status="RUNNING")) == 10
    assert fake.calls("CancelJob") == 20 and fake.calls("TerminateJob") == 0

    ctl.cancel(target, REASON)
    status = ctl.wait_for(target, statuses=("CANCELLED",), timeout=15)
    assert status["counts"] == {"CANCELLED": 2 * n}
    wait_until(lambda: not fake.jobs(status="RUNNING"), 15, "RUNNING jobs to be terminated")
    assert len(fake.jobs(status="FAILED")) == n
    assert fake.calls("CancelJob") == 20 and fake.calls("TerminateJob") == 10
    assert fake.stats()["jobs_created"] == n                   # step 1 never ran
    jobs = ctl.jobs(target)
    assert all(j["state"] == "CANCELLED" and REASON in j["reason"] for j in jobs)


# ------------------------------------------------------------------------------ moto
REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_server():
    pytest.importorskip("moto.server")
    with moto_server_url() as url:
        yield url


def _boto(url: str, service: str):
    import boto3
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _moto_queue(url: str) -> str:
    """A compute environment and job queue of unique names (moto's state is per process)."""
    tag = uuid.uuid4().hex[:8]
    iam, ec2, batch = (_boto(url, s) for s in ("iam", "ec2", "batch"))
    role = iam.create_role(RoleName=f"svc-{tag}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(
        InstanceProfileName=f"inst-{tag}")["InstanceProfile"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"sg-{tag}", Description="batch",
                                   VpcId=vpc)["GroupId"]
    ce = batch.create_compute_environment(
        computeEnvironmentName=f"ce-{tag}", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 64, "desiredvCpus": 0,
                          "instanceTypes": ["optimal"], "subnets": [subnet],
                          "securityGroupIds": [sg], "instanceRole": profile})
    queue = f"q-{tag}"
    batch.create_job_queue(jobQueueName=queue, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment":
                                                     ce["computeEnvironmentArn"]}])
    return queue


def test_real_daemon_against_moto(moto_server, daemon_on):
    """The same daemon and batchctl against moto, an independent implementation: it accepts
    RegisterJobDefinition, SubmitJob (parameters, overrides, tags, timeout), DescribeJobs,
    ListObjectsV2 and HeadObject. moto's simple mode says SUCCEEDED at once but writes
    nothing: samples whose step-0 output exists are skipped, the others run out of retries
    as outputs_missing - which is exactly what batchd must conclude."""
    queue = _moto_queue(moto_server)
    bucket = f"moto-{uuid.uuid4().hex[:8]}"
    s3 = _boto(moto_server, "s3")
    s3.create_bucket(Bucket=bucket)
    n, present = 10, ["s000", "s003", "s005", "s008"]
    for sample in present:
        s3.put_object(Bucket=bucket, Key=f"mp/{sample}.step0.json", Body=b"{}")

    ctl = daemon_on(moto_server, rate_limit=100)
    ctl.register_jobdef({
        "jobDefinitionName": "moto-tool", "type": "container",
        "parameters": {"threads": "1"},
        "containerProperties": {"image": "busybox", "command": ["run", "Ref::out"],
                                "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                         {"type": "MEMORY", "value": "512"}]}})
    outputs = [f"s3://{bucket}/{{project_name}}/{{sample_name}}.step0.json",
               f"s3://{bucket}/{{project_name}}/{{sample_name}}/{{sample_name}}.step1.json"]
    target = ctl.setup("mp", samples_csv(n), {"workflow_name": "wf", "analyses": [
        {"job_definition": "moto-tool", "queue": queue, "outputs": [out],
         "parameters": {"out": out, "sample": "{sample_name}"},
         "containerOverrides": {"vcpus": 2, "memory": 1024,
                                "environment": {"SAMPLE": "{sample_name}"}},
         "timeout": 3600, "retry": {"max_attempts": 2}}
        for out in outputs]})
    status = ctl.wait_for(target, timeout=60)
    assert status["status"] == "FAILED", status
    jobs = by_sample(ctl.jobs(target))
    for i in range(n):
        sample = f"s{i:03d}"
        step0, step1 = jobs[(sample, 0)], jobs[(sample, 1)]
        if sample in present:
            assert step0["state"] == "COMPLETED" and step0["skipped"]
            failed = step1                       # step 1 ran (in moto) and wrote nothing
        else:
            assert step1["state"] == "WAITING"
            failed = step0
        assert failed["state"] == "FAILED" and failed["failure_class"] == "outputs_missing"
        assert failed["attempt"] == 2 and failed["exit_code"] in (0, None)
        assert "step" in failed["reason"] and bucket in failed["reason"]
    assert status["counts"] == {"COMPLETED": 4, "FAILED": 10, "WAITING": 6}

    # What moto stored for one of batchd's submissions.
    job = next(j for j in jobs.values() if j["state"] == "FAILED")
    detail = _boto(moto_server, "batch").describe_jobs(jobs=[job["job_id"]])["jobs"][0]
    assert detail["jobName"] == job["job_name"]
    assert detail["tags"]["batchd:project"] == "mp"
    assert detail["tags"]["batchd:attempt"] == str(job["attempt"])
    assert detail["timeout"] == {"attemptDurationSeconds": 3600}
    assert detail["parameters"]["sample"] == job["sample"]
    env = {e["name"]: e["value"] for e in detail["container"]["environment"]}
    assert env["SAMPLE"] == job["sample"]
    # No request was refused: no rejected submits, no failed AWS calls other than moto's
    # known transient DescribeJobs race.
    assert not events(ctl, "submit_rejected")
    assert len(events(ctl, "job_submitted")) == 6 * 2 + 4 * 2     # 2 attempts each
    failed_calls = events(ctl, "aws_call_failed")
    assert [e for e in failed_calls if e.get("kind") == "permanent"] == []
    print(f"\nmoto: {len(events(ctl, 'job_submitted'))} submits accepted; failed calls: "
          f"{Counter((e['operation'], e['kind']) for e in failed_calls)}")
