"""The AWS Batch backend: every Batch, S3 and CloudWatch Logs call batchd makes.

The clients (aws/clients.py) are created in `start()`; every call goes through aiobotocore's
public client API. Every Batch call waits for the account-wide `RateBudget` first and reports
the outcome back (success / throttled / 5xx), and every refused credential to the `AuthWatch`
(backends/auth.py). The Batch clients never retry by themselves: batchd's loops retry, under
the budget, using the error's `kind` (aws/errors.py classifies every failure; aws/shapes.py
turns requests and answers into batchd's types).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from botocore import exceptions as bexc

from batchd.backends.auth import AuthWatch
from batchd.backends.aws.clients import AwsClients
from batchd.backends.aws.errors import classify_client_error
from batchd.backends.aws.ratelimit import Priority, RateBudget
from batchd.backends.aws.s3outputs import S3OutputStore
from batchd.backends.aws.shapes import (
    custom_log_group,
    job_status_from_detail,
    queue_info,
    submit_params,
)
from batchd.backends.base import DESCRIBE_BATCH, Backend, JobStatus, QueueInfo, SubmitRequest
from batchd.errors import SubmitOutcomeUnknown, Throttled, TransientBackendError

__all__ = ["AwsBackend"]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class AwsBackend(Backend):
    name = "aws"
    LOGS_CONCURRENCY = 4
    outputs: S3OutputStore
    auth: AuthWatch                # never None here: every call reports to it
    LOGS_PAGE_LIMIT: int | None = None   # events per GetLogEvents page (None: AWS's 10,000/1 MB)
    LOG_GROUP_MEMORY = 50_000      # streams whose job uses a custom awslogs group

    def __init__(self, *, budget: RateBudget, region: str | None = None,
                 profile: str | None = None, log=None, s3_concurrency: int = 32,
                 log_group: str = "/aws/batch/job", connect_timeout: float = 10.0,
                 read_timeout: float = 60.0, max_pool_connections: int = 50) -> None:
        self.budget = budget
        self.region = region
        self.profile = profile
        self.log = log
        self.log_group = log_group
        self.outputs = S3OutputStore(None, concurrency=s3_concurrency, log=log)
        self.clients = AwsClients(
            profile=profile, connect_timeout=connect_timeout, read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            s3_pool=max(max_pool_connections, s3_concurrency),
            logs_pool=self.LOGS_CONCURRENCY * 2)
        self._logs_sem = asyncio.Semaphore(self.LOGS_CONCURRENCY)
        self._stream_groups: OrderedDict[str, str] = OrderedDict()
        self.calls: dict[str, int] = {}
        self.throttles: dict[str, int] = {}   # by operation, for /metrics
        # Refused credentials, per operation: shown by status and /metrics, and the loops
        # back off on them (backends/auth.py); `base` follows the poll interval (daemon.py).
        self.auth = AuthWatch(log=log)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self.clients.is_open:
            return
        self.region = await self.clients.open(self.region)
        self.outputs.client = self.clients.s3
        if self.log is not None:
            self.log.info("aws_backend_started", region=self.region,
                          batch_endpoint=self.clients.batch.meta.endpoint_url,
                          s3_endpoint=self.clients.s3.meta.endpoint_url,
                          logs_endpoint=self.clients.logs.meta.endpoint_url,
                          rate_ceiling=self.budget.ceiling)

    async def close(self) -> None:
        await self.clients.close()
        self.outputs.client = None
        await self.budget.aclose()      # no dispatcher task left behind at loop shutdown

    # ---------------------------------------------------------------- the one call path
    async def _call(self, operation: str, priority: Priority, *, job_name: str | None = None,
                    **params: Any) -> dict[str, Any]:
        """One Batch API call under the rate budget, with the outcome fed back to it."""
        client = self.clients.batch_for(operation)
        if client is None:
            raise TransientBackendError("the AWS backend is not started")
        method = getattr(client, _snake(operation))
        await self.budget.acquire(priority)
        self.calls[operation] = self.calls.get(operation, 0) + 1
        try:
            response = await method(**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - everything is classified
            error = classify_client_error(exc, operation=operation, job_name=job_name)
            if isinstance(error, Throttled):
                self.throttles[operation] = self.throttles.get(operation, 0) + 1
                self.budget.on_throttled()
            elif (isinstance(exc, bexc.ClientError)
                  and (error.details.get("http_status") or 0) >= 500):
                self.budget.on_server_error()
            if error.details.get("auth"):
                self.auth.failed(operation, error.aws_code or type(exc).__name__,
                                 error.message)
            if self.log is not None:
                self.log.debug("aws_call_failed", operation=operation, kind=error.kind,
                               error=error.message)
            raise error from exc
        self.budget.on_success()
        self.auth.succeeded(operation)
        return response

    # ---------------------------------------------------------------- job definitions
    async def register_job_definition(self, spec: dict[str, Any]) -> dict[str, Any]:
        response = await self._call("RegisterJobDefinition", Priority.SUBMIT, **spec)
        return {"jobDefinitionName": response["jobDefinitionName"],
                "revision": response["revision"],
                "jobDefinitionArn": response["jobDefinitionArn"]}

    async def list_job_definitions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"status": "ACTIVE", "maxResults": 100}
            if token:
                params["nextToken"] = token
            response = await self._call("DescribeJobDefinitions", Priority.SUBMIT, **params)
            for jd in response.get("jobDefinitions", []):
                if jd.get("status", "ACTIVE") != "ACTIVE":
                    continue
                found.append({key: jd.get(key) for key in (
                    "jobDefinitionName", "revision", "status", "containerProperties",
                    "parameters")} | {"jobDefinitionArn": jd.get("jobDefinitionArn")})
            token = response.get("nextToken")
            if not token:
                break
        found.sort(key=lambda jd: (jd["jobDefinitionName"] or "", jd["revision"] or 0))
        return found

    # ---------------------------------------------------------------- jobs
    submit_params = staticmethod(submit_params)

    async def submit(self, request: SubmitRequest) -> str:
        response = await self._call("SubmitJob", Priority.SUBMIT, job_name=request.job_name,
                                    **self.submit_params(request))
        job_id = response.get("jobId") if isinstance(response, dict) else None
        if not job_id:
            # Accepted (2xx) without saying which job: it may exist, so never a blind resend.
            raise SubmitOutcomeUnknown(
                f"AWS Batch accepted job {request.job_name} but its answer had no job id; "
                "the job may exist, so batchd will look it up by name before sending it again",
                operation="SubmitJob")
        return job_id

    async def describe(self, job_ids: list[str]) -> list[JobStatus]:
        assert len(job_ids) <= DESCRIBE_BATCH, \
            f"DescribeJobs takes at most {DESCRIBE_BATCH} ids, got {len(job_ids)}"
        if not job_ids:
            return []
        response = await self._call("DescribeJobs", Priority.POLL, jobs=list(job_ids))
        statuses = []
        for detail in response.get("jobs", []):
            status = job_status_from_detail(detail)
            group = custom_log_group(detail)
            if group and status.log_stream and group != self.log_group:
                self._remember_group(status.log_stream, group)
            statuses.append(status)
        return statuses

    async def find_by_name(self, job_name: str, queue: str) -> JobStatus | None:
        newest: dict[str, Any] | None = None
        token: str | None = None
        while True:
            params: dict[str, Any] = {"jobQueue": queue, "maxResults": 100,
                                      "filters": [{"name": "JOB_NAME", "values": [job_name]}]}
            if token:
                params["nextToken"] = token
            response = await self._call("ListJobs", Priority.POLL, **params)
            for summary in response.get("jobSummaryList", []):
                if summary.get("jobName") != job_name:   # the filter also matches prefixes*
                    continue
                if newest is None or (summary.get("createdAt") or 0) > (
                        newest.get("createdAt") or 0):
                    newest = summary
            token = response.get("nextToken")
            if not token:
                break
        return job_status_from_detail(newest) if newest is not None else None

    async def cancel(self, job_id: str, reason: str, *, terminate: bool) -> None:
        reason = (reason or "cancelled by batchd")[:1024]
        if terminate:
            await self._call("TerminateJob", Priority.POLL, jobId=job_id, reason=reason)
        else:
            await self._call("CancelJob", Priority.POLL, jobId=job_id, reason=reason)

    # ---------------------------------------------------------------- logs
    def _remember_group(self, stream: str, group: str) -> None:
        self._stream_groups[stream] = group
        self._stream_groups.move_to_end(stream)
        while len(self._stream_groups) > self.LOG_GROUP_MEMORY:
            self._stream_groups.popitem(last=False)

    async def fetch_logs(self, log_stream: str) -> AsyncIterator[str]:
        """Every line of the stream, all pages: GetLogEvents from the head, following
        nextForwardToken until the same token comes back (CloudWatch's documented end)."""
        logs = self.clients.logs
        if logs is None:
            raise TransientBackendError("the AWS backend is not started")
        group = self._stream_groups.get(log_stream, self.log_group)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"logGroupName": group, "logStreamName": log_stream,
                                      "startFromHead": True}
            if self.LOGS_PAGE_LIMIT:
                params["limit"] = self.LOGS_PAGE_LIMIT
            if token:
                params["nextToken"] = token
            async with self._logs_sem:
                try:
                    response = await logs.get_log_events(**params)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    raise classify_client_error(exc, operation="GetLogEvents",
                                                service="CloudWatch Logs") from exc
            for event in response.get("events", []):
                message = event.get("message", "")
                for line in message.rstrip("\n").split("\n") if message else [""]:
                    yield line
            next_token = response.get("nextForwardToken")
            if not next_token or next_token == token:
                return
            token = next_token

    # ---------------------------------------------------------------- queues
    async def queues(self, names: list[str]) -> list[QueueInfo]:
        if not names:
            return []
        details: list[dict[str, Any]] = []
        for chunk in _chunks(list(dict.fromkeys(names)), 100):
            token: str | None = None
            while True:
                params: dict[str, Any] = {"jobQueues": chunk}
                if token:
                    params["nextToken"] = token
                response = await self._call("DescribeJobQueues", Priority.BACKGROUND, **params)
                details.extend(response.get("jobQueues", []))
                token = response.get("nextToken")
                if not token:
                    break
        ce_arns = list(dict.fromkeys(
            ce["computeEnvironment"] for q in details
            for ce in q.get("computeEnvironmentOrder", []) if ce.get("computeEnvironment")))
        ces: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ce_arns, 100):
            token = None
            while True:
                params = {"computeEnvironments": chunk}
                if token:
                    params["nextToken"] = token
                response = await self._call("DescribeComputeEnvironments", Priority.BACKGROUND,
                                            **params)
                for ce in response.get("computeEnvironments", []):
                    ces[ce.get("computeEnvironmentArn", "")] = ce
                    ces[ce.get("computeEnvironmentName", "")] = ce
                token = response.get("nextToken")
                if not token:
                    break
        wanted = set(names)
        return [queue_info(q, ces) for q in details
                if q.get("jobQueueName", "") in wanted or q.get("jobQueueArn") in wanted]


def _snake(operation: str) -> str:
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
