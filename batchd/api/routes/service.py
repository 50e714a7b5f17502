"""The daemon and its backend: ping, queues, job definitions, shutdown.

Registering a job definition and stopping the daemon act with more than the caller's own
rights, so access.py reserves them to admins; everything else here only reads.
"""

from __future__ import annotations

import os

from aiohttp import web

from batchd import __version__
from batchd.api import access, limits
from batchd.api.peercred import caller_of
from batchd.api.requests import context_of, json_body, reply
from batchd.errors import InvalidInput
from batchd.logs import get_logger

log = get_logger(component="api")


async def ping(request: web.Request) -> web.Response:
    ctx = context_of(request)
    return reply({"version": __version__, "backend": ctx.backend.name, "pid": os.getpid(),
                  "started_at": ctx.started_at, "socket": str(ctx.settings.socket),
                  "limits": limits.advertised(ctx.settings)})


async def queues(request: web.Request) -> web.Response:
    ctx = context_of(request)
    counts = await ctx.store.queue_counts()
    info = await ctx.queue_info(sorted(counts))
    return reply({"queues": [{"name": name, "counts": counts[name], **info.get(name, {})}
                             for name in sorted(counts)]})


async def register_jobdef(request: web.Request) -> web.Response:
    from batchd.inputs.jobdefs import validate_job_definition
    ctx = context_of(request)
    caller = caller_of(request)
    body = await json_body(request)
    spec = body.get("spec")
    name = spec.get("jobDefinitionName") if isinstance(spec, dict) else None
    # the name is recorded first, so a refused attempt is audited with what it tried to register
    request[access.AUDIT_TARGET] = limits.shorten(name) if isinstance(name, str) else None
    access.policy_of(request).require_jobdef_admin(caller, backend=ctx.backend.name)
    if not isinstance(spec, dict):
        raise InvalidInput("request field 'spec' must be a JSON object (the job definition)")
    spec = validate_job_definition(
        spec, filename=limits.shorten(body.get("filename") or "job definition"))
    result = await ctx.backend.register_job_definition(spec)
    log.info("jobdef_registered", name=result["jobDefinitionName"],
             revision=result["revision"], user=caller.name, uid=caller.uid)
    return reply(result, status=201)


async def list_jobdefs(request: web.Request) -> web.Response:
    return reply({"job_definitions": await context_of(request).backend.list_job_definitions()})


async def shutdown(request: web.Request) -> web.Response:
    caller = caller_of(request)
    access.policy_of(request).require_admin(caller, action="stop")
    log.info("shutdown_requested", user=caller.name, uid=caller.uid)
    context_of(request).stop.set()
    return reply({"stopping": True})
