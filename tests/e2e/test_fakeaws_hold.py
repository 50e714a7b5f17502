"""The fake AWS's SubmitJob knobs by name (`hold_submit_names`: a slow answer;
`throttle_submit_names`: always 429) and its SubmitJob arrival times, which the crash-point
test uses to cancel jobs whose SubmitJob is in flight or refused."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from tests.fakeaws import FakeAWS

pytestmark = pytest.mark.e2e


@pytest.fixture
async def fake():
    server = FakeAWS({"time_scale": 600, "hold_submit_names": "held-*",
                      "hold_submit_seconds": 20})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def batch(fake):
    kw = dict(endpoint_url=fake.url, region_name="us-east-1", aws_access_key_id="x",
              aws_secret_access_key="x", config=AioConfig(retries={"total_max_attempts": 1}))
    async with get_session().create_client("batch", **kw) as client:
        yield client


async def submit(batch, name):
    return (await batch.submit_job(jobName=name, jobQueue="default",
                                   jobDefinition="fake-jobdef"))["jobId"]


async def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_held_submit_exists_before_its_answer(fake, batch):
    before = time.time()
    held = asyncio.ensure_future(submit(batch, "held-1"))
    await until(lambda: fake.stats.held_submits == 1)
    # AWS has created the job; only the answer is late (the caller cannot know the id yet).
    assert len(fake.sim.jobs_named("held-1")) == 1
    assert not held.done()
    free = await submit(batch, "free-1")             # other names are answered at once
    assert free and not held.done()
    assert fake.release() == 1
    job_id = await held
    assert job_id == fake.sim.jobs_named("held-1")[0].id
    assert fake.stats.held_submits == 0
    stamps = fake.stats.snapshot(include_names=True)["last_submit_at"]
    assert set(stamps) == {"held-1", "free-1"}
    assert before <= stamps["held-1"] <= stamps["free-1"] <= time.time()


async def test_held_submit_is_answered_after_the_hold_limit(fake, batch):
    fake.reconfigure({"hold_submit_seconds": 0.2})
    job_id = await submit(batch, "held-2")
    assert job_id == fake.sim.jobs_named("held-2")[0].id
    assert fake.stats.held_submits == 0


async def test_throttled_names_are_refused_and_recorded(fake, batch):
    fake.reconfigure({"throttle_submit_names": "slow-*"})
    with pytest.raises(ClientError) as refused:
        await submit(batch, "slow-1")
    assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert not fake.sim.jobs_named("slow-1")
    assert await submit(batch, "quick-1")
    assert set(fake.stats.snapshot(include_names=True)["last_submit_at"]) == {"slow-1",
                                                                              "quick-1"}
