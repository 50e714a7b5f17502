"""Error classification (real botocore exceptions) and SubmitJob's "outcome unknown" over a
real socket: a tiny HTTP server that counts requests and misbehaves on purpose."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from batchd.backends.aws.backend import AwsBackend
from batchd.backends.aws.errors import classify_client_error
from batchd.backends.aws.ratelimit import RateBudget
from batchd.backends.aws.shapes import job_status_from_detail
from batchd.backends.base import SubmitRequest
from batchd.errors import (
    PermanentBackendError,
    SubmitOutcomeUnknown,
    Throttled,
    TransientBackendError,
)


def client_error(status: int, code: str, message: str = "", op: str = "DescribeJobs"):
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "r-1"}}, op)


@pytest.mark.parametrize("status,code", [(429, "TooManyRequestsException"),
                                         (400, "ThrottlingException"), (429, ""),
                                         (503, "SlowDown")])
def test_throttling(status, code):
    err = classify_client_error(client_error(status, code))
    assert type(err) is Throttled and err.kind == "throttled" and err.retryable


def test_client_exception_is_permanent_in_plain_words():
    err = classify_client_error(client_error(
        400, "ClientException", "Job definition famli:14 does not exist", "SubmitJob"),
        job_name="p-w-s1-0-a1")
    assert type(err) is PermanentBackendError and not err.retryable
    assert err.message == ("AWS Batch rejected job p-w-s1-0-a1: "
                           "Job definition famli:14 does not exist")
    assert err.aws_code == "ClientException"
    err = classify_client_error(client_error(400, "ClientException", "bad queue", "ListJobs"))
    assert err.message == "AWS Batch rejected the ListJobs request: bad queue"


def test_server_errors():
    err = classify_client_error(client_error(500, "ServerException", "boom"))
    assert type(err) is TransientBackendError and err.retryable
    err = classify_client_error(client_error(500, "ServerException", "boom", "SubmitJob"))
    assert type(err) is SubmitOutcomeUnknown


def test_connection_errors():
    read = ReadTimeoutError(endpoint_url="https://batch")
    closed = ConnectionClosedError(endpoint_url="https://batch")
    refused = EndpointConnectionError(endpoint_url="https://batch")
    connect = ConnectTimeoutError(endpoint_url="https://batch")
    for exc in (read, closed, refused, connect):
        assert type(classify_client_error(exc, operation="DescribeJobs")) is TransientBackendError
    assert type(classify_client_error(read, operation="SubmitJob")) is SubmitOutcomeUnknown
    assert type(classify_client_error(closed, operation="SubmitJob")) is SubmitOutcomeUnknown
    # never sent: safe to retry
    assert type(classify_client_error(connect, operation="SubmitJob")) is TransientBackendError


def test_credentials_are_transient_not_fatal():
    err = classify_client_error(NoCredentialsError())
    assert type(err) is TransientBackendError and err.details["auth"] is True
    err = classify_client_error(client_error(403, "ExpiredTokenException", "expired",
                                             "SubmitJob"))
    assert type(err) is TransientBackendError and "credentials" in err.message


def test_job_status_mapping_prefers_container_then_last_attempt():
    detail = {"jobId": "j", "jobName": "n", "status": "FAILED",
              "statusReason": "Essential container in task exited",
              "attempts": [{"container": {"exitCode": 1, "reason": "first"}},
                           {"container": {"exitCode": 137, "logStreamName": "d/default/2",
                                          "reason": "OutOfMemoryError: Container killed "
                                                    "due to memory usage"}}],
              "container": {"resourceRequirements": [{"type": "VCPU", "value": "0.5"},
                                                     {"type": "MEMORY", "value": "2048"}]},
              "createdAt": 1, "startedAt": 2, "stoppedAt": 3}
    s = job_status_from_detail(detail)
    assert (s.exit_code, s.log_stream, s.vcpus, s.memory) == (137, "d/default/2", 0.5, 2048)
    assert s.container_reason.startswith("OutOfMemoryError")
    s = job_status_from_detail({"jobId": "j", "jobName": "n", "status": "RUNNING",
                                "container": {"vcpus": 4, "memory": 1000, "exitCode": 0}})
    assert (s.vcpus, s.memory, s.exit_code) == (4.0, 1000, 0)


def test_submit_params():
    params = AwsBackend.submit_params(SubmitRequest(
        job_name="n", queue="q", job_definition="d:3", parameters={"a": "1"}, vcpus=2.0,
        memory=4096, command=["x"], environment={"E": "v"}, timeout=600, tags={"t": "1"}))
    assert params == {
        "jobName": "n", "jobQueue": "q", "jobDefinition": "d:3", "propagateTags": True,
        "parameters": {"a": "1"},
        "containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                        {"type": "MEMORY", "value": "4096"}],
                               "command": ["x"], "environment": [{"name": "E", "value": "v"}]},
        "timeout": {"attemptDurationSeconds": 600}, "tags": {"t": "1"}}
    bare = AwsBackend.submit_params(SubmitRequest(job_name="n", queue="q", job_definition="d"))
    assert bare == {"jobName": "n", "jobQueue": "q", "jobDefinition": "d",
                    "propagateTags": True}


@pytest.fixture
async def stubbed(fake_env):
    """A started backend whose two Batch clients answer from stubs (nothing is sent)."""
    from aiobotocore.stub import AioStubber
    backend = AwsBackend(budget=RateBudget(100.0), region="us-east-1")
    await backend.start()
    try:
        clients = backend.clients
        with AioStubber(clients.batch) as fast, AioStubber(clients.batch_checked) as checked:
            yield backend, fast, checked
    finally:
        await backend.close()


@pytest.mark.parametrize("request_", [
    SubmitRequest(job_name="n", queue="q", job_definition="d:3",
                  parameters={"a": 1, "b": None}, vcpus=0.25, memory=4096.0,
                  command=["x", 2], environment={"E": 3}, timeout=600.5, tags={"t": 1}),
    SubmitRequest(job_name="n", queue="q", job_definition="d"),
])
async def test_submit_params_are_valid_for_botocore_model(request_, stubbed):
    """The Batch client skips botocore's parameter validation for SubmitJob (CPU at scale):
    what submit_params builds, from any typed input, must pass it on the validating client."""
    backend, _, checked = stubbed
    params = AwsBackend.submit_params(request_)
    checked.add_response("submit_job", {"jobId": "j-1", "jobName": "n", "jobArn": "a"},
                         expected_params=params)
    assert (await backend.clients.batch_checked.submit_job(**params))["jobId"] == "j-1"
    checked.assert_no_pending_responses()


async def test_only_the_per_job_client_skips_validation(stubbed):
    # The check above can fail: the validating client names a bad field before any answer,
    # where the per-job client (the one SubmitJob goes through) lets it pass.
    from botocore.exceptions import ParamValidationError
    backend, fast, checked = stubbed
    params = AwsBackend.submit_params(SubmitRequest(job_name="n", queue="q", job_definition="d"))
    params["timeout"] = {"attemptDurationSeconds": "600"}
    answer = {"jobId": "j-1", "jobName": "n", "jobArn": "a"}
    checked.add_response("submit_job", answer)
    with pytest.raises(ParamValidationError, match="timeout.attemptDurationSeconds"):
        await backend.clients.batch_checked.submit_job(**params)
    fast.add_response("submit_job", answer)
    assert (await backend.clients.batch.submit_job(**params))["jobId"] == "j-1"


# --------------------------------------------------------------------------- socket level
class MisbehavingServer:
    """Reads HTTP requests, counts them, and answers each by doing `mode`."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[str] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next((int(h.split(":", 1)[1]) for h in lines
                               if h.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                self.requests.append(lines[0])
                if self.mode == "close":
                    writer.transport.abort()                      # reset, no answer
                    return
                if self.mode == "fin":
                    return                                        # orderly close, no answer
                if self.mode == "hang":
                    await asyncio.sleep(5)
                    return
                if self.mode in ("garbage", "no-job-id"):         # 200, but no job named
                    body = b"<html>proxy</html>" if self.mode == "garbage" else b"{}"
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    await writer.drain()
                    continue
                status, code = {"500": (500, "ServerException"),
                                "429": (429, "TooManyRequestsException"),
                                "400": (400, "ClientException"),
                                "403": (403, "ExpiredTokenException")}[self.mode]
                body = json.dumps({"__type": code, "message": f"said {status}"}).encode()
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                             f"x-amzn-ErrorType: {code}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
def fake_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return monkeypatch


async def submit_against(mode: str, fake_env
                         ) -> tuple[Exception, MisbehavingServer, RateBudget]:
    server = MisbehavingServer(mode)
    async with server as url:
        fake_env.setenv("AWS_ENDPOINT_URL_BATCH", url)
        budget = RateBudget(100.0)
        backend = AwsBackend(budget=budget, region="us-east-1", read_timeout=0.5,
                             connect_timeout=1.0)
        await backend.start()
        try:
            with pytest.raises(Exception) as info:
                await backend.submit(SubmitRequest(job_name="p-w-s1-0-a1", queue="q",
                                                   job_definition="d"))
        finally:
            await backend.close()
    return info.value, server, budget


@pytest.mark.parametrize("mode", ["close", "fin", "hang", "500", "garbage", "no-job-id"])
async def test_submit_outcome_unknown_single_request(mode, fake_env):
    error, server, budget = await submit_against(mode, fake_env)
    assert type(error) is SubmitOutcomeUnknown, repr(error)
    assert "look it up by name" in error.message
    assert len(server.requests) == 1                  # botocore did not retry
    assert server.requests[0].startswith("POST /v1/submitjob")
    assert budget.server_errors == (1 if mode == "500" else 0)


async def test_submit_throttled_feeds_the_budget(fake_env):
    error, server, budget = await submit_against("429", fake_env)
    assert type(error) is Throttled
    assert len(server.requests) == 1
    assert budget.throttles == 1 and budget.rate == 50.0


async def test_submit_rejected(fake_env):
    error, server, budget = await submit_against("400", fake_env)
    assert type(error) is PermanentBackendError
    assert error.message == "AWS Batch rejected job p-w-s1-0-a1: said 400"
    assert error.details["aws_code"] == "ClientException"
    assert len(server.requests) == 1


async def test_submit_connection_refused_is_plain_transient(fake_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed again: nothing listens there
    fake_env.setenv("AWS_ENDPOINT_URL_BATCH", f"http://127.0.0.1:{port}")
    backend = AwsBackend(budget=RateBudget(100.0), region="us-east-1", connect_timeout=1.0)
    await backend.start()
    try:
        with pytest.raises(TransientBackendError) as info:
            await backend.submit(SubmitRequest(job_name="n", queue="q", job_definition="d"))
        assert type(info.value) is TransientBackendError   # provably not sent: not "unknown"
    finally:
        await backend.close()


async def test_other_batch_calls_are_validated_before_sending(fake_env):
    """Only SubmitJob/DescribeJobs skip botocore's validation: a bad job definition (user
    JSON) is refused with the field named, and nothing reaches AWS."""
    server = MisbehavingServer("400")
    async with server as url:
        fake_env.setenv("AWS_ENDPOINT_URL_BATCH", url)
        backend = AwsBackend(budget=RateBudget(100.0), region="us-east-1")
        await backend.start()
        try:
            with pytest.raises(PermanentBackendError) as info:
                await backend.register_job_definition(
                    {"jobDefinitionName": "x", "type": "container",
                     "containerProperties": {"image": "i", "vcpus": "two"}})
        finally:
            await backend.close()
    assert "containerProperties.vcpus" in info.value.message
    assert server.requests == []


class _UnknownBotoError(Exception):
    pass


@pytest.mark.parametrize("exc", [RuntimeError("event loop hiccup"), _UnknownBotoError("?"),
                                 KeyError("jobId"), ValueError("bad chunk")])
def test_unrecognised_submit_error_is_an_unknown_outcome(exc):
    # Anything not proven to have created nothing must be looked up by name, never resent.
    err = classify_client_error(exc, operation="SubmitJob", job_name="p-w-s1-0-a1")
    assert type(err) is SubmitOutcomeUnknown
    assert "look it up by name" in err.message


def test_unrecognised_error_elsewhere_stays_transient():
    err = classify_client_error(RuntimeError("x"), operation="DescribeJobs")
    assert type(err) is TransientBackendError
