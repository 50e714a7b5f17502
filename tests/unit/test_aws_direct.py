"""aws_direct.py: its signature is botocore's, it learns its route from botocore's own first
call, and it sends exactly what botocore would (tests/unit/test_aws_errors.py proves failures
are classified the same on both paths)."""

from __future__ import annotations

import asyncio
import datetime
import json

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from batchd.backends.aws import AwsBackend
from batchd.backends.aws_direct import DirectCalls, sigv4_headers
from batchd.backends.base import SubmitRequest
from batchd.ratelimit import RateBudget
from tests.unit.test_aws_errors import fake_env  # noqa: F401 - fixture

WHEN = datetime.datetime(2026, 11, 25, 3, 4, 5)


@pytest.mark.parametrize("url", ["https://batch.eu-west-1.amazonaws.com/v1/submitjob",
                                 "http://127.0.0.1:5000/v1/describejobs",
                                 "https://batch.eu-west-1.amazonaws.com:443/v1/submitjob",
                                 "http://[::1]:8080/v1/submitjob",
                                 # endpoint URLs with a path: botocore normalises it to sign
                                 "https://gw.example.org/prefix//v1/submitjob",
                                 "https://gw.example.org/a%20b/api:v1/./x/../v1/submitjob"])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE//session+token="])
def test_signature_is_botocores(url, token, monkeypatch):
    body = json.dumps({"jobName": "p-w-s1-0-a1", "jobQueue": "q", "tags": {"é": "1"}},
                      ensure_ascii=False).encode()
    ours = sigv4_headers(url=url, body=body, content_type="application/json",
                         region="eu-west-1", service="batch", access_key="AKIDEXAMPLE",
                         secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token=token,
                         amz_date=WHEN.strftime("%Y%m%dT%H%M%SZ"))
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN)
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
              "batch", "eu-west-1").add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


class RecordingServer:
    """Answers every POST with a SubmitJob or DescribeJobs answer and keeps what it got."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader, writer) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in head[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.got.append((head[0], headers, body))
                if "describejobs" in head[0]:
                    answer = {"jobs": [{"jobId": j, "jobName": "n", "status": "RUNNING",
                                        "startedAt": 1764039845000}
                                       for j in json.loads(body)["jobs"]]}
                else:
                    answer = {"jobId": f"j-{len(self.got)}", "jobName": "n", "jobArn": "a"}
                data = json.dumps(answer).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _signed(headers: dict[str, str]) -> list[str]:
    return headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


async def test_first_call_teaches_the_route_and_later_ones_match_it(fake_env):  # noqa: F811
    fake_env.setenv("AWS_SESSION_TOKEN", "tok")
    server = RecordingServer()
    async with server as url:
        fake_env.setenv("AWS_ENDPOINT_URL_BATCH", url)
        backend = AwsBackend(budget=RateBudget(100.0), region="eu-west-1")
        await backend.start()
        try:
            request = SubmitRequest(job_name="p-w-s1-0-a1", queue="q", job_definition="d",
                                    vcpus=2, memory=4096, command=["run", "ü"],
                                    environment={"E": "v"}, timeout=600, tags={"t": "1"})
            assert not backend.direct.ready("SubmitJob")
            first = await backend.submit(request)
            assert backend.direct.ready("SubmitJob") and backend.direct.calls == 0
            second = await backend.submit(request)
            assert backend.direct.calls == 1 and (first, second) == ("j-1", "j-2")
            statuses = [await backend.describe(["a", "b"]) for _ in range(2)]
            assert backend.direct.calls == 2
        finally:
            await backend.close()
    (line1, botocore_headers, botocore_body), (line2, our_headers, our_body) = server.got[:2]
    assert line1 == line2 == "POST /v1/submitjob HTTP/1.1"
    assert json.loads(our_body) == json.loads(botocore_body)      # same request, same JSON
    for name in ("content-type", "user-agent", "host", "x-amz-security-token"):
        assert our_headers[name] == botocore_headers[name], name
    assert set(_signed(our_headers)) <= set(_signed(botocore_headers))
    scope = botocore_headers["authorization"].split("Credential=")[1].split(",")[0]
    assert our_headers["authorization"].split("Credential=")[1].split(",")[0] == scope
    assert statuses[0] == statuses[1]         # parsed the same as botocore's answer
    assert [s.status for s in statuses[1]] == ["RUNNING", "RUNNING"]
    assert statuses[1][0].started_at == 1764039845000


async def test_switched_off_by_the_setting(fake_env):  # noqa: F811
    server = RecordingServer()
    async with server as url:
        fake_env.setenv("AWS_ENDPOINT_URL_BATCH", url)
        backend = AwsBackend(budget=RateBudget(100.0), region="eu-west-1", direct_calls=False)
        await backend.start()
        try:
            for _ in range(3):
                await backend.submit(SubmitRequest(job_name="n", queue="q", job_definition="d"))
            assert backend.direct is None
        finally:
            await backend.close()
    assert len(server.got) == 3


class _Request:
    def __init__(self, auth: str, url: str = "https://x/v1/submitjob",
                 content_type: str = "application/json", method: str = "POST") -> None:
        self.url, self.method = url, method
        self.headers = {"Authorization": auth, "Content-Type": content_type}


GOOD = ("AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/batch/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=abc")


@pytest.mark.parametrize("request_, why", [
    (_Request("AWS4-ECDSA-P256-SHA256 Credential=AKID/20261125/batch/aws4_request, "
              "SignedHeaders=host, Signature=abc"), "botocore signs it another way"),
    (_Request(GOOD, url="https://x/v1/submitjob?x=1"), "botocore signs more than the body"),
    (_Request(GOOD, content_type="application/x-www-form-urlencoded", method="GET"),
     "botocore does not send it as a JSON POST"),
])
async def test_anything_unexpected_leaves_the_operation_on_aiobotocore(request_, why,
                                                                       fake_env):  # noqa: F811
    events = []

    class Log:
        def info(self, event, **kw):
            events.append((event, kw))

    backend = AwsBackend(budget=RateBudget(100.0), region="us-east-1", log=None)
    await backend.start()
    try:
        direct = DirectCalls(backend.batch, log=Log())
        direct._learn(request_, event_name="before-send.batch.SubmitJob")
        assert not direct.ready("SubmitJob")
        assert events == [("aws_direct_calls_off", {"operation": "SubmitJob", "reason": why})]
        direct._learn(_Request(GOOD), event_name="before-send.batch.SubmitJob")
        assert not direct.ready("SubmitJob")          # off for good, not relearnt
        direct._learn(_Request(GOOD), event_name="before-send.batch.DescribeJobs")
        assert direct.ready("DescribeJobs")
    finally:
        await backend.close()
