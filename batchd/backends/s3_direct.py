"""HeadObject and ListObjectsV2 without botocore's per-call machinery (aws_direct.py's idea,
for the output checks the pipeline makes about once per output).

A CPU profile of the pipeline benchmark put ~40 % of the event loop inside aiobotocore's
`_make_api_call` for these two S3 calls alone: endpoint rules, request building, a dozen
hooks, the signer and the XML parser, redone for every call although nothing changes between
two HEADs of the same bucket but the key. `S3DirectCalls` has the S3 client's interface for
those two calls and does only what is left: build the URL, sign it (SigV4), send it through
the client's own HTTP session, read the answer.

It learns each (operation, bucket) from botocore instead of re-deriving it:
- the first call goes through aiobotocore, and a `before-send` hook keeps the request it sent
  (the last one, so after a region redirect it is the one that was answered);
- that request must be reproducible: its URL must be the bucket's base plus the key (HEAD) or
  plus the query batchd would build (LIST), it must sign nothing but host, date, payload hash
  and token, and batchd's own signature of it must equal botocore's, byte for byte. Anything
  else leaves that operation on aiobotocore for good (`aws_direct_calls_off` in the log).
Only the plain answers are read here: HEAD 200 or 404, LIST 200 with well-formed XML. Every
other answer (403, redirects, throttling, 5xx, a dropped connection) is asked again through
aiobotocore, which retries, follows redirects and raises what it always raises, so
s3outputs.py classifies both paths identically; a 301/307/400 also forgets the bucket's route.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit
from xml.etree import ElementTree

from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError

from .aws_direct import _ALGORITHM, _host, _SigningKeys, _text, authorization

__all__ = ["S3DirectCalls", "s3_sigv4_headers"]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Headers batchd can sign itself; a learnt request signing any other keeps botocore's path.
_SIGNABLE = frozenset({"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"})
# ListObjectsV2 parameters s3outputs.py uses -> their query names (botocore's serialisation).
_LIST_QUERY = {"Prefix": "prefix", "Delimiter": "delimiter", "MaxKeys": "max-keys",
               "StartAfter": "start-after", "ContinuationToken": "continuation-token"}
_REDIRECTS = frozenset({301, 302, 307, 400})
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

# What the current task is asking aiobotocore, so the before-send hook knows which route the
# request it sees belongs to (concurrent calls run in their own tasks, so they never mix).
_asking: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "batchd_s3_asking", default=None)


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query: dict[str, str]) -> str:
    """The query string batchd sends, already in SigV4's canonical form (sorted, encoded)."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))


def s3_sigv4_headers(*, method: str, url: str, payload_hash: str, region: str, service: str,
                     access_key: str, secret_key: str, token: str | None, amz_date: str,
                     keys: _SigningKeys | None = None) -> dict[str, str]:
    """The signed headers of a body-less S3 request to `url`, as botocore's S3SigV4Auth signs
    them (the path as sent, not normalised; the query re-sorted; tests/unit/test_s3_direct.py
    compares the two)."""
    parts = urlsplit(url)
    pairs = sorted(pair.partition("=")[::2] for pair in parts.query.split("&")) \
        if parts.query else []
    headers = {"host": _host(url), "x-amz-content-sha256": payload_hash,
               "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    out = {"X-Amz-Content-SHA256": payload_hash, "X-Amz-Date": amz_date,
           "Authorization": authorization(
               method, parts.path or "/", "&".join(f"{k}={v}" for k, v in pairs), headers,
               payload_hash, amz_date=amz_date, region=region, service=service,
               access_key=access_key, secret_key=secret_key, keys=keys)}
    if token:
        out["X-Amz-Security-Token"] = token
    return out


@dataclass(frozen=True)
class _S3Route:
    base: str              # HEAD: the URL before the key; LIST: the URL before the query
    region: str
    service: str
    payload_hash: str
    user_agent: str | None


def _list_query(params: dict[str, Any]) -> dict[str, str] | None:
    query = {"list-type": "2", "encoding-type": "url"}
    for name, value in params.items():
        if name == "Bucket" or value is None:
            continue
        if name not in _LIST_QUERY:
            return None
        query[_LIST_QUERY[name]] = str(value)
    return query


def parse_list_answer(body: bytes) -> dict[str, Any]:
    """A ListObjectsV2 answer -> the fields s3outputs.py reads, keys decoded as botocore
    decodes them (encoding-type=url). Raises ValueError on anything not such an answer."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if root.tag not in (f"{_NS}ListBucketResult", "ListBucketResult"):
        raise ValueError(f"unexpected root element {root.tag}")
    ns = _NS if root.tag.startswith("{") else ""
    encoded = (root.findtext(f"{ns}EncodingType") or "") == "url"

    def text(value: str | None) -> str:
        return unquote_plus(value) if encoded and value is not None else (value or "")

    answer: dict[str, Any] = {
        "IsTruncated": (root.findtext(f"{ns}IsTruncated") or "").strip() == "true",
        "Contents": [{"Key": text(item.findtext(f"{ns}Key"))}
                     for item in root.iterfind(f"{ns}Contents")],
        "CommonPrefixes": [{"Prefix": text(item.findtext(f"{ns}Prefix"))}
                           for item in root.iterfind(f"{ns}CommonPrefixes")]}
    count = root.findtext(f"{ns}KeyCount")
    if count is not None:
        answer["KeyCount"] = int(count)
    token = root.findtext(f"{ns}NextContinuationToken")
    if token:
        answer["NextContinuationToken"] = token
    return answer


class S3DirectCalls:
    """`head_object` and `list_objects_v2` with the S3 client's signature and semantics."""

    OPERATIONS = ("HeadObject", "ListObjectsV2")

    def __init__(self, client: Any, log: Any = None) -> None:
        self._client = client
        self._log = log
        self._routes: dict[tuple[str, str], _S3Route] = {}
        self._off: dict[str, str] = {}
        self._keys = _SigningKeys()
        self.calls = 0              # answered this way (tests, bench)
        self.fallbacks = 0          # answers botocore was asked for after a direct try
        self._http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        self._credentials = getattr(getattr(client, "_request_signer", None), "_credentials",
                                    None)
        for operation in self.OPERATIONS:
            client.meta.events.register(f"before-send.s3.{operation}", self._keep)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)      # anything else is the S3 client's

    # ---------------------------------------------------------------- learning
    @staticmethod
    def _keep(request: Any, **_: Any) -> None:
        asking = _asking.get()
        if asking is not None:
            asking[-1] = request        # the last one sent is the one answered
        # Returns None: any other answer from a before-send hook would replace the HTTP call.

    def _turn_off(self, operation: str, why: str) -> None:
        if operation not in self._off:
            self._off[operation] = why
            if self._log is not None:
                self._log.info("aws_direct_calls_off", operation=operation, reason=why)
        for key in [k for k in self._routes if k[0] == operation]:
            del self._routes[key]

    async def _through_botocore(self, operation: str, bucket: str, target: str | dict,
                                call: Any) -> Any:
        if operation in self._off or self._http is None or self._credentials is None \
                or (operation, bucket) in self._routes:
            return await call()
        asking: list[Any] = [None]
        token = _asking.set(asking)
        try:
            answer = await call()
        except ClientError as exc:
            if operation == "HeadObject" and _status(exc) == 404 and asking[0] is not None:
                await self._learn(operation, bucket, target, asking[0])
            raise
        finally:
            _asking.reset(token)
        if asking[0] is not None:
            await self._learn(operation, bucket, target, asking[0])
        return answer

    async def _learn(self, operation: str, bucket: str, target: str | dict,
                     request: Any) -> None:
        headers = {_text(k).lower(): _text(v) for k, v in request.headers.items()}
        auth = headers.get("authorization", "")
        try:
            credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
            _, _, region, service, terminal = credential.split("/")
            signed = auth.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
        except (IndexError, ValueError):
            return self._turn_off(operation, "botocore signs it another way")
        url = request.url
        payload = headers.get("x-amz-content-sha256", "")
        if not auth.startswith(_ALGORITHM + " ") or terminal != "aws4_request":
            return self._turn_off(operation, "botocore signs it another way")
        if not set(signed) <= _SIGNABLE or "x-amz-date" not in headers:
            return self._turn_off(operation, f"botocore signs more headers ({', '.join(signed)})")
        if payload not in (EMPTY_SHA256, "UNSIGNED-PAYLOAD") or request.body:
            return self._turn_off(operation, "botocore sends it with a body")
        if operation == "HeadObject":
            suffix = "/" + quote(str(target), safe="/~")
            if urlsplit(url).query or not url.endswith(suffix):
                return self._turn_off(operation, "its URL is not the bucket's plus the key")
            base = url[:-len(suffix)]
            rebuilt = base + suffix
        else:
            base, _, query = url.partition("?")
            ours = _list_query(dict(target))  # type: ignore[arg-type]
            if ours is None or sorted(query.split("&")) != canonical_query(ours).split("&"):
                return self._turn_off(operation, "its query is not the one batchd builds")
            rebuilt = f"{base}?{canonical_query(ours)}"
        frozen = await self._frozen()
        mine = s3_sigv4_headers(
            method=request.method, url=rebuilt, payload_hash=payload, region=region,
            service=service, access_key=frozen.access_key, secret_key=frozen.secret_key,
            token=frozen.token, amz_date=headers["x-amz-date"], keys=self._keys)
        if mine["Authorization"] != headers["authorization"]:
            # Also the rare credential refresh between botocore's call and this check: being
            # wrong the safe way costs only CPU.
            return self._turn_off(operation, "batchd's signature differs from botocore's")
        self._routes[(operation, bucket)] = _S3Route(
            base=base, region=region, service=service, payload_hash=payload,
            user_agent=headers.get("user-agent"))

    async def _frozen(self) -> Any:
        frozen = self._credentials.get_frozen_credentials()
        if inspect.isawaitable(frozen):      # aiobotocore's providers refresh asynchronously
            frozen = await frozen
        return frozen

    # ---------------------------------------------------------------- sending
    async def _send(self, method: str, url: str, route: _S3Route) -> tuple[int, bytes] | None:
        """(status, body), or None when the request did not get an answer."""
        frozen = await self._frozen()
        headers = s3_sigv4_headers(
            method=method, url=url, payload_hash=route.payload_hash, region=route.region,
            service=route.service, access_key=frozen.access_key,
            secret_key=frozen.secret_key, token=frozen.token,
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), keys=self._keys)
        if route.user_agent:
            headers["User-Agent"] = route.user_agent
        try:
            response = await self._http.send(
                AWSPreparedRequest(method, url, headers, b"", stream_output=False))
            return response.status_code, await response.content
        except Exception:  # noqa: BLE001 - botocore's path retries it and says what it was
            return None

    def _unanswered(self, operation: str, bucket: str, status: int | None) -> None:
        self.fallbacks += 1
        if status in _REDIRECTS:     # the bucket moved region (or never was where we ask)
            self._routes.pop((operation, bucket), None)

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        route = self._routes.get(("HeadObject", Bucket))
        if route is not None:
            got = await self._send("HEAD", route.base + "/" + quote(Key, safe="/~"), route)
            if got is not None and got[0] == 200:
                self.calls += 1
                return {"ResponseMetadata": {"HTTPStatusCode": 200}}
            if got is not None and got[0] == 404:
                self.calls += 1
                raise ClientError({"Error": {"Code": "404", "Message": "Not Found"},
                                   "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
            self._unanswered("HeadObject", Bucket, got and got[0])
        return await self._through_botocore(
            "HeadObject", Bucket, Key, lambda: self._client.head_object(Bucket=Bucket, Key=Key))

    async def list_objects_v2(self, **params: Any) -> dict[str, Any]:
        bucket = params["Bucket"]
        route = self._routes.get(("ListObjectsV2", bucket))
        query = _list_query(params)
        if route is not None and query is not None:
            got = await self._send("GET", f"{route.base}?{canonical_query(query)}", route)
            if got is not None and got[0] == 200:
                try:
                    answer = parse_list_answer(got[1])
                except ValueError:
                    answer = None
                if answer is not None:
                    self.calls += 1
                    return answer
            self._unanswered("ListObjectsV2", bucket, got and got[0])
        return await self._through_botocore(
            "ListObjectsV2", bucket, params,
            lambda: self._client.list_objects_v2(**params))


def _status(exc: ClientError) -> int | None:
    return (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
