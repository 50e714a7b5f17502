"""AwsBackend and S3OutputStore against moto's server, over real HTTP with aiobotocore.

moto is an independent implementation of the AWS APIs: these tests prove our requests have the
right shapes and our pagination/termination logic works; they cannot model throttling or the
job lifecycle (moto's simple Batch mode finishes every job at SubmitJob).
Every client here finds moto through AWS_ENDPOINT_URL only (no endpoint_url argument).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import boto3
import pytest

from batchd.backends.aws.backend import AwsBackend
from batchd.backends.aws.ratelimit import Priority, RateBudget
from batchd.backends.aws.s3outputs import S3OutputStore
from batchd.backends.base import SubmitRequest
from batchd.errors import PermanentBackendError
from tests.e2e.moto_process import moto_server_url

pytestmark = pytest.mark.e2e

REGION = "us-east-1"
QUEUE = "batchd-q"
JOBDEF = "famli"
BUCKET = "batchd-outputs"


@pytest.fixture(scope="module")
def moto_url():
    with moto_server_url() as url:
        _create_infrastructure(url)
        yield url


def _create_infrastructure(url: str) -> None:
    kw = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    iam, ec2, batch = (boto3.client(s, **kw) for s in ("iam", "ec2", "batch"))
    role = iam.create_role(RoleName="batch-service",
                           AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(
        InstanceProfileName="batch-instance")["InstanceProfile"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="batch", Description="batch",
                                   VpcId=vpc)["GroupId"]
    ce = batch.create_compute_environment(
        computeEnvironmentName="batchd-ce", type="MANAGED", state="ENABLED", serviceRole=role,
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 256, "desiredvCpus": 0,
                          "instanceTypes": ["optimal"], "subnets": [subnet],
                          "securityGroupIds": [sg], "instanceRole": profile})
    batch.create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment":
                                                     ce["computeEnvironmentArn"]}])


def raw_batch(url: str):
    return boto3.client("batch", endpoint_url=url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def aws_env(monkeypatch, moto_url, tmp_path):
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_BATCH",
                 "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)     # the only way moto is found
    return monkeypatch


@pytest.fixture
async def backend(aws_env):
    b = AwsBackend(budget=RateBudget(500.0))
    await b.start()
    yield b
    await b.close()


def request(name: str, **kw) -> SubmitRequest:
    base = dict(job_name=name, queue=QUEUE, job_definition=JOBDEF)
    base.update(kw)
    return SubmitRequest(**base)


async def test_endpoint_from_env_only(backend, moto_url):
    assert backend.clients.batch.meta.endpoint_url == moto_url
    assert backend.clients.s3.meta.endpoint_url == moto_url
    assert backend.clients.logs.meta.endpoint_url == moto_url
    assert backend.clients.s3.meta.config.s3["addressing_style"] == "path"   # override: path
    assert backend.clients.batch.meta.config.retries["total_max_attempts"] == 1
    assert backend.region == REGION
    await backend.list_job_definitions()                         # really reaches moto


async def test_service_specific_endpoint_env_wins(aws_env, moto_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    aws_env.setenv("AWS_ENDPOINT_URL", dead)
    aws_env.setenv("AWS_ENDPOINT_URL_BATCH", moto_url)
    b = AwsBackend(budget=RateBudget(100.0), region="us-east-1")
    await b.start()
    try:
        assert b.clients.batch.meta.endpoint_url == moto_url
        assert b.clients.s3.meta.endpoint_url == dead
        assert isinstance(await b.list_job_definitions(), list)
    finally:
        await b.close()


async def test_job_definitions(backend):
    spec = {"jobDefinitionName": JOBDEF, "type": "container",
            "parameters": {"sample": "none"},
            "containerProperties": {"image": "busybox", "command": ["echo", "Ref::sample"],
                                    "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                             {"type": "MEMORY",
                                                              "value": "512"}]}}
    first = await backend.register_job_definition(spec)
    second = await backend.register_job_definition(spec)
    assert first["jobDefinitionName"] == JOBDEF
    assert second["revision"] == first["revision"] + 1
    assert second["jobDefinitionArn"].endswith(f"{JOBDEF}:{second['revision']}")
    listed = [jd for jd in await backend.list_job_definitions()
              if jd["jobDefinitionName"] == JOBDEF]
    assert {jd["revision"] for jd in listed} >= {first["revision"], second["revision"]}
    assert all(jd["status"] == "ACTIVE" for jd in listed)
    assert listed[-1]["containerProperties"]["image"] == "busybox"
    assert listed[-1]["parameters"] == {"sample": "none"}


@pytest.fixture
async def jobdef(backend):
    await backend.register_job_definition({
        "jobDefinitionName": JOBDEF, "type": "container",
        "containerProperties": {"image": "busybox", "command": ["true"],
                                "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                         {"type": "MEMORY", "value": "512"}]}})
    return JOBDEF


async def test_submit_all_fields(backend, jobdef, moto_url):
    sent: list[dict] = []
    backend.clients.batch.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(dict(params)))
    name = f"p-w-s1-0-a1-{uuid.uuid4().hex[:8]}"
    tags = {"batchd:project": "p", "batchd:workflow": "w", "batchd:sample": "s1",
            "batchd:step": "0", "batchd:attempt": "1"}
    job_id = await backend.submit(request(
        name, parameters={"sample": "s1", "ref": "hg38"}, vcpus=2, memory=4096,
        command=["run.sh", "s1"], environment={"SAMPLE": "s1", "THREADS": "2"}, timeout=3600,
        tags=tags))
    assert sent[0]["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]
    assert sent[0]["propagateTags"] is True
    detail = raw_batch(moto_url).describe_jobs(jobs=[job_id])["jobs"][0]   # as AWS stored it
    assert detail["jobName"] == name
    assert detail["parameters"] == {"sample": "s1", "ref": "hg38"}
    assert detail["timeout"] == {"attemptDurationSeconds": 3600}
    assert detail["tags"] == tags
    assert detail["container"]["command"] == ["run.sh", "s1"]
    env = {e["name"]: e["value"] for e in detail["container"]["environment"]}
    assert env["SAMPLE"] == "s1" and env["THREADS"] == "2"

    [status] = await backend.describe([job_id])
    assert status.job_id == job_id and status.job_name == name
    assert status.status == "SUCCEEDED" and status.terminal     # moto's simple mode
    assert status.log_stream and status.log_stream.startswith(f"{JOBDEF}/default/")
    assert status.created_at and status.started_at and status.stopped_at
    assert status.vcpus is not None and status.memory is not None


async def test_submit_rejected_in_plain_words(backend, jobdef):
    with pytest.raises(PermanentBackendError) as info:
        await backend.submit(request("bad-1", job_definition=f"{JOBDEF}:14"))
    assert str(info.value) == (
        f"AWS Batch rejected job bad-1: Job definition {JOBDEF}:14 does not exist")
    assert info.value.aws_code == "ClientException"
    assert not info.value.retryable


async def test_unvalidated_submits_are_stored_as_built(backend, jobdef, moto_url):
    """SubmitJob and DescribeJobs go through the Batch client without parameter validation:
    moto stores every field submit_params builds, unicode included, and answers alike."""
    assert backend.outputs.client is backend.clients.s3   # plain aiobotocore for output checks
    tags = {"batchd:project": "p", "batchd:sample": "s1"}
    kw = dict(parameters={"sample": "s1"}, vcpus=2, memory=4096, command=["run.sh", "é"],
              environment={"SAMPLE": "s1"}, timeout=3600, tags=tags)
    prefix = uuid.uuid4().hex[:8]
    ids = [await backend.submit(request(f"{prefix}-{i}", **kw)) for i in range(3)]
    details = raw_batch(moto_url).describe_jobs(jobs=ids)["jobs"]
    keep = ("parameters", "timeout", "tags", "jobQueue", "jobDefinition")
    stored = [({k: d.get(k) for k in keep}, d["container"]["command"],
               [e for e in d["container"]["environment"]      # moto adds the job's own id
                if not e["name"].startswith("AWS_BATCH_")]) for d in details]
    assert stored[0] == stored[1] == stored[2]
    assert stored[0][0]["parameters"] == {"sample": "s1"} and stored[0][0]["tags"] == tags
    assert stored[0][1] == ["run.sh", "é"]
    statuses = await backend.describe(ids)
    assert [s.job_id for s in statuses] == ids


async def test_describe_in_batches_of_100(backend, jobdef):
    prefix = uuid.uuid4().hex[:8]
    ids = await asyncio.gather(*(backend.submit(request(f"{prefix}-{i}")) for i in range(150)))
    assert len(set(ids)) == 150
    before = backend.calls.get("DescribeJobs", 0)
    found = []
    for i in range(0, 150, 100):
        found += await backend.describe(list(ids[i:i + 100]))
    assert backend.calls["DescribeJobs"] - before == 2
    assert {s.job_id for s in found} == set(ids)
    assert {s.job_name for s in found} == {f"{prefix}-{i}" for i in range(150)}
    assert await backend.describe(["no-such-job-id"]) == []       # unknown ids: just absent
    with pytest.raises(AssertionError):
        await backend.describe(list(ids[:101]))
    assert backend.budget.acquired[Priority.SUBMIT] >= 150
    assert backend.budget.acquired[Priority.POLL] >= 3


async def test_find_by_name(backend, jobdef):
    name = f"dup-{uuid.uuid4().hex[:8]}"
    first = await backend.submit(request(name))
    time.sleep(0.01)       # createdAt has millisecond resolution
    second = await backend.submit(request(name))
    await backend.submit(request(name + "x"))          # prefix-sharing name: not a match
    found = await backend.find_by_name(name, QUEUE)
    assert found is not None and found.job_id == second != first
    assert found.job_name == name and found.status == "SUCCEEDED"
    assert await backend.find_by_name(f"absent-{uuid.uuid4().hex}", QUEUE) is None


async def test_cancel_and_terminate(backend, jobdef):
    job_id = await backend.submit(request(f"c-{uuid.uuid4().hex[:8]}"))
    await backend.cancel(job_id, "cancelled by batchd user", terminate=False)
    await backend.cancel(job_id, "cancelled by batchd user", terminate=True)
    assert backend.calls["CancelJob"] == 1 and backend.calls["TerminateJob"] == 1


async def test_queues(backend):
    infos = await backend.queues([QUEUE, "no-such-queue"])
    assert len(infos) == 1
    [q] = infos
    assert q.name == QUEUE and q.state == "ENABLED" and q.status == "VALID"
    assert q.max_vcpus == 256.0 and q.max_memory is None
    assert backend.budget.acquired[Priority.BACKGROUND] == 2   # queues + compute envs


async def test_fetch_logs_all_pages(backend, moto_url):
    logs = backend.clients.logs
    group, stream = "/aws/batch/job", f"{JOBDEF}/default/{uuid.uuid4().hex}"
    try:
        await logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    await logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    expected = [f"line {i}" for i in range(2500)]
    for start in range(0, 2500, 1000):
        await logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": now + i, "message": expected[i]}
            for i in range(start, min(start + 1000, 2500))])
    backend.LOGS_PAGE_LIMIT = 1000            # force several pages (AWS/moto default 10,000)
    calls: list[dict] = []
    logs.meta.events.register("provide-client-params.logs.GetLogEvents",
                              lambda params, **_: calls.append(dict(params)))
    lines = [line async for line in backend.fetch_logs(stream)]
    assert lines == expected
    assert len(calls) == 4                    # 3 pages + the page that repeats the token
    assert all(c["startFromHead"] is True and c["logGroupName"] == group for c in calls)
    assert "nextToken" not in calls[0] and all("nextToken" in c for c in calls[1:])


async def test_s3_outputs_list_and_head(backend):
    s3 = backend.clients.s3
    await s3.create_bucket(Bucket=BUCKET)
    sem = asyncio.Semaphore(32)

    async def put(key: str) -> None:
        async with sem:
            await s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")

    present = [f"proj/s{i:05d}.json" for i in range(0, 1300, 1) if i % 13 != 0]   # 1,200
    others = [f"results/S{i}/S{i}.vcf" for i in range(0, 20, 2)] + ["lone/a.txt", "x/y.txt"]
    await asyncio.gather(*(put(k) for k in present + others))
    store: S3OutputStore = backend.outputs

    # dense directory: 1,300 wanted (1,200 present, 100 missing) -> LIST pages, no HEAD
    uris = [f"s3://{BUCKET}/proj/s{i:05d}.json" for i in range(1300)]
    result = await store.exists_many(uris)
    assert store.head_calls == 0 and store.list_calls == 2
    assert sum(1 for v in result.values() if v is True) == 1200
    assert [u for u, v in result.items() if v is False] == [
        f"s3://{BUCKET}/proj/s{i:05d}.json" for i in range(0, 1300, 13)]

    # one file per sample directory: listed one level up, without a delimiter
    store.head_calls = store.list_calls = 0
    vcfs = [f"s3://{BUCKET}/results/S{i}/S{i}.vcf" for i in range(20)]
    result = await store.exists_many(vcfs)
    assert store.list_calls == 1 and store.head_calls == 0
    assert result == {u: (i % 2 == 0) for i, u in enumerate(vcfs)}

    # sparse: HEAD each
    store.head_calls = store.list_calls = 0
    sparse = [f"s3://{BUCKET}/lone/a.txt", f"s3://{BUCKET}/lone/b.txt",
              f"s3://{BUCKET}/x/y.txt", "s3://no-such-bucket-batchd/a/b.txt"]
    result = await store.exists_many(sparse)
    assert store.head_calls == 4 and store.list_calls == 0
    assert list(result.values()) == [True, False, True, False]

    # one sample's outputs of two steps, grouped: one small page under their common prefix
    store.head_calls = store.list_calls = 0
    pair = [f"s3://{BUCKET}/results/S2/S2.vcf", f"s3://{BUCKET}/results/S2/S2.vcf.tbi"]
    result = await store.exists_many(pair, [pair])
    assert store.list_calls == 1 and store.head_calls == 0
    assert list(result.values()) == [True, False]

    # "directory" outputs and local paths in the same call
    result = await store.exists_many([f"s3://{BUCKET}/results/", f"s3://{BUCKET}/nothing/",
                                      __file__, "/definitely/not/here.txt"])
    assert list(result.values()) == [True, False, True, False]


async def test_s3_outputs_ten_thousand_in_a_few_lists(backend):
    """10,000 outputs of s3://bucket/proj/{sample}.json: about ten LIST calls (here: none
    exist, and the same number of pages is needed when they do - one per 1,000 keys)."""
    s3 = backend.clients.s3
    bucket = "batchd-big"
    await s3.create_bucket(Bucket=bucket)
    await s3.put_object(Bucket=bucket, Key="proj/s00042.json", Body=b"{}")
    store: S3OutputStore = backend.outputs
    uris = [f"s3://{bucket}/proj/s{i:05d}.json" for i in range(10_000)]
    result = await store.exists_many(uris)
    assert store.list_calls <= 10 and store.head_calls == 0
    assert [u for u, v in result.items() if v] == [f"s3://{bucket}/proj/s00042.json"]
    assert sum(1 for v in result.values() if v is False) == 9_999


TRICKY_KEYS = ["plain/a.json", "with space/b c.json", "unicodé/ß-ü.json", "plus+sign/a+b.txt",
               "pct%20lit/x%2Fy", "eq=and&q?/h#sh.txt", "tilde~/x~y", "star*(paren)/'q'.txt",
               "deep/a/b/c/d.txt", "dots/../x", "trailing.dot."]


async def test_s3_outputs_find_keys_needing_every_escape(backend):
    """Output checks over plain aiobotocore, HEAD and LIST alike, for keys needing every
    kind of escaping: present ones found, missing ones not."""
    s3, store = backend.clients.s3, backend.outputs
    bucket = f"tricky-{uuid.uuid4().hex[:8]}"
    await s3.create_bucket(Bucket=bucket)
    for key in TRICKY_KEYS:
        await s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    wanted = [f"s3://{bucket}/{key}" for key in TRICKY_KEYS]
    missing = [f"s3://{bucket}/{key}.missing" for key in TRICKY_KEYS]
    for uri in wanted + missing:                       # one at a time: HEAD
        store.head_calls = store.list_calls = 0
        assert await store.exists_many([uri]) == {uri: uri in wanted}, uri
        assert store.head_calls == 1
    store.head_calls = store.list_calls = 0
    result = await store.exists_many(wanted + missing)  # together: some by LIST
    assert result == {uri: uri in wanted for uri in wanted + missing}
    assert store.list_calls >= 1
