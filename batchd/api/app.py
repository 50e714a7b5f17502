"""The control API: versioned JSON over HTTP on the daemon's Unix socket.

`build_app` holds the whole route table; the handlers live in routes/, one module per group,
and share their request parsing through requests.py. Handlers stay thin: they parse the
request, call the store or operations.py, and answer JSON. One middleware turns every
`BatchdError` into `{"error": {"code", "message"}}` with its HTTP status, so a user mistake
never produces a traceback; anything else is logged as `api_internal_error` and answered 500
"internal". (observe.py adds /metrics, /healthz and /v1/daemon when the daemon starts.)
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from batchd.api import access, limits
from batchd.api.context import CONTEXT, Context
from batchd.api.requests import reply
from batchd.api.routes import jobs, projects, service, workflows
from batchd.errors import BatchdError, PayloadTooLarge
from batchd.logs import get_logger

log = get_logger(component="api")


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BatchdError as exc:
        return reply({"error": exc.to_json()}, status=exc.http_status)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONTEXT].settings.max_request_bytes
        err = PayloadTooLarge(f"the request is larger than the daemon accepts ({limit:,} bytes; "
                              "setting max_request_bytes)")
        return reply({"error": err.to_json()}, status=err.http_status)
    except web.HTTPException as exc:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        message = f"{request.method} {limits.clip(request.path)}: {exc.reason}"
        return reply({"error": {"code": code, "message": message}}, status=exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api_internal_error", method=request.method,
                      path=limits.shorten(request.path))
        return reply({"error": {"code": "internal", "message": "batchd hit an internal error; "
                                "details are in the daemon's log"}}, status=500)


@web.middleware
async def limits_middleware(request: web.Request, handler) -> web.StreamResponse:
    # before the handler: a 50 MB name must not reach a regex, a store lookup or a log line
    limits.check_request_line(request)
    return await handler(request)


def build_app(ctx: Context) -> web.Application:
    # audit outermost: it records the status error_middleware turned an exception into
    app = web.Application(middlewares=[access.audit_middleware, error_middleware,
                                       limits_middleware],
                          client_max_size=ctx.settings.max_request_bytes)
    app[CONTEXT] = ctx
    app[access.POLICY] = access.Policy(ctx.settings.admin_group)
    wf = "/v1/projects/{project}/workflows/{workflow}"
    app.add_routes([
        web.get("/v1/ping", service.ping),
        web.post("/v1/projects", projects.import_project),
        web.get("/v1/projects", projects.list_projects),
        web.post("/v1/projects/{project}/workflows", workflows.create_workflow),
        web.post(wf + "/submit", workflows.submit_workflow),
        web.get(wf, workflows.workflow_status),
        web.get(wf + "/jobs", jobs.list_jobs),
        web.post(wf + "/cancel", jobs.cancel_jobs),
        web.post(wf + "/resubmit", jobs.resubmit_jobs),
        web.get(wf + "/attempts", jobs.attempts),
        web.get(wf + "/logs", jobs.logs),
        web.get("/v1/queues", service.queues),
        web.get("/v1/dashboard", workflows.dashboard),
        web.post("/v1/jobdefs", service.register_jobdef),
        web.get("/v1/jobdefs", service.list_jobdefs),
        web.post("/v1/shutdown", service.shutdown),
    ])
    return app
