"""The project's fake AWS (tests/fakeaws) answers real aiobotocore clients like AWS would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.daemon_harness import REPO
from tests.fakeaws import FakeAWS

pytestmark = pytest.mark.e2e

TERMINAL = ("SUCCEEDED", "FAILED")


@pytest.fixture
async def fake():
    server = FakeAWS({"time_scale": 600, "queues": [{"name": "default", "max_vcpus": 16,
                                                      "max_instance_memory": 16384}]})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def aws(fake):
    session = get_session()
    kw = dict(endpoint_url=fake.url, region_name="us-east-1", aws_access_key_id="x",
              aws_secret_access_key="x", config=AioConfig(retries={"total_max_attempts": 1}))
    async with session.create_client("batch", **kw) as batch, \
            session.create_client("s3", **kw) as s3, session.create_client("logs", **kw) as logs:
        yield batch, s3, logs


async def submit(batch, name, **kw):
    kw.setdefault("jobQueue", "default")
    kw.setdefault("jobDefinition", "fake-jobdef")
    return (await batch.submit_job(jobName=name, **kw))["jobId"]


async def describe(batch, job_id):
    jobs = (await batch.describe_jobs(jobs=[job_id]))["jobs"]
    return jobs[0] if jobs else None


async def wait_for(batch, job_id, statuses=TERMINAL, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        job = await describe(batch, job_id)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"{job_id} stuck in {job['status']}"
        await asyncio.sleep(0.01)


async def test_batch_shapes_parse(fake, aws):
    batch, _s3, _logs = aws
    reg = await batch.register_job_definition(
        jobDefinitionName="tool", type="container",
        containerProperties={"image": "busybox", "command": ["run", "Ref::sample"],
                             "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                      {"type": "MEMORY", "value": "4096"}]})
    assert reg["revision"] == 1
    assert (await batch.register_job_definition(jobDefinitionName="tool", type="container",
                                                containerProperties={}))["revision"] == 2
    defs = (await batch.describe_job_definitions(jobDefinitionName="tool", status="ACTIVE"))
    assert [d["revision"] for d in defs["jobDefinitions"]] == [1, 2]
    assert (await batch.describe_job_definitions(jobDefinitions=["tool:1"]))["jobDefinitions"][0][
        "containerProperties"]["image"] == "busybox"
    queues = (await batch.describe_job_queues(jobQueues=["default"]))["jobQueues"]
    assert queues[0]["state"] == "ENABLED" and queues[0]["status"] == "VALID"
    ce_arn = queues[0]["computeEnvironmentOrder"][0]["computeEnvironment"]
    ces = (await batch.describe_compute_environments(computeEnvironments=[ce_arn]))
    assert ces["computeEnvironments"][0]["computeResources"]["maxvCpus"] == 16

    parent = await submit(batch, "parent", jobDefinition="tool:1",
                          parameters={"sample": "S1", "fake_duration": "600"})
    child = await submit(
        batch, "child-1", jobDefinition=reg["jobDefinitionArn"], parameters={"sample": "S2"},
        containerOverrides={"resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                     {"type": "MEMORY", "value": "1024"}],
                            "environment": [{"name": "A", "value": "b"}]},
        timeout={"attemptDurationSeconds": 3600}, dependsOn=[{"jobId": parent}],
        tags={"project": "p"}, propagateTags=True, retryStrategy={"attempts": 2})
    await wait_for(batch, parent, ("RUNNING",))
    job = await wait_for(batch, child, ("PENDING",))
    assert job["container"]["command"] == ["run", "S2"]
    assert job["container"]["memory"] == 1024 and job["container"]["vcpus"] == 1
    assert {"type": "MEMORY", "value": "1024"} in job["container"]["resourceRequirements"]
    assert job["dependsOn"] == [{"jobId": parent}] and job["tags"] == {"project": "p"}
    assert job["timeout"] == {"attemptDurationSeconds": 3600}
    assert isinstance(job["createdAt"], int) and job["jobQueue"].endswith("job-queue/default")

    running = (await batch.list_jobs(jobQueue="default"))["jobSummaryList"]   # default RUNNING
    assert [s["jobId"] for s in running] == [parent]
    by_name = await batch.list_jobs(jobQueue="default",
                                    filters=[{"name": "JOB_NAME", "values": ["child-1"]}])
    assert [s["status"] for s in by_name["jobSummaryList"]] == ["PENDING"]
    prefix = await batch.list_jobs(jobQueue="default",
                                   filters=[{"name": "JOB_NAME", "values": ["chi*"]}])
    assert [s["jobId"] for s in prefix["jobSummaryList"]] == [child]

    await batch.cancel_job(jobId=parent, reason="no-op on RUNNING")
    assert (await describe(batch, parent))["status"] == "RUNNING"
    await batch.cancel_job(jobId=child, reason="user cancelled")
    job = await describe(batch, child)
    assert (job["status"], job["statusReason"]) == ("FAILED", "user cancelled")
    await batch.terminate_job(jobId=parent, reason="terminated by test")
    job = await describe(batch, parent)
    assert (job["status"], job["statusReason"]) == ("FAILED", "terminated by test")
    assert job["attempts"][0]["statusReason"] == "terminated by test"

    for kwargs, text in [({"jobQueue": "nope"}, "JobQueue"),
                         ({"jobDefinition": "missing"}, "Job definition"),
                         ({"jobDefinition": "tool:9"}, "Job definition")]:
        with pytest.raises(ClientError) as err:
            await submit(batch, "bad", **kwargs)
        assert err.value.response["Error"]["Code"] == "ClientException"
        assert text in err.value.response["Error"]["Message"]
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(batch.exceptions.ClientException):
        await batch.describe_jobs(jobs=[f"id-{i}" for i in range(101)])


async def test_list_jobs_pagination(fake, aws):
    batch, _s3, _logs = aws
    fake.reconfigure({"capacity": {"default": 0}})
    ids = {await submit(batch, f"p{i}") for i in range(250)}
    fake.advance(10)
    seen, token, pages = set(), None, 0
    while True:
        kw = {"nextToken": token} if token else {}
        page = await batch.list_jobs(jobQueue="default", jobStatus="RUNNABLE", maxResults=100, **kw)
        seen |= {s["jobId"] for s in page["jobSummaryList"]}
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert seen == ids and pages == 3


async def test_lifecycle_outputs_in_s3(fake, aws):
    batch, s3, _logs = aws
    job_id = await submit(batch, "ok", parameters={
        "out": "s3://results/run1/a.txt", "outputs": "s3://results/run1/b.txt,s3://results/c.txt",
        "input": "not-an-uri", "fake_duration": "600"})   # 1 s RUNNING (real): seen under load
    seen = set()
    while True:
        job = await describe(batch, job_id)
        seen.add(job["status"])
        if job["status"] in TERMINAL:
            break
        await asyncio.sleep(0.005)
    assert job["status"] == "SUCCEEDED" and job["container"]["exitCode"] == 0
    assert {"RUNNING", "SUCCEEDED"} <= seen
    assert job["stoppedAt"] - job["startedAt"] == pytest.approx(600_000, abs=2000)
    assert job["attempts"][0]["container"]["logStreamName"] == job["container"]["logStreamName"]
    for key in ("run1/a.txt", "run1/b.txt", "c.txt"):
        head = await s3.head_object(Bucket="results", Key=key)
        assert head["ContentLength"] > 0


async def test_capacity_keeps_jobs_runnable(fake, aws):
    batch, _s3, _logs = aws
    fake.reconfigure({"capacity": {"default": 2}})
    ids = [await submit(batch, f"cap{i}", parameters={"fake_duration": "600"}) for i in range(4)]
    huge = await submit(batch, "huge", containerOverrides={"resourceRequirements": [
        {"type": "MEMORY", "value": "999999"}]})
    fake.advance(30)
    states = [(await describe(batch, i))["status"] for i in ids]
    assert states == ["RUNNING", "RUNNING", "RUNNABLE", "RUNNABLE"]
    blocked = await describe(batch, huge)
    assert blocked["status"] == "RUNNABLE"
    assert blocked["statusReason"].startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
    fake.advance(600)
    states = [(await describe(batch, i))["status"] for i in ids]
    assert states == ["SUCCEEDED", "SUCCEEDED", "RUNNING", "RUNNING"]
    fake.advance(3600)
    assert (await describe(batch, huge))["status"] == "RUNNABLE"
    fake.reconfigure({"capacity": {"default": 8}})
    stats = await _get(fake, "/_fake/stats")
    assert stats["used_vcpus"]["default-ce"] == 0


async def test_failure_behaviours(fake, aws):
    batch, s3, _logs = aws
    ids = {
        "oom": await submit(batch, "oom", parameters={"fake_required_memory": "4096",
                                                      "out": "s3://b/oom.txt"}),
        "oom_ok": await submit(batch, "oom-ok", parameters={"fake_required_memory": "4096"},
                               containerOverrides={"memory": 8192}),
        "spot": await submit(batch, "spot", parameters={"fake_behaviour": "spot"}),
        "app": await submit(batch, "app", parameters={"fake_behaviour": "app_error"}),
        "none": await submit(batch, "none", parameters={"fake_behaviour": "no_outputs",
                                                        "out": "s3://b/none.txt"}),
        "image": await submit(batch, "image", parameters={"fake_behaviour": "image_error"}),
        "timeout": await submit(batch, "slow", parameters={"fake_duration": "7200"},
                                timeout={"attemptDurationSeconds": 60}),
        "spot1": await submit(batch, "s1-a1", parameters={"fake_behaviour": "spot_once",
                                                          "fake_key": "k1"}),
        "retried": await submit(batch, "retried", retryStrategy={"attempts": 2},
                                parameters={"fake_behaviour": "oom_once", "fake_key": "k2"}),
    }
    dependent = await submit(batch, "dep", dependsOn=[{"jobId": ids["app"]}])
    fake.advance(4000)
    jobs = {k: await describe(batch, v) for k, v in ids.items()}
    oom = jobs["oom"]
    assert oom["status"] == "FAILED" and oom["container"]["exitCode"] == 137
    assert oom["container"]["reason"].startswith("OutOfMemoryError: Container killed")
    assert oom["attempts"][0]["container"]["reason"] == oom["container"]["reason"]
    assert jobs["oom_ok"]["status"] == "SUCCEEDED"
    spot = jobs["spot"]
    assert spot["status"] == "FAILED" and "exitCode" not in spot["container"]
    assert spot["statusReason"].startswith("Host EC2 (instance i-") and \
        spot["statusReason"].endswith(") terminated.")
    app = jobs["app"]
    assert (app["status"], app["container"]["exitCode"]) == ("FAILED", 1)
    assert app["statusReason"] == "Essential container in task exited"
    assert jobs["none"]["status"] == "SUCCEEDED"
    image = jobs["image"]
    assert image["status"] == "FAILED" and "startedAt" not in image
    assert image["container"]["reason"].startswith("CannotPullContainerError:")
    assert jobs["timeout"]["statusReason"] == "Job attempt duration exceeded timeout"
    assert jobs["spot1"]["statusReason"].endswith("terminated.")
    retried = jobs["retried"]
    assert retried["status"] == "SUCCEEDED" and len(retried["attempts"]) == 2
    assert retried["attempts"][0]["container"]["exitCode"] == 137
    dep = await describe(batch, dependent)
    assert (dep["status"], dep["statusReason"]) == ("FAILED", "Dependent Job failed")
    for key in ("oom.txt", "none.txt"):
        with pytest.raises(ClientError) as err:
            await s3.head_object(Bucket="b", Key=key)
        assert err.value.response["Error"]["Code"] == "404"
    # spot_once: the resubmission (new name, same fake_key) succeeds
    again = await submit(batch, "s1-a2", parameters={"fake_behaviour": "spot_once",
                                                     "fake_key": "k1"})
    fake.advance(4000)
    assert (await describe(batch, again))["status"] == "SUCCEEDED"


async def test_random_rates_are_deterministic():
    async def outcomes(seed):
        async with FakeAWS({"time_scale": 600, "seed": seed, "spot_rate": 0.2, "oom_rate": 0.2,
                            "app_error_rate": 0.2}) as fake:
            session = get_session()
            async with session.create_client("batch", endpoint_url=fake.url,
                                             region_name="us-east-1", aws_access_key_id="x",
                                             aws_secret_access_key="x") as batch:
                ids = [await submit(batch, f"r{i}") for i in range(60)]
                fake.advance(4000)
                jobs = (await batch.describe_jobs(jobs=ids))["jobs"]
                return [(j["status"], j["container"].get("exitCode")) for j in jobs]
    first, second = await outcomes(7), await outcomes(7)
    assert first == second
    assert 10 < sum(s == "FAILED" for s, _ in first) < 55


async def test_throttling_and_5xx(fake, aws):
    batch, _s3, _logs = aws
    fake.reconfigure({"tps_limit": 5})
    codes = []
    for _ in range(20):
        try:
            await batch.describe_jobs(jobs=[])
            codes.append(200)
        except ClientError as e:
            codes.append(e.response["Error"]["Code"])
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert codes.count("TooManyRequestsException") >= 10 and codes.count(200) >= 5
    fake.reconfigure({"tps_limit": None, "error_5xx_rate": 1.0})
    with pytest.raises(ClientError) as err:
        await batch.describe_jobs(jobs=[])
    assert err.value.response["Error"]["Code"] == "ServerException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
    stats = await _get(fake, "/_fake/stats")
    assert stats["throttled"]["DescribeJobs"] >= 10 and stats["errors_5xx_total"] == 1


async def test_log_pagination(fake, aws):
    batch, _s3, logs = aws
    job_id = await submit(batch, "chatty", parameters={"fake_log_lines": "250",
                                                       "fake_behaviour": "app_error"})
    fake.advance(4000)
    job = await describe(batch, job_id)
    stream = job["container"]["logStreamName"]
    assert stream.startswith("fake-jobdef/default/")
    kw = dict(logGroupName="/aws/batch/job", logStreamName=stream)
    messages, token, pages = [], None, 0
    while True:
        resp = await logs.get_log_events(startFromHead=True, **kw,
                                         **({"nextToken": token} if token else {}))
        pages += 1
        messages += [e["message"] for e in resp["events"]]
        if resp["nextForwardToken"] == token:
            break
        token = resp["nextForwardToken"]
    assert len(messages) == 253 and pages == 4         # 100 + 100 + 53, then the same token
    assert "exiting with code 1" in messages[-1]
    tail = await logs.get_log_events(limit=5, **kw)                # default: the end
    assert [e["message"] for e in tail["events"]] == messages[-5:]
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        await logs.get_log_events(logGroupName="/aws/batch/job", logStreamName="nope")
    await logs.create_log_group(logGroupName="mine")
    await logs.create_log_stream(logGroupName="mine", logStreamName="s")
    await logs.put_log_events(logGroupName="mine", logStreamName="s",
                              logEvents=[{"timestamp": 1, "message": "hello"}])
    got = await logs.get_log_events(logGroupName="mine", logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["hello"]


async def test_s3_objects_and_list_pagination(fake, aws):
    _batch, s3, _logs = aws
    await s3.create_bucket(Bucket="data")
    await s3.put_object(Bucket="data", Key="odd key+%.txt", Body=b"hi")
    assert (await (await s3.get_object(Bucket="data", Key="odd key+%.txt"))["Body"].read()) == b"hi"
    for i in range(2500):
        fake.s3.put("data", f"runs/{i:05d}.out", b"x")
    paginator = s3.get_paginator("list_objects_v2")
    keys, pages = [], 0
    async for page in paginator.paginate(Bucket="data", Prefix="runs/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
        pages += 1
    assert pages == 3 and len(keys) == 2500 and keys == sorted(keys)
    top = await s3.list_objects_v2(Bucket="data", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["runs/"]
    assert [o["Key"] for o in top["Contents"]] == ["odd key+%.txt"]
    small = await s3.list_objects_v2(Bucket="data", Prefix="runs/", MaxKeys=2)
    assert small["IsTruncated"] and small["KeyCount"] == 2
    nxt = await s3.list_objects_v2(Bucket="data", Prefix="runs/", MaxKeys=2,
                                   ContinuationToken=small["NextContinuationToken"])
    assert [o["Key"] for o in nxt["Contents"]] == ["runs/00002.out", "runs/00003.out"]
    with pytest.raises(s3.exceptions.NoSuchKey):
        await s3.get_object(Bucket="data", Key="missing")


async def test_retention_and_forget(fake, aws):
    batch, _s3, _logs = aws
    fake.reconfigure({"retention_seconds": 3600})
    a = await submit(batch, "keep-a", parameters={"fake_duration": "60"})
    b = await submit(batch, "keep-b", parameters={"fake_duration": "60"})
    fake.advance(600)
    assert len((await batch.describe_jobs(jobs=[a, b]))["jobs"]) == 2
    forgot = await _post(fake, "/_fake/forget", {"job_ids": [a]})
    assert forgot == {"forgotten": 1}
    assert [j["jobId"] for j in (await batch.describe_jobs(jobs=[a, b]))["jobs"]] == [b]
    fake.advance(3600)
    assert (await batch.describe_jobs(jobs=[a, b]))["jobs"] == []
    listed = await batch.list_jobs(jobQueue="default", jobStatus="SUCCEEDED")
    assert listed["jobSummaryList"] == []
    view = await _get(fake, "/_fake/jobs?name=keep-b&include_forgotten=1")
    assert view["jobs"][0]["_fake"]["forgotten"] is True


@pytest.mark.parametrize("mode", ["close", "500"])
async def test_dropped_submit_response(fake, aws, mode):
    batch, _s3, _logs = aws
    await _post(fake, "/_fake/config", {"drop_submit_response_count": 1,
                                        "drop_submit_mode": mode})
    with pytest.raises((ConnectionClosedError, ClientError)):
        await submit(batch, "lost-1")
    found = await batch.list_jobs(jobQueue="default",
                                  filters=[{"name": "JOB_NAME", "values": ["lost-1"]}])
    assert len(found["jobSummaryList"]) == 1                 # the job exists nevertheless
    await submit(batch, "next-1")                             # only one response dropped
    stats = await _get(fake, "/_fake/stats")
    assert stats["dropped_submits"] == 1 and stats["duplicate_job_names"] == {}
    assert stats["calls"]["SubmitJob"] == 2 and stats["jobs_created"] == 2


async def test_control_api_reset_and_jobs(fake, aws):
    batch, _s3, _logs = aws
    job_id = await submit(batch, "ctl", parameters={"fake_behaviour": "oom"})
    fake.advance(4000)
    view = await _get(fake, "/_fake/jobs?name=ctl")
    assert view["jobs"][0]["jobId"] == job_id and view["jobs"][0]["_fake"]["behaviour"] == "oom"
    stats = await _get(fake, "/_fake/stats")
    assert stats["jobs_by_state"] == {"FAILED": 1} and stats["outcomes"] == {"oom": 1}
    await _post(fake, "/_fake/reset", {})
    assert (await batch.describe_jobs(jobs=[job_id]))["jobs"] == []
    assert (await _get(fake, "/_fake/stats"))["jobs_created"] == 0


async def test_throughput_smoke(fake, aws):
    """Far below the benchmark's needs would show here first (not a benchmark)."""
    batch, _s3, _logs = aws
    fake.reconfigure({"capacity": {"default": 0}})
    started = time.monotonic()
    ids: list[str] = []
    sem = asyncio.Semaphore(32)

    async def one(i):
        async with sem:
            ids.append(await submit(batch, f"t{i}"))
    await asyncio.gather(*(one(i) for i in range(600)))
    submit_rate = 600 / (time.monotonic() - started)
    started = time.monotonic()
    for _ in range(30):
        assert len((await batch.describe_jobs(jobs=ids[:100]))["jobs"]) == 100
    describe_rate = 30 / (time.monotonic() - started)
    print(f"submit {submit_rate:.0f}/s, describe(100) {describe_rate:.0f}/s")
    assert submit_rate > 100 and describe_rate > 15, (submit_rate, describe_rate)


def test_standalone_prints_url_first():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakeaws", "--port", "0",
                             "--time-scale", "60", "--queue", "q1:8", "--tps", "50"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKEAWS_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]

        async def check():
            async with aiohttp.ClientSession() as http:
                async with http.get(url + "/_fake/config") as resp:
                    return await resp.json()
        config = asyncio.run(check())
        assert config["tps_limit"] == 50 and config["queues"][0]["name"] == "q1"
    finally:
        proc.terminate()
        proc.wait(5)


async def test_random_throttle_rate(fake, aws):
    batch, _s3, _logs = aws
    fake.reconfigure({"throttle_rate": 0.5, "seed": 4})
    codes = []
    for _ in range(40):
        try:
            await batch.describe_jobs(jobs=[])
            codes.append(200)
        except ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            codes.append(e.response["Error"]["Code"])
    throttled = codes.count("TooManyRequestsException")
    assert 5 < throttled < 35 and throttled + codes.count(200) == 40    # random, not a bucket
    stats = await _get(fake, "/_fake/stats")
    assert stats["throttled"] == {"DescribeJobs": throttled}
    fake.reconfigure({"throttle_rate": 0.0})
    for _ in range(10):
        await batch.describe_jobs(jobs=[])


async def test_s3_503_rate_slows_down_heads_and_lists_only(fake, aws):
    _batch, s3, _logs = aws
    await s3.put_object(Bucket="data", Key="k", Body=b"x")
    fake.reconfigure({"s3_503_rate": 1.0})
    with pytest.raises(ClientError) as err:
        await s3.head_object(Bucket="data", Key="k")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    with pytest.raises(ClientError) as err:
        await s3.list_objects_v2(Bucket="data")
    assert err.value.response["Error"]["Code"] == "SlowDown"
    # Writes, GETs and bucket HEADs are not slowed down (jobs still write their outputs).
    await s3.put_object(Bucket="data", Key="k2", Body=b"y")
    assert await (await s3.get_object(Bucket="data", Key="k2"))["Body"].read() == b"y"
    await s3.head_bucket(Bucket="data")
    stats = await _get(fake, "/_fake/stats")
    assert stats["s3_503"] == {"HeadObject": 1, "ListObjectsV2": 1}
    assert stats["s3_503_total"] == 2
    fake.reconfigure({"s3_503_rate": 0.0})
    assert (await s3.head_object(Bucket="data", Key="k"))["ContentLength"] == 1


async def test_logs_throttle_rate_throttles_get_log_events(fake, aws):
    _batch, _s3, logs = aws
    await logs.create_log_group(logGroupName="g")
    await logs.create_log_stream(logGroupName="g", logStreamName="s")
    fake.reconfigure({"logs_throttle_rate": 1.0})
    with pytest.raises(ClientError) as err:
        await logs.get_log_events(logGroupName="g", logStreamName="s")
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    await logs.put_log_events(logGroupName="g", logStreamName="s",
                              logEvents=[{"timestamp": 1, "message": "hi"}])
    stats = await _get(fake, "/_fake/stats")
    assert stats["logs_throttled"] == {"GetLogEvents": 1}
    fake.reconfigure({"logs_throttle_rate": 0.0})
    got = await logs.get_log_events(logGroupName="g", logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["hi"]


async def test_list_lag_hides_new_jobs_and_counts_them(fake, aws):
    batch, _s3, _logs = aws
    fake.reconfigure({"list_lag": 30.0})
    await submit(batch, "late-1")
    found = await batch.list_jobs(jobQueue="default",
                                  filters=[{"name": "JOB_NAME", "values": ["late-1"]}])
    assert found["jobSummaryList"] == []
    assert (await _get(fake, "/_fake/stats"))["unlisted"] == 1


async def _get(fake, path):
    async with aiohttp.ClientSession() as http:
        async with http.get(fake.url + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def _post(fake, path, body):
    async with aiohttp.ClientSession() as http:
        async with http.post(fake.url + path, data=json.dumps(body)) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()
