"""s3_direct.py: its signature is botocore's S3 signature, it reads ListObjectsV2 answers as
botocore does, and every answer it does not understand is asked again through aiobotocore
(tests/e2e/test_aws_moto.py proves moto accepts its requests and answers the same)."""

from __future__ import annotations

import asyncio
import datetime

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from batchd.backends import s3_direct
from batchd.backends.aws import AwsBackend
from batchd.backends.s3_direct import (
    canonical_query,
    parse_list_answer,
    s3_sigv4_headers,
)
from batchd.ratelimit import RateBudget
from tests.unit.test_aws_errors import fake_env  # noqa: F401 - fixture

WHEN = datetime.datetime(2026, 11, 25, 3, 4, 5)
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("method,url", [
    ("HEAD", "https://results.s3.eu-west-1.amazonaws.com/proj/s1.json"),
    ("HEAD", "http://127.0.0.1:5000/results/with%20space/%C3%BC%2B%3D%26.txt"),
    ("HEAD", "https://s3.eu-west-1.amazonaws.com:443/results/a/../b//c.txt"),
    ("HEAD", "http://[::1]:9000/results/x~y"),
    ("GET", "https://results.s3.eu-west-1.amazonaws.com/?" + canonical_query(
        {"list-type": "2", "encoding-type": "url", "prefix": "proj/é s/", "delimiter": "/",
         "max-keys": "40", "start-after": "proj/é s/a+b=c&d",
         "continuation-token": "1/abc+def=="})),
    ("GET", "http://127.0.0.1:5000/results?list-type=2&encoding-type=url"),
])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE//session+token="])
@pytest.mark.parametrize("payload", [s3_direct.EMPTY_SHA256, "UNSIGNED-PAYLOAD"])
def test_signature_is_botocores(method, url, token, payload, monkeypatch):
    ours = s3_sigv4_headers(method=method, url=url, payload_hash=payload, region="eu-west-1",
                            service="s3", access_key="AKIDEXAMPLE", secret_key=SECRET,
                            token=token, amz_date=WHEN.strftime("%Y%m%dT%H%M%SZ"))
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: WHEN)
    request = AWSRequest(method=method, url=url, headers={"X-Amz-Content-SHA256": payload})
    signer = S3SigV4Auth(Credentials("AKIDEXAMPLE", SECRET, token), "s3", "eu-west-1")
    signer.payload = lambda request: payload          # what botocore chose for this client
    signer.add_auth(request)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


LISTING = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
           b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
           b"<Name>results</Name><Prefix>proj%2F</Prefix><KeyCount>3</KeyCount>"
           b"<MaxKeys>3</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
           b"<Contents><Key>proj%2Fa+b.json</Key><Size>2</Size></Contents>"
           b"<Contents><Key>proj%2F%C3%A9%2B.json</Key><Size>2</Size></Contents>"
           b"<CommonPrefixes><Prefix>proj%2Fsub%2F</Prefix></CommonPrefixes>"
           b"<NextContinuationToken>tok+en==</NextContinuationToken></ListBucketResult>")


def test_list_answer_is_read_like_botocore():
    assert parse_list_answer(LISTING) == {
        "IsTruncated": True, "KeyCount": 3, "NextContinuationToken": "tok+en==",
        "Contents": [{"Key": "proj/a b.json"}, {"Key": "proj/é+.json"}],
        "CommonPrefixes": [{"Prefix": "proj/sub/"}]}
    plain = LISTING.replace(b"<EncodingType>url</EncodingType>", b"")
    assert parse_list_answer(plain)["Contents"][0] == {"Key": "proj%2Fa+b.json"}
    for bad in (b"", b"<html>oops", b"<Error><Code>SlowDown</Code></Error>"):
        with pytest.raises(ValueError):
            parse_list_answer(bad)


class ScriptedS3:
    """A bucket at 127.0.0.1 answering each request with the next status of a script (200 and
    404 are the usual answers) and keeping the request lines it got."""

    def __init__(self, *statuses: int) -> None:
        self.script = list(statuses)
        self.got: list[str] = []

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
                self.got.append(head[0])
                status = self.script.pop(0) if self.script else 200
                if status == -1:                      # drop the connection unanswered
                    return
                body = LISTING if head[0].startswith("GET") and status == 200 else b""
                if status == 301:
                    body = (b"<Error><Code>PermanentRedirect</Code><Message>elsewhere"
                            b"</Message></Error>")
                reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error",
                          301: "Moved Permanently"}.get(status, "X")
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
                             f"Content-Type: application/xml\r\n\r\n".encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _backend(fake_env, url: str) -> AwsBackend:  # noqa: F811
    fake_env.setenv("AWS_ENDPOINT_URL_S3", url)
    backend = AwsBackend(budget=RateBudget(100.0), region="eu-west-1")
    await backend.start()
    return backend


async def _head(client, key: str):
    try:
        await client.head_object(Bucket="results", Key=key)
        return True
    except ClientError as exc:
        return exc.response["Error"]["Code"]


async def test_plain_answers_are_read_here_others_asked_again_through_botocore(fake_env):  # noqa: F811
    # learn (200), direct 200, direct 404, direct 500 -> botocore retries (500, 200)
    server = ScriptedS3(200, 200, 404, 500, 500, 200)
    async with server as url:
        backend = await _backend(fake_env, url)
        try:
            direct = backend.outputs.client
            assert [await _head(direct, k) for k in ("a", "b c", "d", "e")] == \
                [True, True, "404", True]
            assert (direct.calls, direct.fallbacks) == (2, 1)
        finally:
            await backend.close()
    assert server.got == ["HEAD /results/a HTTP/1.1", "HEAD /results/b%20c HTTP/1.1",
                          "HEAD /results/d HTTP/1.1"] + ["HEAD /results/e HTTP/1.1"] * 3


async def test_a_dropped_connection_goes_through_botocore(fake_env):  # noqa: F811
    # learn; then the direct HEAD's connection is dropped twice (the HTTP client itself
    # retries a dropped keep-alive connection once): botocore is asked, and answers.
    server = ScriptedS3(200, -1, -1, 200)
    async with server as url:
        backend = await _backend(fake_env, url)
        try:
            direct = backend.outputs.client
            assert await _head(direct, "a") is True
            assert await _head(direct, "b") is True
            assert (direct.calls, direct.fallbacks) == (0, 1)
            assert ("HeadObject", "results") in direct._routes
        finally:
            await backend.close()


async def test_a_redirect_forgets_the_route_until_botocore_teaches_it_again(fake_env):  # noqa: F811
    server = ScriptedS3(200, 301, 200, 200)
    async with server as url:
        backend = await _backend(fake_env, url)
        try:
            direct = backend.outputs.client
            assert await _head(direct, "a") is True                 # learnt
            assert await _head(direct, "b") is True                 # 301, then botocore
            assert (direct.calls, direct.fallbacks) == (0, 1)
            assert await _head(direct, "c") is True                 # relearnt: direct
            assert direct.calls == 1
        finally:
            await backend.close()
    assert server.got == [f"HEAD /results/{k} HTTP/1.1" for k in "abbc"]


async def test_lists_are_read_here(fake_env):  # noqa: F811
    server = ScriptedS3()
    async with server as url:
        backend = await _backend(fake_env, url)
        try:
            direct = backend.outputs.client
            first = await direct.list_objects_v2(Bucket="results", Prefix="proj/", MaxKeys=3)
            second = await direct.list_objects_v2(Bucket="results", Prefix="proj/", MaxKeys=3,
                                                  ContinuationToken="tok+en==")
            assert direct.calls == 1
            keys = [[c["Key"] for c in page["Contents"]] for page in (first, second)]
            assert keys == [["proj/a b.json", "proj/é+.json"]] * 2
            assert second["NextContinuationToken"] == "tok+en=="
        finally:
            await backend.close()
    assert server.got[1] == ("GET /results?continuation-token=tok%2Ben%3D%3D&encoding-type=url"
                             "&list-type=2&max-keys=3&prefix=proj%2F HTTP/1.1")


async def test_a_signature_it_cannot_reproduce_keeps_botocores_path(fake_env, monkeypatch):  # noqa: F811
    monkeypatch.setattr(s3_direct, "s3_sigv4_headers",
                        lambda **kw: {"Authorization": "AWS4-HMAC-SHA256 something else"})
    server = ScriptedS3()
    async with server as url:
        backend = await _backend(fake_env, url)
        try:
            direct = backend.outputs.client
            for key in ("a", "b", "c"):
                assert await _head(direct, key) is True
            assert direct.calls == 0 and not direct._routes
            assert "signature differs" in direct._off["HeadObject"]
        finally:
            await backend.close()


async def test_switched_off_with_the_direct_calls_setting(fake_env):  # noqa: F811
    server = ScriptedS3()
    async with server as url:
        fake_env.setenv("AWS_ENDPOINT_URL_S3", url)
        backend = AwsBackend(budget=RateBudget(100.0), region="eu-west-1", direct_calls=False)
        await backend.start()
        try:
            assert backend.outputs.client is backend.s3
        finally:
            await backend.close()
