"""What every route handler does with its request: read it, check it, answer it.

A handler reads its JSON body through `json_body` (the byte limit and allowed fields of its
route, looked up by the handler's function name), the workflow of its path through
`workflow_of`, and its numbers and state filters through `query_int`, `body_int` and
`state_filter`, so the same mistake gets the same error message on every route. Every reply
is JSON through `reply`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from batchd.api import access, limits
from batchd.api.context import CONTEXT, Context
from batchd.api.peercred import Caller, caller_of
from batchd.errors import InvalidInput
from batchd.inputs.validation import BODY_FIELDS, MAX_JSON_INT, check_fields, load_json
from batchd.naming import validate_name
from batchshared.model import JOB_STATES


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def context_of(request: web.Request) -> Context:
    return request.app[CONTEXT]


async def json_body(request: web.Request) -> dict[str, Any]:
    route = getattr(request.match_info.handler, "__name__", "")
    limit, setting = limits.body_limit(context_of(request).settings, route)
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


def check_path_names(request: web.Request) -> None:
    # An encoded '/' or a NUL decodes into a name no project can have: say so, rather than
    # "not found" with advice to create a project of that name.
    for kind in ("project", "workflow"):
        if kind in request.match_info:
            validate_name(kind, request.match_info[kind])


async def workflow_of(request: web.Request):
    """The workflow named by the route's {project}/{workflow} (NotFound names the missing one)."""
    check_path_names(request)
    return await context_of(request).store.workflow(request.match_info["project"],
                                                    request.match_info["workflow"])


async def check_filters(request: web.Request, workflow: Any, step: int | None,
                        sample: str | None) -> None:
    """A step or sample filter that matches nothing of this workflow is a typo: refuse it
    rather than cancel, resubmit or list nothing."""
    store = context_of(request).store
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


async def attempt_rows(request: web.Request) -> list[dict[str, Any]]:
    """Attempts of the route's workflow, filtered by the `sample` and `step` query."""
    workflow = await workflow_of(request)
    sample, step = request.query.get("sample"), query_int(request.query, "step")
    await check_filters(request, workflow, step, sample)
    return await context_of(request).store.job_attempts(workflow["id"], sample=sample,
                                                        step=step)


def require_owner(request: web.Request, workflow: Any, action: str) -> Caller:
    """The caller, once access.py has agreed they may change this workflow's project."""
    caller = caller_of(request)
    access.policy_of(request).require_owner(caller, action=action,
                                            project=workflow["project_name"],
                                            owner_uid=workflow["owner_uid"])
    return caller


def state_filter(value: Any) -> str | None:
    """A job state to filter by (any case), or None for all of them."""
    if value in (None, ""):
        return None
    state = str(value).upper()
    if state not in JOB_STATES:
        raise InvalidInput(f"unknown state {limits.clip(value)}; "
                           f"states are: {', '.join(JOB_STATES)}")
    return state


def body_int(body: dict[str, Any], key: str, minimum: int = 0,
             maximum: int = MAX_JSON_INT) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidInput(f"{key} must be a whole number from {minimum} to {maximum:,}, got "
                           f"{limits.clip(value)}")
    return value


def query_int(query, key: str, minimum: int = 0) -> int | None:
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
