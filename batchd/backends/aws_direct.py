"""SubmitJob and DescribeJobs without botocore's per-call machinery.

Profiles of the benchmark put ~60 % of the daemon's event-loop time inside aiobotocore's
`_make_api_call`; for the two calls batchd makes once or more per job, most of that is
generic work whose answer never changes between calls: endpoint-ruleset resolution, request
serialisation against the model, a dozen event hooks, header bookkeeping and botocore's
signer. `DirectCalls` does only what is left: JSON in, SigV4 (AWS4-HMAC-SHA256), POST, JSON out.

It learns everything from botocore instead of re-deriving it: the first call of each
operation goes through aiobotocore as usual, and a `before-send` hook copies from that
request the URL (so endpoint overrides, FIPS and dual-stack endpoints are botocore's answer),
the signing scope (region, service), the Content-Type and the User-Agent. The request is then
sent through the client's own HTTP session (same connection pool, proxies, TLS settings and
timeouts), credentials come from the client's own provider (refreshed as usual), and error
answers are parsed by botocore's parser into the same `ClientError`: `aws_errors.py`
classifies both paths identically. Anything unexpected in the learnt request (another signing
algorithm, a body not JSON, a model member outside the body) leaves that operation on
aiobotocore for good and says why in the log (`aws_direct_calls_off`).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import create_parser
from botocore.utils import normalize_url_path

__all__ = ["DIRECT_OPERATIONS", "DirectCalls", "UnreadableAnswer", "sigv4_headers"]

# The calls made per job, with parameters batchd builds itself (aws.py's UNVALIDATED).
DIRECT_OPERATIONS = frozenset({"SubmitJob", "DescribeJobs"})
_ALGORITHM = "AWS4-HMAC-SHA256"


class UnreadableAnswer(BotoCoreError):
    """A 2xx answer without the JSON object every Batch answer is. The request did reach AWS:
    for SubmitJob the job may exist (aws_errors.py: a BotoCoreError after sending is an
    unknown outcome, looked up by name before any resend)."""

    fmt = "AWS answered {operation} with HTTP {status} but a body batchd cannot read: {detail}"


def _canonical_path(url: str) -> str:
    """The path as botocore's SigV4Auth signs it (dot segments and // removed, re-quoted)."""
    return quote(normalize_url_path(urlsplit(url).path), safe="/~")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _host(url: str) -> str:
    """The Host header the HTTP client sends (botocore signs the same: default port left out)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class _SigningKeys:
    """The derived signing key changes once a day per secret: derive it once, not per call."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, str], bytes] = {}

    def get(self, secret: str, day: str, region: str, service: str) -> bytes:
        key = self._keys.get((secret, day, region, service))
        if key is None:
            if len(self._keys) > 16:
                self._keys.clear()
            key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), day), region),
                              service), "aws4_request")
            self._keys[(secret, day, region, service)] = key
        return key


def authorization(method: str, path: str, query: str, headers: dict[str, str],
                  payload_hash: str, *, amz_date: str, region: str, service: str,
                  access_key: str, secret_key: str, keys: _SigningKeys | None = None) -> str:
    """SigV4's Authorization header for a request whose signed `headers` (lower-case names)
    are given, with its canonical path and query (shared with s3_direct.py)."""
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join([
        method, path, query,
        "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names),
        signed, payload_hash])
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, amz_date, scope,
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    key = (keys or _SigningKeys()).get(secret_key, day, region, service)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return (f"{_ALGORITHM} Credential={access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}")


def sigv4_headers(*, url: str, body: bytes, content_type: str, region: str, service: str,
                  access_key: str, secret_key: str, token: str | None, amz_date: str,
                  keys: _SigningKeys | None = None,
                  canonical_path: str | None = None) -> dict[str, str]:
    """The signed headers of a POST of `body` to `url` (no query string), as botocore's
    SigV4Auth would sign them (tests/unit/test_aws_direct.py compares the two)."""
    headers = {"content-type": content_type, "host": _host(url), "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    path = canonical_path if canonical_path is not None else _canonical_path(url)
    out = {"Content-Type": content_type, "X-Amz-Date": amz_date,
           "Authorization": authorization(
               "POST", path, "", headers, hashlib.sha256(body).hexdigest(), amz_date=amz_date,
               region=region, service=service, access_key=access_key, secret_key=secret_key,
               keys=keys)}
    if token:
        out["X-Amz-Security-Token"] = token
    return out


@dataclass(frozen=True)
class _Route:
    url: str
    path: str          # canonical, as signed
    region: str
    service: str
    content_type: str
    user_agent: str | None


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class DirectCalls:
    def __init__(self, client: Any, log: Any = None) -> None:
        self._client = client
        self._log = log
        self._routes: dict[str, _Route] = {}
        self._off: dict[str, str] = {}          # operation -> why it stays on aiobotocore
        self._keys = _SigningKeys()
        self._error_parser = create_parser("rest-json")
        self.calls = 0                           # sent this way (for tests and /metrics)
        self._http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        self._credentials = getattr(getattr(client, "_request_signer", None), "_credentials",
                                    None)
        model = client.meta.service_model
        for operation in DIRECT_OPERATIONS:
            why = self._unsupported(model, operation)
            if why:
                self._turn_off(operation, why)
            else:
                client.meta.events.register(
                    f"before-send.{model.service_id.hyphenize()}.{operation}", self._learn)

    @staticmethod
    def _unsupported(model: Any, operation: str) -> str | None:
        if model.protocol != "rest-json":
            return f"the service speaks {model.protocol}, not rest-json"
        op = model.operation_model(operation)
        if op.http.get("method") != "POST" or "?" in op.http.get("requestUri", ""):
            return "the operation is not a plain POST"
        for name, member in (op.input_shape.members.items() if op.input_shape else ()):
            if member.serialization.get("location"):
                return f"its member {name} is sent outside the JSON body"
        return None

    def _turn_off(self, operation: str, why: str) -> None:
        self._routes.pop(operation, None)
        if operation not in self._off:
            self._off[operation] = why
            if self._log is not None:
                self._log.info("aws_direct_calls_off", operation=operation, reason=why)

    def ready(self, operation: str) -> bool:
        return (operation in self._routes and self._http is not None
                and self._credentials is not None)

    def _learn(self, request: Any, event_name: str = "", **_: Any) -> None:
        operation = event_name.rpartition(".")[2]
        if operation not in DIRECT_OPERATIONS or operation in self._routes \
                or operation in self._off:
            return
        headers = {_text(k).lower(): _text(v) for k, v in request.headers.items()}
        auth = headers.get("authorization", "")
        try:
            credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
            _, _, region, service, terminal = credential.split("/")
        except (IndexError, ValueError):
            region = service = terminal = ""
        if not auth.startswith(_ALGORITHM + " ") or terminal != "aws4_request":
            self._turn_off(operation, "botocore signs it another way")
        elif "x-amz-content-sha256" in headers or urlsplit(request.url).query:
            self._turn_off(operation, "botocore signs more than the body")
        elif request.method != "POST" or not headers.get("content-type", "").startswith(
                "application/"):
            self._turn_off(operation, "botocore does not send it as a JSON POST")
        else:
            self._routes[operation] = _Route(
                url=request.url, path=_canonical_path(request.url), region=region,
                service=service,
                content_type=headers["content-type"], user_agent=headers.get("user-agent"))
        # Returns None: any other answer from a before-send hook would replace the HTTP call.

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One call (no retries, like the Batch client's); raises what aiobotocore raises."""
        route = self._routes[operation]
        # Like botocore's serialiser: members set to None are left out, not sent as null.
        body = json.dumps({k: v for k, v in params.items() if v is not None},
                          separators=(",", ":")).encode("utf-8")
        frozen = self._credentials.get_frozen_credentials()
        if inspect.isawaitable(frozen):      # aiobotocore's providers refresh asynchronously
            frozen = await frozen
        headers = sigv4_headers(
            url=route.url, body=body, content_type=route.content_type, region=route.region,
            service=route.service, access_key=frozen.access_key, secret_key=frozen.secret_key,
            token=frozen.token, amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            keys=self._keys, canonical_path=route.path)
        if route.user_agent:
            headers["User-Agent"] = route.user_agent
        self.calls += 1
        response = await self._http.send(
            AWSPreparedRequest("POST", route.url, headers, body, stream_output=False))
        content = await response.content
        if response.status_code < 300:
            try:
                answer = json.loads(content) if content else {}
            except ValueError as exc:
                raise UnreadableAnswer(operation=operation, status=response.status_code,
                                       detail=str(exc)) from exc
            if not isinstance(answer, dict):
                raise UnreadableAnswer(operation=operation, status=response.status_code,
                                       detail=f"JSON {type(answer).__name__}, not an object")
            return answer
        op_model = self._client.meta.service_model.operation_model(operation)
        parsed = self._error_parser.parse(
            {"status_code": response.status_code, "headers": response.headers,
             "body": content}, op_model.output_shape)
        raise ClientError(parsed, operation)
