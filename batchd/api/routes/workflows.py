"""Workflows: create one from its definition, submit it, its status, and the dashboard.

Creating and submitting change a project's work, so access.py must agree the caller owns it;
status and the dashboard are open to everyone who can reach the socket.
"""

from __future__ import annotations

from aiohttp import web

from batchd.api import access, operations
from batchd.api.peercred import caller_of
from batchd.api.requests import (
    check_path_names,
    context_of,
    json_body,
    reply,
    require_owner,
    workflow_of,
)
from batchd.logs import get_logger

log = get_logger(component="api")


async def create_workflow(request: web.Request) -> web.Response:
    ctx = context_of(request)
    project = request.match_info["project"]
    check_path_names(request)
    caller = caller_of(request)
    owner = await ctx.store.project(project)
    access.policy_of(request).require_owner(caller, action="create a workflow", project=project,
                                            owner_uid=owner["owner_uid"],
                                            owner_name=owner["owner_name"])
    body = await json_body(request)
    # Only the local registry is complete and free to read; on AWS a missing definition is
    # a ClientException at SubmitJob (submit_rejected).
    registered = (await ctx.backend.list_job_definitions()
                  if ctx.backend.name == "local" else None)
    result = await operations.create_workflow(ctx.store, project, body, heavy=ctx.heavy,
                                              job_definitions=registered)
    log.info("workflow_created", project=project, workflow=result["name"],
             jobs=result["jobs"], user=caller.name, uid=caller.uid)
    return reply({"workflow": result}, status=201)


async def submit_workflow(request: web.Request) -> web.Response:
    ctx = context_of(request)
    workflow = await workflow_of(request)
    caller = require_owner(request, workflow, "submit")
    released = await ctx.store.submit_workflow(workflow["id"])
    ctx.wake.checker.set()
    log.info("workflow_submitted", project=workflow["project_name"], workflow=workflow["name"],
             released=released, user=caller.name, uid=caller.uid)
    workflow = await ctx.store.workflow(workflow["project_name"], workflow["name"])
    return reply({"workflow": await ctx.store.workflow_status(workflow), "released": released})


async def workflow_status(request: web.Request) -> web.Response:
    ctx = context_of(request)
    workflow = await workflow_of(request)
    status = await ctx.store.workflow_status(workflow)
    status["compute"] = await ctx.compute_spent(workflow["id"], status)
    auth = ctx.backend.auth
    status["backend_auth"] = auth.snapshot() if auth is not None and auth.failing() else None
    return reply(status)


async def dashboard(request: web.Request) -> web.Response:
    return reply({"workflows": await context_of(request).store.dashboard()})
