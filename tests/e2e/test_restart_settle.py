"""ListJobs lags SubmitJob. A SubmitJob whose answer was lost just before a crash must not be
looked up the moment the daemon is back: the name is not listed yet, the lookup says "absent"
and the job would be created a second time. After a restart the same settle delay applies as
without one (the fake AWS's `list_lag` hides new jobs from ListJobs for that long)."""

from __future__ import annotations

import signal

import pytest

from tests.e2e.fake_fixtures import wait_until
from tests.e2e.test_aws_fake import daemon_on, definition, events, fake_factory, samples_csv  # noqa: F401

pytestmark = pytest.mark.e2e


def test_a_lost_submit_answer_then_a_crash_creates_no_duplicate(fake_factory,  # noqa: F811
                                                               daemon_on):  # noqa: F811
    fake = fake_factory(list_lag=4.0, drop_submit_response_count=1, drop_submit_mode="close")
    ctl = daemon_on(fake.url, rate_limit=50)
    target = ctl.setup("lag", samples_csv(1), definition("wf", steps=1))
    wait_until(lambda: events(ctl, "submit_outcome_unknown"), 20, "the lost SubmitJob answer")
    ctl.daemon.stop(signal.SIGKILL)
    ctl.daemon.start()
    status = ctl.wait_for(target, timeout=60)
    assert status["counts"] == {"COMPLETED": 1}
    stats = fake.stats(names=True)
    assert stats["duplicate_job_names"] == {}
    assert set(stats["submits_by_name"].values()) == {1}, stats["submits_by_name"]
    assert stats["jobs_created"] == 1


def test_a_send_made_long_after_its_group_was_marked_still_settles_after_a_crash(
        fake_factory, daemon_on):  # noqa: F811
    """The submitter marks attempts 'may exist' in groups of MARK_AHEAD before sending them,
    and the send of a group's later members waits for the rate budget: at 2 SubmitJob/s the
    twelfth is sent ~6 s after its mark. The settle time stored with the mark had passed by
    then, so after a crash (here followed by a restart with a higher rate limit, so the
    lookups are not paced like the sends were) the jobs sent in the last seconds were looked
    up at once, not yet listed, and created a second time."""
    fake = fake_factory(list_lag=4.0, duration_mean=600)
    ctl = daemon_on(fake.url, rate_limit=2)
    target = ctl.setup("late", samples_csv(20), definition("wf", steps=1))
    wait_until(lambda: len(events(ctl, "job_submitted")) >= 12, 60, "twelve sends")
    ctl.daemon.stop(signal.SIGKILL)
    ctl.daemon.args = [*ctl.daemon.args, "--rate-limit", "200"]
    ctl.daemon.start()
    status = ctl.wait_for(target, timeout=120)
    assert status["counts"] == {"COMPLETED": 20}
    stats = fake.stats(names=True)
    assert stats["duplicate_job_names"] == {}
    assert set(stats["submits_by_name"].values()) == {1}, stats["submits_by_name"]
