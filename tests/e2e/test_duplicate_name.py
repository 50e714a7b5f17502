"""A job found by name with another id than the one recorded is a second job of that name,
made outside batchd: batchd keeps the one it recorded and reports the other."""

from __future__ import annotations

import boto3
import pytest

from tests.e2e.fake_fixtures import wait_until
from tests.e2e.test_aws_fake import daemon_on, definition, events, fake_factory, samples_csv  # noqa: F401
from tests.fakeaws.config import REGION

pytestmark = pytest.mark.e2e


def test_a_same_name_job_made_outside_batchd_is_reported_not_adopted(fake_factory,  # noqa: F811
                                                                    daemon_on):  # noqa: F811
    fake = fake_factory()
    ctl = daemon_on(fake.url)
    csv = samples_csv(1, behaviour=lambda i: "hang_once")
    target = ctl.setup("dup", csv, definition("wf", steps=1, fake_behaviour="{behaviour}"))
    job = wait_until(lambda: [j for j in ctl.jobs(target) if j["state"] == "RUNNING"], 30,
                     "the job to be RUNNING")[0]
    recorded = job["job_id"]
    name = ctl.attempts(target, sample="s000")[0]["job_name"]
    batch = boto3.client("batch", endpoint_url=fake.url, region_name=REGION,
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    other = batch.submit_job(jobName=name, jobQueue="default",
                             jobDefinition="fake-jobdef")["jobId"]
    assert fake.forget([recorded]) == 1      # DescribeJobs stops returning the recorded one

    found = wait_until(lambda: events(ctl, "duplicate_job_found"), 30, "the duplicate report")
    assert (found[0]["job_id"], found[0]["duplicate_job_id"]) == (recorded, other)
    lost = wait_until(lambda: events(ctl, "job_lost"), 30, "the recorded job declared lost")
    assert lost[0]["job_id"] == recorded
    first = ctl.attempts(target, sample="s000")[0]
    # Never adopted: the attempt keeps the id batchd recorded, and says what was found.
    assert first["backend_job_id"] == recorded
    assert other in (first.get("status_reason") or first.get("reason") or "")
