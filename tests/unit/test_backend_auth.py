"""backend_auth.py: refused credentials are one condition per operation, with a capped
exponential back-off, logged once per transition; both Batch clients (the one without
parameter validation for the per-job calls, the validating one for the rest) record a 403 the
same way."""

from __future__ import annotations

import pytest

from batchd.backends.auth import _HELD, AUTH_BACKOFF_CAP, AuthWatch, backoff_delay
from batchd.backends.aws.backend import AwsBackend
from batchd.backends.aws.ratelimit import RateBudget
from batchd.backends.base import SubmitRequest
from batchd.errors import TransientBackendError
from tests.unit.test_aws_errors import MisbehavingServer, fake_env  # noqa: F401 - fixture


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def warning(self, event: str, **kw) -> None:
        self.events.append((event, kw))

    info = warning


def test_backoff_doubles_from_the_base_up_to_the_cap():
    assert [backoff_delay(n, 30.0) for n in range(0, 7)] == [0.0, 30, 60, 120, 240, 300, 300]
    assert backoff_delay(10_000, 0.5) == AUTH_BACKOFF_CAP      # no overflow, capped
    assert backoff_delay(3, 600.0) == 600.0    # a poll interval above the cap: the interval


def test_probes_double_the_wait_calls_in_flight_do_not():
    clock, log = Clock(), Log()
    watch = AuthWatch(base=10.0, log=log, clock=clock)
    assert watch.wait("SubmitJob") == 0.0 and not watch.failing()
    watch.failed("SubmitJob", "ExpiredTokenException", "expired")
    assert watch.wait("SubmitJob") == 10.0
    clock.now += 1
    for _ in range(15):            # the rest of the first wave, sent before the first answer
        watch.failed("SubmitJob", "ExpiredTokenException", "expired")
    assert watch.wait("SubmitJob") == 9.0 and watch.refusals["SubmitJob"].rounds == 1
    waits = []
    for _ in range(6):             # each probe, sent once the wait is over, refused again
        clock.now += watch.wait("SubmitJob")
        watch.failed("SubmitJob", "ExpiredTokenException", "expired")
        waits.append(watch.wait("SubmitJob"))
    assert waits == [20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    assert watch.refusals["SubmitJob"].count == 22
    assert watch.wait("DescribeJobs") == 0.0 and not watch.failing("DescribeJobs")
    assert [e for e, _ in log.events] == ["backend_auth_failed"]
    assert log.events[0][1]["operation"] == "SubmitJob"
    assert log.events[0][1]["aws_code"] == "ExpiredTokenException"


def test_the_first_success_ends_it_and_is_logged_once():
    clock, log = Clock(), Log()
    watch = AuthWatch(base=1.0, log=log, clock=clock)
    watch.failed("DescribeJobs", "AccessDeniedException", "denied")
    watch.failed("SubmitJob", "AccessDeniedException", "denied")
    clock.now += 5
    watch.succeeded("DescribeJobs")
    watch.succeeded("DescribeJobs")
    assert watch.failing() and not watch.failing("DescribeJobs")
    assert watch.wait("DescribeJobs") == 0.0
    events = [(e, kw["operation"]) for e, kw in log.events]
    assert events == [("backend_auth_failed", "DescribeJobs"),
                      ("backend_auth_failed", "SubmitJob"),
                      ("backend_auth_restored", "DescribeJobs")]
    assert log.events[2][1]["seconds"] == 5.0
    snap = watch.snapshot()
    assert snap["failing"] and list(snap["operations"]) == ["SubmitJob"]
    assert snap["failures_total"] == {"DescribeJobs": 1, "SubmitJob": 1}
    # Refused again after a success: a new condition, from the base wait again.
    watch.failed("DescribeJobs", "AccessDeniedException", "denied")
    assert watch.wait("DescribeJobs") == 1.0


def test_jobs_held_up_say_so_by_state():
    watch = AuthWatch(base=1.0, clock=Clock())
    assert watch.waiting_reason("QUEUED") is None
    watch.failed("SubmitJob", "ExpiredTokenException", "expired")
    for state in ("QUEUED", "SUBMITTING"):
        reason = watch.waiting_reason(state)
        assert reason.startswith("waiting: AWS refuses the credentials "
                                 "(ExpiredTokenException, SubmitJob); not sent yet")
    for op, (states, _) in _HELD.items():      # batchctl's table shows 77 characters
        alone = AuthWatch(clock=Clock())
        alone.failed(op, "AccessDeniedException", "denied")
        assert f"(AccessDeniedException, {op})" in alone.waiting_reason(states[-1])[:77]
    assert watch.waiting_reason("RUNNING") is None
    watch.failed("DescribeJobs", "ExpiredTokenException", "expired")
    assert "(ExpiredTokenException, DescribeJobs)" in watch.waiting_reason("RUNNING")
    assert watch.waiting_reason("COMPLETED") is None


@pytest.mark.parametrize("operation", ["SubmitJob", "ListJobs"])
async def test_a_403_is_recorded_the_same_by_both_batch_clients(operation, fake_env):  # noqa: F811
    server = MisbehavingServer("403")
    async with server as url:
        fake_env.setenv("AWS_ENDPOINT_URL_BATCH", url)
        backend = AwsBackend(budget=RateBudget(100.0), region="us-east-1")
        await backend.start()
        try:
            with pytest.raises(TransientBackendError) as info:
                if operation == "SubmitJob":      # `batch`, parameter validation off
                    await backend.submit(SubmitRequest(job_name="p-w-s1-0-a1", queue="q",
                                                       job_definition="d"))
                else:                             # `batch_checked`
                    await backend.find_by_name("p-w-s1-0-a1", "q")
        finally:
            await backend.close()
    assert len(server.requests) == 1
    error = info.value
    assert error.details["auth"] is True and error.aws_code == "ExpiredTokenException"
    assert "refused our credentials" in error.message
    refusal = backend.auth.refusals[operation]
    assert (refusal.aws_code, refusal.count) == ("ExpiredTokenException", 1)
    assert backend.auth.failures_total == {operation: 1}


def test_batchctl_shows_it_for_a_person():
    from batchctl import render
    from batchctl.commands import daemon as daemonctl

    watch = AuthWatch(base=1.0, clock=Clock())
    assert render.auth_problem(None) is None and render.auth_problem(watch.snapshot()) is None
    assert not any("CREDENTIALS" in line for line in daemonctl.summary(
        {"backend_auth": watch.snapshot(), "db_writable": True}))
    watch.failed("DescribeJobs", "ExpiredTokenException", "the token expired")
    lines = daemonctl.summary({"backend_auth": watch.snapshot(), "db_writable": True})
    problem = [line for line in lines if "CREDENTIALS" in line]
    assert problem and "DescribeJobs (ExpiredTokenException, 1 refused since" in problem[0]
    assert "  DescribeJobs: the token expired" in lines
    job = {"state": "RUNNING", "reason": "retrying with 4,096 MiB", "failure_class": "oom",
           "waiting_reason": watch.waiting_reason("RUNNING")}
    shown = render.job_reason(job)
    assert shown.startswith("waiting: AWS refuses the credentials (ExpiredTokenException, "
                            "DescribeJobs)") and len(shown) <= render.REASON_WIDTH
    assert render.job_reason({**job, "waiting_reason": None}) == "oom: retrying with 4,096 MiB"


def test_a_refusal_nothing_retries_is_dropped_after_a_quiet_while():
    clock, log = Clock(), Log()
    watch = AuthWatch(base=30.0, log=log, clock=clock)
    watch.failed("RegisterJobDefinition", "AccessDeniedException", "not authorized")
    clock.now += 2 * AUTH_BACKOFF_CAP
    assert watch.failing("RegisterJobDefinition")
    clock.now += 1
    assert not watch.failing() and watch.snapshot()["operations"] == {}
    assert [e for e, _ in log.events] == ["backend_auth_failed", "backend_auth_expired"]
    # A loop's probes (at most one wait apart) keep theirs, however long it lasts.
    watch = AuthWatch(base=30.0, clock=clock)
    watch.failed("DescribeJobs", "ExpiredTokenException", "expired")
    for _ in range(50):
        clock.now += watch.wait("DescribeJobs")
        watch.failed("DescribeJobs", "ExpiredTokenException", "expired")
    assert watch.failing("DescribeJobs") and watch.refusals["DescribeJobs"].rounds == 51
    long = AuthWatch(base=3600.0, clock=clock)     # a poll interval beyond the cap
    long.failed("DescribeJobs", "ExpiredTokenException", "expired")
    clock.now += 3600.0
    assert long.wait("DescribeJobs") == 0.0 and long.failing("DescribeJobs")
