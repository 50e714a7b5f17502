"""The control API: versioned JSON over HTTP on the daemon's Unix socket.

Handlers stay thin: they parse the request, call the store or operations.py, and answer JSON.
One middleware turns every `BatchdError` into `{"error": {"code", "message"}}` with its HTTP
status, so a user mistake never produces a traceback; anything else is logged as
`api_internal_error` and answered 500 "internal".
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from batchd import __version__
from batchd.api import access, limits, operations
from batchd.api.offload import HeavyWork
from batchd.api.peercred import Caller, caller_of
from batchd.backends.base import Backend
from batchd.config.settings import Settings
from batchd.errors import BatchdError, InvalidInput, PayloadTooLarge
from batchd.inputs.validation import (
    BODY_FIELDS,
    MAX_JSON_INT,
    MAX_MEMORY,
    MAX_TIMEOUT,
    MAX_VCPUS,
    check_fields,
    load_json,
)
from batchd.logs import get_logger
from batchd.model import JOB_STATES
from batchd.naming import validate_name
from batchd.store import Store
from batchd.wakeups import Wakeups

log = get_logger(component="api")


@dataclass
class Context:
    store: Store
    backend: Backend
    settings: Settings
    wake: Wakeups
    stop: asyncio.Event
    started_at: float = field(default_factory=time.time)
    # Parsing and rendering of big imports/creates: a worker thread, one at a time.
    heavy: HeavyWork = field(default_factory=HeavyWork.from_env)
    _queue_cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _compute_cache: dict[int, tuple[float, Any, dict[str, float]]] = field(default_factory=dict)

    async def compute_spent(self, workflow_id: int, status: dict[str, Any],
                            max_age: float = 30.0) -> dict[str, float]:
        """Compute spent sums every attempt of the workflow (~140 ms at 100,000 jobs) while
        the counts take ~10 ms, so a running workflow's figure may be up to 30 s old; a
        finished workflow's is recomputed once whenever its counts change."""
        now = time.monotonic()
        signature = (status["status"], tuple(sorted(status["counts"].items())))
        cached = self._compute_cache.get(workflow_id)
        if cached is None:
            fresh_enough = False
        elif status["status"] == "RUNNING":
            fresh_enough = now - cached[0] <= max_age
        else:
            fresh_enough = cached[1] == signature
        if not fresh_enough or cached is None:     # (cached is None: not fresh_enough)
            cached = (now, signature, await self.store.compute_spent(workflow_id))
            self._compute_cache[workflow_id] = cached
        return cached[2]

    async def queue_info(self, names: list[str], max_age: float = 60.0) -> dict[str, Any]:
        """The backend's view of the queues, cached: `batchctl queues` in a watch loop must
        not eat into the API budget that submitting and polling need."""
        now = time.time()
        stale = [n for n in names if now - self._queue_cache.get(n, (0.0, {}))[0] > max_age]
        if stale:
            try:
                for info in await self.backend.queues(stale):
                    self._queue_cache[info.name] = (now, {
                        "state": info.state, "status": info.status,
                        "status_reason": info.status_reason, "max_vcpus": info.max_vcpus,
                        "max_memory": info.max_memory})
            except BatchdError as exc:
                return {n: {"error": exc.message} for n in names} | {
                    n: self._queue_cache[n][1] for n in names if n in self._queue_cache}
        return {n: self._queue_cache[n][1] for n in names if n in self._queue_cache}


CONTEXT = web.AppKey("context", Context)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BatchdError as exc:
        return _json({"error": exc.to_json()}, status=exc.http_status)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONTEXT].settings.max_request_bytes
        err = PayloadTooLarge(f"the request is larger than the daemon accepts ({limit:,} bytes; "
                              "setting max_request_bytes)")
        return _json({"error": err.to_json()}, status=err.http_status)
    except web.HTTPException as exc:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        message = f"{request.method} {limits.clip(request.path)}: {exc.reason}"
        return _json({"error": {"code": code, "message": message}}, status=exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api_internal_error", method=request.method,
                      path=limits.shorten(request.path))
        return _json({"error": {"code": "internal", "message": "batchd hit an internal error; "
                                "details are in the daemon's log"}}, status=500)


@web.middleware
async def limits_middleware(request: web.Request, handler) -> web.StreamResponse:
    # before the handler: a 50 MB name must not reach a regex, a store lookup or a log line
    limits.check_request_line(request)
    return await handler(request)


async def _body(request: web.Request) -> dict[str, Any]:
    route = getattr(request.match_info.handler, "__name__", "")
    limit, setting = limits.body_limit(_ctx(request).settings, route)
    raw = await limits.read_body(request, limit, setting)
    if "Content-Type" in request.headers and request.content_type != "application/json":
        raise InvalidInput(f"the request body is {limits.clip(request.content_type, 60)}; "
                           "send JSON with the header Content-Type: application/json")
    body = load_json(raw, where="the request body") if raw.strip() else None
    if not isinstance(body, dict):
        got = {list: "a JSON array", str: "a string", bool: "true/false", int: "a number",
               float: "a number", type(None): "nothing"}.get(type(body), "null")
        raise InvalidInput(f"the request body must be a JSON object ({{...}}), got {got}")
    check_fields(body, BODY_FIELDS.get(route, {}))
    limits.check_fields(body)
    return body


def _ctx(request: web.Request) -> Context:
    return request.app[CONTEXT]


def _path_names(request: web.Request) -> None:
    # An encoded '/' or a NUL decodes into a name no project can have: say so, rather than
    # "not found" with advice to create a project of that name.
    for kind in ("project", "workflow"):
        if kind in request.match_info:
            validate_name(kind, request.match_info[kind])


async def _workflow(request: web.Request):
    """The workflow named by the route's {project}/{workflow} (NotFound names the missing one)."""
    _path_names(request)
    return await _ctx(request).store.workflow(request.match_info["project"],
                                              request.match_info["workflow"])


async def _filters(request: web.Request, workflow: Any, step: int | None,
                   sample: str | None) -> None:
    """A step or sample filter that matches nothing of this workflow is a typo: refuse it
    rather than cancel, resubmit or list nothing."""
    store = _ctx(request).store
    if step is not None:
        steps = len(await store.analyses(workflow["id"]))
        if step >= steps:
            raise InvalidInput(f"step {step} does not exist: {workflow['project_name']}/"
                               f"{workflow['name']} has steps 0 to {steps - 1}", field="step")
    if sample and not (await store.list_jobs(workflow["id"], sample=sample, limit=1))[0]:
        raise InvalidInput(f"sample {limits.clip(sample, 80)} is not in project "
                           f"{workflow['project_name']}; check the spelling (`batchctl status "
                           f"{workflow['project_name']}/{workflow['name']} --jobs` lists them)",
                           field="sample")


async def _attempt_rows(request: web.Request) -> list[dict[str, Any]]:
    """Attempts of the route's workflow, filtered by the `sample` and `step` query."""
    workflow = await _workflow(request)
    sample, step = request.query.get("sample"), _int(request.query, "step")
    await _filters(request, workflow, step, sample)
    return await _ctx(request).store.job_attempts(workflow["id"], sample=sample, step=step)


def _caller(request: web.Request) -> Caller:
    return caller_of(request)


def _require_owner(request: web.Request, workflow: Any, action: str) -> Caller:
    """The caller, once access.py has agreed they may change this workflow's project."""
    caller = caller_of(request)
    access.policy_of(request).require_owner(caller, action=action,
                                            project=workflow["project_name"],
                                            owner_uid=workflow["owner_uid"])
    return caller


# -- handlers ---------------------------------------------------------------------------------
async def ping(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    return _json({"version": __version__, "backend": ctx.backend.name, "pid": os.getpid(),
                  "started_at": ctx.started_at, "socket": str(ctx.settings.socket),
                  "limits": limits.advertised(ctx.settings)})


async def import_project(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    caller = _caller(request)
    if request.content_type in limits.TABLE_TYPES:
        body = await _table_upload(request, ctx)
    else:
        body = await _body(request)
    request[access.AUDIT_TARGET] = body.get("name")
    result = await operations.import_project(ctx.store, body, heavy=ctx.heavy,
                                             owner_uid=caller.uid, owner_name=caller.name)
    log.info("project_imported", project=result["name"], samples=result["samples"],
             user=caller.name, uid=caller.uid)
    return _json({"project": result}, status=201)


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
    return _json({"projects": await _ctx(request).store.projects()})


async def create_workflow(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    project = request.match_info["project"]
    _path_names(request)
    caller = _caller(request)
    owner = await ctx.store.project(project)
    access.policy_of(request).require_owner(caller, action="create a workflow", project=project,
                                            owner_uid=owner["owner_uid"],
                                            owner_name=owner["owner_name"])
    body = await _body(request)
    # Only the local registry is complete and free to read; on AWS a missing definition is
    # a ClientException at SubmitJob (submit_rejected).
    registered = (await ctx.backend.list_job_definitions()
                  if ctx.backend.name == "local" else None)
    result = await operations.create_workflow(ctx.store, project, body, heavy=ctx.heavy,
                                              job_definitions=registered)
    log.info("workflow_created", project=project, workflow=result["name"],
             jobs=result["jobs"], user=caller.name, uid=caller.uid)
    return _json({"workflow": result}, status=201)


async def submit_workflow(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    workflow = await _workflow(request)
    caller = _require_owner(request, workflow, "submit")
    released = await ctx.store.submit_workflow(workflow["id"])
    ctx.wake.checker.set()
    log.info("workflow_submitted", project=workflow["project_name"], workflow=workflow["name"],
             released=released, user=caller.name, uid=caller.uid)
    workflow = await ctx.store.workflow(workflow["project_name"], workflow["name"])
    return _json({"workflow": await ctx.store.workflow_status(workflow), "released": released})


async def workflow_status(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    workflow = await _workflow(request)
    status = await ctx.store.workflow_status(workflow)
    status["compute"] = await ctx.compute_spent(workflow["id"], status)
    auth = ctx.backend.auth
    status["backend_auth"] = auth.snapshot() if auth is not None and auth.failing() else None
    return _json(status)


async def list_jobs(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    workflow = await _workflow(request)
    q = request.query
    state = q.get("state") or None
    if state is not None:
        state = state.upper()
        if state not in JOB_STATES:
            raise InvalidInput(f"unknown state {limits.clip(q['state'])}; states are: "
                               f"{', '.join(JOB_STATES)}")
    await _filters(request, workflow, _int(q, "step"), q.get("sample") or None)
    jobs, next_cursor = await ctx.store.list_jobs(
        workflow["id"], state=state, sample=q.get("sample") or None,
        step=_int(q, "step"), limit=min(_int(q, "limit", minimum=1) or 500, 1000),
        after=_int(q, "after") or 0)
    auth = ctx.backend.auth
    failing = auth is not None and auth.failing()
    # Not stored: it holds exactly as long as the refusal does, and a job is never failed
    # for it (backend_auth.py).
    for job in jobs:
        job["waiting_reason"] = (auth.waiting_reason(job["state"])
                                 if failing and auth is not None else None)
    return _json({"jobs": jobs, "next": next_cursor})


async def cancel_jobs(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    workflow = await _workflow(request)
    caller = _require_owner(request, workflow, "cancel jobs")
    body = await _body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required to cancel jobs (it is recorded with each job "
                           "and sent to AWS Batch)")
    await _filters(request, workflow, _opt_int(body, "step"), body.get("sample") or None)
    result = await ctx.store.cancel_jobs(workflow["id"], reason=reason.strip(),
                                         state=_state(body.get("status")),
                                         sample=body.get("sample") or None,
                                         step=_opt_int(body, "step"))
    ctx.wake.poller.set()
    log.info("jobs_cancelled", project=workflow["project_name"], workflow=workflow["name"],
             user=caller.name, uid=caller.uid, reason=limits.shorten(reason), **result)
    return _json(result)


async def resubmit_jobs(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    workflow = await _workflow(request)
    caller = _require_owner(request, workflow, "resubmit jobs")
    body = await _body(request)
    queue = body.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise InvalidInput("queue must be a job queue name")
    await _filters(request, workflow, _opt_int(body, "step"), body.get("sample") or None)
    vcpus = body.get("vcpus")
    if vcpus is not None and (not isinstance(vcpus, (int, float)) or not 0 < vcpus <= MAX_VCPUS):
        raise InvalidInput(f"vcpus must be a number greater than 0 and at most {MAX_VCPUS}, "
                           f"got {limits.clip(vcpus)}")
    count = await ctx.store.resubmit_jobs(
        workflow["id"], state=_state(body.get("status")), sample=body.get("sample") or None,
        step=_opt_int(body, "step"), memory=_opt_int(body, "memory", 1, MAX_MEMORY),
        vcpus=vcpus, queue=queue, timeout=_opt_int(body, "timeout", 60, MAX_TIMEOUT),
        force=bool(body.get("force")))
    ctx.wake.checker.set()
    ctx.wake.submitter.set()
    log.info("jobs_resubmitted", project=workflow["project_name"], workflow=workflow["name"],
             user=caller.name, uid=caller.uid, jobs=count,
             overrides={k: body.get(k) for k in ("memory", "vcpus", "queue", "timeout")
                        if body.get(k) is not None})
    return _json({"resubmitted": count})


async def attempts(request: web.Request) -> web.Response:
    rows = await _attempt_rows(request)
    for row in rows:
        row.pop("request", None)
    return _json({"attempts": rows})


async def logs(request: web.Request) -> web.StreamResponse:
    """Every log line of the matching attempts, oldest attempt first, as plain text."""
    ctx = _ctx(request)
    rows = await _attempt_rows(request)
    wanted = _int(request.query, "attempt_id")
    rows = [r for r in rows if r["log_stream"] and (wanted is None or r["id"] == wanted)]
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    for row in rows:
        header = (f"==> sample {row['sample']} step {row['step']} attempt {row['attempt']} "
                  f"(job {row['backend_job_id']}, {row['state']}) <==\n")
        if wanted is None:
            await response.write(header.encode())
        try:
            async for line in ctx.backend.fetch_logs(row["log_stream"]):
                await response.write((line.rstrip("\n") + "\n").encode())
        except BatchdError as exc:
            await response.write(f"!! could not read this log: {exc.message}\n".encode())
    await response.write_eof()
    return response


async def queues(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    counts = await ctx.store.queue_counts()
    info = await ctx.queue_info(sorted(counts))
    return _json({"queues": [{"name": name, "counts": counts[name], **info.get(name, {})}
                             for name in sorted(counts)]})


async def dashboard(request: web.Request) -> web.Response:
    return _json({"workflows": await _ctx(request).store.dashboard()})


async def register_jobdef(request: web.Request) -> web.Response:
    from batchd.inputs.jobdefs import validate_job_definition
    ctx = _ctx(request)
    caller = _caller(request)
    body = await _body(request)
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
    return _json(result, status=201)


async def list_jobdefs(request: web.Request) -> web.Response:
    return _json({"job_definitions": await _ctx(request).backend.list_job_definitions()})


async def shutdown(request: web.Request) -> web.Response:
    caller = _caller(request)
    access.policy_of(request).require_admin(caller, action="stop")
    log.info("shutdown_requested", user=caller.name, uid=caller.uid)
    _ctx(request).stop.set()
    return _json({"stopping": True})


def _state(value: Any) -> str | None:
    if value in (None, ""):
        return None
    state = str(value).upper()
    if state not in JOB_STATES:
        raise InvalidInput(f"unknown state {limits.clip(value)}; "
                           f"states are: {', '.join(JOB_STATES)}")
    return state


def _opt_int(body: dict[str, Any], key: str, minimum: int = 0,
             maximum: int = MAX_JSON_INT) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{key} must be a whole number from {minimum} to {maximum:,}, got "
                           f"{limits.clip(value)}")
    return value


def _int(query, key: str, minimum: int = 0) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        number = int(value) if value.strip().lstrip("-").isdigit() and len(value) <= 20 else None
    except ValueError:
        number = None
    # SQLite holds 64-bit integers: a bigger one was an OverflowError (a 500) in the store
    if number is None or not minimum <= number <= MAX_JSON_INT:
        raise InvalidInput(f"query parameter {key!r} must be a whole number of at least "
                           f"{minimum} (below 2^63), got {limits.clip(value)}", field=key)
    return number


def build_app(ctx: Context) -> web.Application:
    # audit outermost: it records the status error_middleware turned an exception into
    app = web.Application(middlewares=[access.audit_middleware, error_middleware,
                                       limits_middleware],
                          client_max_size=ctx.settings.max_request_bytes)
    app[CONTEXT] = ctx
    app[access.POLICY] = access.Policy(ctx.settings.admin_group)
    wf = "/v1/projects/{project}/workflows/{workflow}"
    app.add_routes([
        web.get("/v1/ping", ping),
        web.post("/v1/projects", import_project),
        web.get("/v1/projects", list_projects),
        web.post("/v1/projects/{project}/workflows", create_workflow),
        web.post(wf + "/submit", submit_workflow),
        web.get(wf, workflow_status),
        web.get(wf + "/jobs", list_jobs),
        web.post(wf + "/cancel", cancel_jobs),
        web.post(wf + "/resubmit", resubmit_jobs),
        web.get(wf + "/attempts", attempts),
        web.get(wf + "/logs", logs),
        web.get("/v1/queues", queues),
        web.get("/v1/dashboard", dashboard),
        web.post("/v1/jobdefs", register_jobdef),
        web.get("/v1/jobdefs", list_jobdefs),
        web.post("/v1/shutdown", shutdown),
    ])
    return app
