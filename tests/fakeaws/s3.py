"""S3 (REST-XML), path-style `/bucket/key` (and `bucket.localhost` virtual hosts).

PutObject, GetObject, HeadObject, DeleteObject, CopyObject (x-amz-copy-source), CreateBucket,
HeadBucket, ListObjectsV2 (prefix, delimiter, start-after, continuation-token, max-keys <= 1000,
encoding-type=url). Keys are kept in a sorted list per bucket (new keys merged in at the next
listing), so a page is O(log n + page).
"""

from __future__ import annotations

import base64
import bisect
import email.utils
import hashlib
import time
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

if TYPE_CHECKING:
    from .clock import SimClock
    from .faults import Stats

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


class Obj:
    __slots__ = ("body", "etag", "mtime", "content_type")

    def __init__(self, body: bytes, mtime: float, content_type: str) -> None:
        self.body, self.mtime, self.content_type = body, mtime, content_type
        self.etag = '"' + hashlib.md5(body).hexdigest() + '"'


class Bucket:
    def __init__(self, created: float) -> None:
        self.created = created
        self.objects: dict[str, Obj] = {}
        self._sorted: list[str] = []       # sorted keys as of the last listing
        self._new: list[str] = []          # keys added since (merged on the next listing)

    def sorted_keys(self) -> list[str]:
        if self._new:                      # timsort merges the two runs in O(n + k log k)
            self._sorted = sorted(self._sorted + sorted(self._new))
            self._new = []
        return self._sorted


class S3Store:
    def __init__(self, clock: SimClock, stats: Stats, auto_create: bool = True) -> None:
        self.clock, self.stats, self.auto_create = clock, stats, auto_create
        self.buckets: dict[str, Bucket] = {}

    def reset(self) -> None:
        self.buckets.clear()

    # -- direct access (simulator, tests) ---------------------------------------------------
    def put(self, bucket: str, key: str, body: bytes, mtime: float | None = None,
            content_type: str = "binary/octet-stream") -> Obj:
        b = self.buckets.get(bucket)
        if b is None:
            b = self.buckets[bucket] = Bucket(self.clock.now())
        if key not in b.objects:
            b._new.append(key)
        obj = b.objects[key] = Obj(body, self.clock.now() if mtime is None else mtime, content_type)
        return obj

    def put_uri(self, uri: str, body: bytes, mtime: float | None = None) -> None:
        bucket, _, key = uri[5:].partition("/")
        if bucket and key:
            self.put(bucket, key, body, mtime)

    def get(self, bucket: str, key: str) -> Obj | None:
        b = self.buckets.get(bucket)
        return None if b is None else b.objects.get(key)

    def exists_uri(self, uri: str) -> bool:
        bucket, _, key = uri[5:].partition("/")
        return self.get(bucket, key) is not None

    def delete(self, bucket: str, key: str) -> None:
        b = self.buckets.get(bucket)
        if b is not None and b.objects.pop(key, None) is not None:
            keys = b.sorted_keys()
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                del keys[i]

    # -- HTTP ----------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        host = request.host.split(":", 1)[0]
        if host.endswith(".localhost"):
            bucket, key = host[: -len(".localhost")], unquote(raw[1:])
        else:
            bucket, _, key = raw[1:].partition("/")
            bucket, key = unquote(bucket), unquote(key)
        method, q = request.method, request.query
        if not bucket:
            return _error(400, "InvalidRequest", "ListBuckets is not supported by the fake")
        if not key:
            if method == "PUT":
                self._count("CreateBucket")
                self.buckets.setdefault(bucket, Bucket(self.clock.now()))
                return web.Response(status=200, headers={"Location": f"/{bucket}"})
            if method == "HEAD":
                self._count("HeadBucket")
                return web.Response(status=200 if bucket in self.buckets else 404)
            if method == "GET" and q.get("list-type") == "2":
                self._count("ListObjectsV2")
                return self._list_v2(bucket, q)
            return _error(400, "InvalidRequest", f"fake S3: {method} on a bucket not supported")
        if method == "PUT":
            source = request.headers.get("x-amz-copy-source")
            if source:
                self._count("CopyObject")
                src_bucket, _, src_key = unquote(source.split("?")[0]).lstrip("/").partition("/")
                obj = self.get(src_bucket, src_key)
                if obj is None:
                    return _error(404, "NoSuchKey", "The specified key does not exist.", src_key)
                new = self.put(bucket, key, obj.body, content_type=obj.content_type)
                return _xml(f'<CopyObjectResult><LastModified>{_iso(new.mtime)}</LastModified>'
                            f'<ETag>{escape(new.etag)}</ETag></CopyObjectResult>')
            self._count("PutObject")
            if bucket not in self.buckets and not self.auto_create:
                return _error(404, "NoSuchBucket", "The specified bucket does not exist.")
            body = await request.read()
            if ("aws-chunked" in request.headers.get("Content-Encoding", "")
                    or request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")):
                body = _dechunk(body)
            obj = self.put(bucket, key, body,
                           content_type=request.headers.get("Content-Type", "binary/octet-stream"))
            return web.Response(status=200, headers={"ETag": obj.etag})
        if method in ("GET", "HEAD"):
            self._count("GetObject" if method == "GET" else "HeadObject")
            obj = self.get(bucket, key)
            if obj is None:
                if method == "HEAD":
                    return web.Response(status=404)
                if bucket not in self.buckets:
                    return _error(404, "NoSuchBucket", "The specified bucket does not exist.")
                return _error(404, "NoSuchKey", "The specified key does not exist.", key)
            headers = {"ETag": obj.etag, "Last-Modified": _http_date(obj.mtime),
                       "Content-Type": obj.content_type, "Accept-Ranges": "bytes"}
            if method == "HEAD":
                headers["Content-Length"] = str(len(obj.body))
                return web.Response(status=200, headers=headers)
            return web.Response(status=200, body=obj.body, headers=headers)
        if method == "DELETE":
            self._count("DeleteObject")
            self.delete(bucket, key)
            return web.Response(status=204)
        return _error(405, "MethodNotAllowed", f"fake S3: {method} not supported")

    def _count(self, op: str) -> None:
        self.stats.calls["S3." + op] += 1

    def _list_v2(self, bucket_name: str, q) -> web.Response:
        b = self.buckets.get(bucket_name)
        if b is None:
            return _error(404, "NoSuchBucket", "The specified bucket does not exist.")
        prefix, delim = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = min(1000, int(q.get("max-keys", "1000")))
        token, start_after = q.get("continuation-token"), q.get("start-after", "")
        url = q.get("encoding-type") == "url"
        enc = (lambda s: escape(quote(s, safe="/~"))) if url else escape
        after = start_after
        if token:
            try:
                after = max(after, base64.urlsafe_b64decode(token.encode()).decode())
            except Exception:
                return _error(400, "InvalidArgument",
                              "The continuation token provided is incorrect")
        keys = b.sorted_keys()
        i = bisect.bisect_right(keys, after) if after else 0
        i = max(i, bisect.bisect_left(keys, prefix))
        if delim and after.endswith(delim) and after.startswith(prefix):
            while i < len(keys) and keys[i].startswith(after):
                i += 1
        contents, prefixes, count, last = [], [], 0, ""
        n = len(keys)
        while i < n and count < max_keys:
            key = keys[i]
            if not key.startswith(prefix):
                break
            d = key.find(delim, len(prefix)) if delim else -1
            if d >= 0:
                cp = key[: d + len(delim)]
                prefixes.append(f"<CommonPrefixes><Prefix>{enc(cp)}</Prefix></CommonPrefixes>")
                while i < n and keys[i].startswith(cp):
                    i += 1
                last = cp
            else:
                obj = b.objects[key]
                contents.append(
                    f"<Contents><Key>{enc(key)}</Key><LastModified>{_iso(obj.mtime)}</LastModified>"
                    f"<ETag>{escape(obj.etag)}</ETag><Size>{len(obj.body)}</Size>"
                    f"<StorageClass>STANDARD</StorageClass></Contents>")
                i += 1
                last = key
            count += 1
        truncated = i < n and keys[i].startswith(prefix) and count >= max_keys
        parts = [f'<ListBucketResult xmlns="{XMLNS}"><Name>{escape(bucket_name)}</Name>',
                 f"<Prefix>{enc(prefix)}</Prefix>", f"<MaxKeys>{max_keys}</MaxKeys>",
                 f"<KeyCount>{count}</KeyCount>",
                 f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delim:
            parts.append(f"<Delimiter>{enc(delim)}</Delimiter>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        if token:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if start_after:
            parts.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
        if truncated:
            nxt = base64.urlsafe_b64encode(last.encode()).decode()
            parts.append(f"<NextContinuationToken>{nxt}</NextContinuationToken>")
        parts.extend(contents)
        parts.extend(prefixes)
        parts.append("</ListBucketResult>")
        return _xml("".join(parts))


def s3_read_op(request: web.Request) -> str | None:
    """"HeadObject" / "ListObjectsV2" for the reads `s3_503_rate` applies to, else None."""
    if request.method == "HEAD":
        host = request.host.split(":", 1)[0]
        path = request.raw_path.split("?", 1)[0]
        has_key = (len(path) > 1 if host.endswith(".localhost")
                   else bool(path[1:].partition("/")[2]))
        return "HeadObject" if has_key else None
    if request.method == "GET" and request.query.get("list-type") == "2":
        return "ListObjectsV2"
    return None


def s3_slow_down(method: str) -> web.Response:
    """S3's answer when it sheds load: 503 SlowDown (a HEAD answer has no body)."""
    if method == "HEAD":
        return web.Response(status=503)
    return _error(503, "SlowDown", "Please reduce your request rate.")


def _dechunk(body: bytes) -> bytes:
    """Decode `aws-chunked` bodies: `<hex>[;chunk-signature=..]\\r\\n<data>\\r\\n ... 0\\r\\n`."""
    out, pos = bytearray(), 0
    while pos < len(body):
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            break
        out += body[eol + 2: eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _xml(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, body=(XML_HEAD + body).encode(),
                        content_type="application/xml")


def _error(status: int, code: str, message: str, key: str | None = None) -> web.Response:
    extra = f"<Key>{escape(key)}</Key>" if key is not None else ""
    return _xml(f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}"
                f"<RequestId>FAKE0000000000000</RequestId></Error>", status)
