"""Projects: import one (its samples table) and list them.

An import arrives either as a small JSON body or, as `batchctl import` sends it, as the samples
table itself with its options in the query; both end in operations.import_project.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from batchd.api import access, limits, operations
from batchd.api.context import Context
from batchd.api.peercred import caller_of
from batchd.api.requests import context_of, json_body, reply
from batchd.errors import InvalidInput
from batchd.inputs.validation import check_fields
from batchd.logs import get_logger

log = get_logger(component="api")


async def import_project(request: web.Request) -> web.Response:
    ctx = context_of(request)
    caller = caller_of(request)
    if request.content_type in limits.TABLE_TYPES:
        body = await _table_upload(request, ctx)
    else:
        body = await json_body(request)
    request[access.AUDIT_TARGET] = body.get("name")
    result = await operations.import_project(ctx.store, body, heavy=ctx.heavy,
                                             owner_uid=caller.uid, owner_name=caller.name)
    log.info("project_imported", project=result["name"], samples=result["samples"],
             user=caller.name, uid=caller.uid)
    return reply({"project": result}, status=201)


async def _table_upload(request: web.Request, ctx: Context) -> dict[str, Any]:
    """The samples table itself as the body (what batchctl sends): its options are in the
    query and the file name in a header, so a 50 MB name is refused with the request line,
    and the table is never decoded as JSON on the event loop (a JSON import is small)."""
    query = dict(request.query)
    check_fields(query, limits.TABLE_QUERY, where="query parameter")
    if not query.get("name"):
        raise InvalidInput("query parameter 'name' (the project's name) is missing")
    filename = limits.upload_filename(request)
    raw = await limits.read_body(request, ctx.settings.limit_metadata_bytes,
                                 "limits.metadata_bytes")
    # bytes: decoded with the parse, in the import's one worker-thread turn (operations.py).
    # No check_fields pass: the query's names were checked with the request line and the
    # file name (never longer than its encoded header) by upload_filename.
    return {**query, "metadata": raw, "metadata_filename": filename}


async def list_projects(request: web.Request) -> web.Response:
    return reply({"projects": await context_of(request).store.projects()})
