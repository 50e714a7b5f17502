"""Request limits: one user's oversized request must not cost the other users anything.

Every name in a path or query string is checked by length before a handler runs, and every
body against the byte limit of its route before it is read (Content-Length) and while it is
read (chunked bodies), so an oversized request is answered 413 at once instead of being
parsed; names, paths and the cancel reason in a JSON body are length-checked before its
handler runs. `clip` (or `shorten`) is the one way user input goes back into an error message
or the log: one value is never quoted beyond MAX_ECHO characters.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web

from batchd.errors import InvalidInput, PayloadTooLarge
from batchd.text import (  # noqa: F401 - the API's names for them
    MAX_ECHO,
    MAX_NAME,
    MAX_PATH,
    MAX_REASON,
    TOO_LARGE_HINT,
    check_name,
    check_path,
    clip,
    shorten,
)

MAX_QUERY = 4096     # a whole query string


def check_fields(body: dict[str, Any]) -> None:
    """The names, paths and reason of a JSON body, before a handler sees them."""
    for key in ("name", "project", "workflow", "sample", "queue", "step", "sample_col",
                "file_col"):
        check_name(f"request field {key!r}", body.get(key))
    for key in ("filename", "metadata_filename", "definition_filename", "base_dir"):
        check_path(f"request field {key!r}", body.get(key))
    reason = body.get("reason")
    if isinstance(reason, str) and len(reason) > MAX_REASON:
        raise InvalidInput(f"request field 'reason' is {len(reason):,} characters long; at "
                           f"most {MAX_REASON:,} are kept, shorten it")


def advertised(settings: Any) -> dict[str, int]:
    """The body limits, for /v1/ping: batchctl checks an upload against them before sending
    it (a refused 64 MB body would otherwise be read, encoded and pushed into a socket that
    is already closing)."""
    return {"metadata_bytes": settings.limit_metadata_bytes,
            "definition_bytes": settings.limit_definition_bytes,
            "jobdef_bytes": settings.limit_jobdef_bytes, "body_bytes": settings.limit_body_bytes,
            "request_bytes": settings.max_request_bytes}


def check_request_line(request: web.Request) -> None:
    """Names in the path and query string, before any handler or store lookup sees them."""
    if len(request.query_string) > MAX_QUERY:
        raise PayloadTooLarge(f"the query string is {len(request.query_string):,} characters; "
                              f"at most {MAX_QUERY:,} are accepted")
    for key, value in request.match_info.items():
        check_name(key, value)
    for key, value in request.query.items():
        check_name(f"query parameter {clip(key, 40)}", value)


# `POST /v1/projects` with the samples table as the body (batchctl import): its options.
TABLE_TYPES = ("text/csv", "text/tab-separated-values")
TABLE_QUERY: dict[str, tuple[type, ...]] = {"name": (str,), "sample_col": (str,),
                                            "file_col": (str,)}
FILENAME_HEADER = "X-Batchd-Filename"     # percent-encoded UTF-8 (a path may be 4,096 long)
# A JSON import is decoded on the event loop in one C call (~4 ms per MB, holding the GIL),
# so a JSON body is kept small enough to answer in well under 100 ms; big tables come as
# the body itself, decoded in a worker thread a slice at a time (metadata.decode_table).
JSON_IMPORT_BYTES = 4 * 1024 * 1024
JSON_IMPORT = "json_import"               # not a setting: the fixed cap above


def upload_filename(request: web.Request) -> str:
    raw = request.headers.get(FILENAME_HEADER)
    if not raw:
        return "metadata.csv"
    check_path(f"header {FILENAME_HEADER}", raw)
    return unquote(raw, errors="replace")


def body_limit(settings: Any, route: str) -> tuple[int, str]:
    """(bytes, setting name) for the body of a route."""
    if route == "import_project":
        if settings.limit_metadata_bytes > JSON_IMPORT_BYTES:
            return JSON_IMPORT_BYTES, JSON_IMPORT
        return settings.limit_metadata_bytes, "limits.metadata_bytes"
    if route == "create_workflow":
        return settings.limit_definition_bytes, "limits.definition_bytes"
    if route == "register_jobdef":
        return settings.limit_jobdef_bytes, "limits.jobdef_bytes"
    return settings.limit_body_bytes, "limits.body_bytes"


def _too_large(size: str, limit: int, setting: str) -> PayloadTooLarge:
    if setting == JSON_IMPORT:
        return PayloadTooLarge(
            f"the request body is {size} bytes; an import sent as JSON accepts at most "
            f"{limit:,} bytes; send the samples table itself as the body (Content-Type: "
            "text/csv, name, sample_col and file_col in the query), as `batchctl import` does",
            limit=limit, setting=setting)
    return PayloadTooLarge(f"the request body is {size} bytes; this request accepts at most "
                           f"{limit:,} bytes (setting {setting}); {TOO_LARGE_HINT}",
                           limit=limit, setting=setting)


async def read_body(request: web.Request, limit: int, setting: str) -> bytes:
    """The body, refused before reading when Content-Length is over the limit and as soon as
    the bytes read pass it when it is not given."""
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(f"{length:,}", limit, setting)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        total += len(chunk)
        if total > limit:
            raise _too_large(f"more than {limit:,}", limit, setting)
        chunks.append(chunk)
    return b"".join(chunks)
