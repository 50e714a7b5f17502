"""One workflow's jobs: list them, cancel or resubmit some, read their attempts and logs.

Every route takes the same `sample`, `step` and `status`/`state` filters, checked against the
workflow first (requests.check_filters): a typo is refused rather than matching nothing.
Cancelling and resubmitting change a project's work and are reserved to its owner.
"""

from __future__ import annotations

from aiohttp import web

from batchd.api import limits
from batchd.api.requests import (
    attempt_rows,
    body_int,
    check_filters,
    context_of,
    json_body,
    query_int,
    reply,
    require_owner,
    state_filter,
    workflow_of,
)
from batchd.errors import BatchdError, InvalidInput
from batchd.inputs.validation import MAX_MEMORY, MAX_TIMEOUT, MAX_VCPUS
from batchd.logs import get_logger

log = get_logger(component="api")


async def list_jobs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    workflow = await workflow_of(request)
    q = request.query
    state = state_filter(q.get("state"))
    await check_filters(request, workflow, query_int(q, "step"), q.get("sample") or None)
    jobs, next_cursor = await ctx.store.list_jobs(
        workflow["id"], state=state, sample=q.get("sample") or None,
        step=query_int(q, "step"), limit=min(query_int(q, "limit", minimum=1) or 500, 1000),
        after=query_int(q, "after") or 0)
    auth = ctx.backend.auth
    failing = auth is not None and auth.failing()
    # Not stored: it holds exactly as long as the refusal does, and a job is never failed
    # for it (backend_auth.py).
    for job in jobs:
        job["waiting_reason"] = (auth.waiting_reason(job["state"])
                                 if failing and auth is not None else None)
    return reply({"jobs": jobs, "next": next_cursor})


async def cancel_jobs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    workflow = await workflow_of(request)
    caller = require_owner(request, workflow, "cancel jobs")
    body = await json_body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required to cancel jobs (it is recorded with each job "
                           "and sent to AWS Batch)")
    await check_filters(request, workflow, body_int(body, "step"), body.get("sample") or None)
    result = await ctx.store.cancel_jobs(workflow["id"], reason=reason.strip(),
                                         state=state_filter(body.get("status")),
                                         sample=body.get("sample") or None,
                                         step=body_int(body, "step"))
    ctx.wake.poller.set()
    log.info("jobs_cancelled", project=workflow["project_name"], workflow=workflow["name"],
             user=caller.name, uid=caller.uid, reason=limits.shorten(reason), **result)
    return reply(result)


async def resubmit_jobs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    workflow = await workflow_of(request)
    caller = require_owner(request, workflow, "resubmit jobs")
    body = await json_body(request)
    queue = body.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise InvalidInput("queue must be a job queue name")
    await check_filters(request, workflow, body_int(body, "step"), body.get("sample") or None)
    vcpus = body.get("vcpus")
    if vcpus is not None and (not isinstance(vcpus, (int, float)) or not 0 < vcpus <= MAX_VCPUS):
        raise InvalidInput(f"vcpus must be a number greater than 0 and at most {MAX_VCPUS}, "
                           f"got {limits.clip(vcpus)}")
    count = await ctx.store.resubmit_jobs(
        workflow["id"], state=state_filter(body.get("status")),
        sample=body.get("sample") or None, step=body_int(body, "step"),
        memory=body_int(body, "memory", 1, MAX_MEMORY), vcpus=vcpus, queue=queue,
        timeout=body_int(body, "timeout", 60, MAX_TIMEOUT), force=bool(body.get("force")))
    ctx.wake.checker.set()
    ctx.wake.submitter.set()
    log.info("jobs_resubmitted", project=workflow["project_name"], workflow=workflow["name"],
             user=caller.name, uid=caller.uid, jobs=count,
             overrides={k: body.get(k) for k in ("memory", "vcpus", "queue", "timeout")
                        if body.get(k) is not None})
    return reply({"resubmitted": count})


async def attempts(request: web.Request) -> web.Response:
    rows = await attempt_rows(request)
    for row in rows:
        row.pop("request", None)
    return reply({"attempts": rows})


async def logs(request: web.Request) -> web.StreamResponse:
    """Every log line of the matching attempts, oldest attempt first, as plain text."""
    ctx = context_of(request)
    rows = await attempt_rows(request)
    wanted = query_int(request.query, "attempt_id")
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
