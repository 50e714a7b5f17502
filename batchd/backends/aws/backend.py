"""The AWS Batch backend (aiobotocore).

Long-lived clients (batch twice, s3, logs), created in `start()` from one `AioSession` that
follows the standard AWS configuration: credential chain, `profile`, region (`region` arg,
then `AWS_REGION`, then `AWS_DEFAULT_REGION` / the profile's region) and the standard endpoint
overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_BATCH`, `AWS_ENDPOINT_URL_S3`,
`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, or `endpoint_url` in the profile's config; botocore
resolves them and aiobotocore goes through the same code). Every call goes through
aiobotocore's public client API; the only tuning is public `AioConfig`: a fixed user agent, pool
sizes, no client-side retries on Batch, and no parameter validation on the Batch client that
sends the two calls made for every job (SubmitJob, DescribeJobs), whose parameters batchd
builds itself. Every other Batch call, job definitions (user JSON) first, goes through a second
Batch client that validates.

Every Batch call waits for the account-wide `RateBudget` first and reports the outcome back
(success / throttled / 5xx). The Batch client never retries by itself
(`total_max_attempts=1`): a retry behind the budget's back would spend quota the budget does
not know about and, for SubmitJob, could create a duplicate job. batchd's loops retry, under
the budget, using the error's `kind` (aws_errors.py classifies every failure; aws_shapes.py
turns requests and answers into batchd's types).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import aiobotocore
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as bexc

from batchd import __version__
from batchd.backends.auth import AuthWatch
from batchd.backends.aws.errors import classify_client_error
from batchd.backends.aws.ratelimit import Priority, RateBudget
from batchd.backends.aws.s3outputs import S3OutputStore
from batchd.backends.aws.shapes import custom_log_group, job_status_from_detail, submit_params
from batchd.backends.base import DESCRIBE_BATCH, Backend, JobStatus, QueueInfo, SubmitRequest
from batchd.errors import (
    PermanentBackendError,
    SubmitOutcomeUnknown,
    Throttled,
    TransientBackendError,
)

__all__ = ["AwsBackend", "classify_client_error", "job_status_from_detail"]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".on.aws")


def _is_aws_endpoint(url: str | None) -> bool:
    host = (urlparse(url).hostname or "") if url else ""
    return host.endswith(_AWS_SUFFIXES)


class AwsBackend(Backend):
    name = "aws"
    LOGS_CONCURRENCY = 4
    outputs: S3OutputStore
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
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_pool_connections = max_pool_connections
        self.s3_concurrency = s3_concurrency
        self.outputs = S3OutputStore(None, concurrency=s3_concurrency, log=log)
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: AioSession | None = None
        self.batch: Any = None            # UNVALIDATED operations, parameter validation off
        self.batch_checked: Any = None    # every other Batch operation, validated
        self.s3: Any = None
        self.logs: Any = None
        self._logs_sem = asyncio.Semaphore(self.LOGS_CONCURRENCY)
        self._stream_groups: OrderedDict[str, str] = OrderedDict()
        self.calls: dict[str, int] = {}
        self.throttles: dict[str, int] = {}   # by operation, for /metrics
        # Refused credentials, per operation: shown by status and /metrics, and the loops
        # back off on them (backend_auth.py); `base` follows the poll interval (daemon.py).
        self.auth = AuthWatch(log=log)

    # ---------------------------------------------------------------- lifecycle
    def _resolve_region(self, session: AioSession) -> str:
        region = (self.region or os.environ.get("AWS_REGION")
                  or session.get_config_variable("region"))
        if not region:
            raise PermanentBackendError(
                "no AWS region configured: set [aws] region in the config, BATCHD_AWS_REGION, "
                "AWS_REGION or AWS_DEFAULT_REGION, or a region in the AWS profile")
        return region

    def _config(self, *, retries: dict[str, Any], s3: dict[str, Any] | None = None,
                pool: int | None = None) -> AioConfig:
        kwargs: dict[str, Any] = dict(
            connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            max_pool_connections=pool or self.max_pool_connections, retries=retries,
            user_agent=USER_AGENT)
        if s3 is not None:
            kwargs["s3"] = s3
        return AioConfig(**kwargs)

    async def start(self) -> None:
        if self._stack is not None:
            return
        try:
            session = AioSession(profile=self.profile) if self.profile else AioSession()
            region = self._resolve_region(session)
        except bexc.ProfileNotFound as exc:
            raise PermanentBackendError(f"AWS profile not found: {exc}") from exc
        self.region = region
        stack = contextlib.AsyncExitStack()
        try:
            batch_config = self._config(retries={"mode": "standard", "total_max_attempts": 1})
            self.batch = await stack.enter_async_context(session.create_client(
                "batch", region_name=region,
                config=batch_config.merge(AioConfig(parameter_validation=False))))
            # Few calls, some carrying user JSON: botocore names a bad field before sending.
            self.batch_checked = await stack.enter_async_context(session.create_client(
                "batch", region_name=region, config=batch_config))
            s3_pool = max(self.max_pool_connections, self.s3_concurrency)
            s3_retries = {"mode": "standard", "total_max_attempts": 3}
            s3_client = session.create_client(
                "s3", region_name=region,
                config=self._config(retries=s3_retries, s3={"addressing_style": "auto"},
                                    pool=s3_pool))
            s3 = await s3_client.__aenter__()
            if not _is_aws_endpoint(s3.meta.endpoint_url):
                # Endpoint override (moto, MinIO, LocalStack...): virtual-hosted bucket names
                # would not resolve there; path style works everywhere.
                await s3_client.__aexit__(None, None, None)
                s3_client = session.create_client(
                    "s3", region_name=region,
                    config=self._config(retries=s3_retries, s3={"addressing_style": "path"},
                                        pool=s3_pool))
                s3 = await s3_client.__aenter__()
            stack.push_async_exit(s3_client.__aexit__)
            self.s3 = s3
            self.logs = await stack.enter_async_context(session.create_client(
                "logs", region_name=region,
                config=self._config(retries={"mode": "standard", "total_max_attempts": 3},
                                    pool=self.LOGS_CONCURRENCY * 2)))
        except BaseException:
            await stack.aclose()
            raise
        self._session, self._stack = session, stack
        self.outputs.client = self.s3
        if self.log is not None:
            self.log.info("aws_backend_started", region=region,
                          batch_endpoint=self.batch.meta.endpoint_url,
                          s3_endpoint=self.s3.meta.endpoint_url,
                          logs_endpoint=self.logs.meta.endpoint_url,
                          rate_ceiling=self.budget.ceiling)

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self.batch = self.batch_checked = self.s3 = self.logs = None
        self.outputs.client = None
        await self.budget.aclose()      # no dispatcher task left behind at loop shutdown

    # ---------------------------------------------------------------- the one call path
    async def _call(self, operation: str, priority: Priority, *, job_name: str | None = None,
                    **params: Any) -> dict[str, Any]:
        """One Batch API call under the rate budget, with the outcome fed back to it."""
        client = self.batch if operation in UNVALIDATED else self.batch_checked
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
        if self.logs is None:
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
                    response = await self.logs.get_log_events(**params)
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
        result = []
        for q in details:
            name = q.get("jobQueueName", "")
            if name not in wanted and q.get("jobQueueArn") not in wanted:
                continue
            max_vcpus: float | None = None
            problems = []
            for entry in q.get("computeEnvironmentOrder", []):
                ce = ces.get(entry.get("computeEnvironment", ""))
                if ce is None:
                    continue
                if ce.get("state") != "ENABLED" or ce.get("status") not in (None, "VALID"):
                    problems.append(f"compute environment {ce.get('computeEnvironmentName')} "
                                    f"is {ce.get('state')}/{ce.get('status')}"
                                    + (f": {ce['statusReason']}" if ce.get("statusReason")
                                       else ""))
                cap = (ce.get("computeResources") or {}).get("maxvCpus")
                if cap is not None:
                    max_vcpus = max(max_vcpus or 0.0, float(cap))
            reason = q.get("statusReason")
            if problems:
                reason = "; ".join(([reason] if reason else []) + problems)
            result.append(QueueInfo(name=name, state=q.get("state"), status=q.get("status"),
                                    status_reason=reason, max_vcpus=max_vcpus,
                                    max_memory=None))
        return result


# The calls made per job, with parameters batchd builds from already-checked input (typed by
# submit_params; tests/unit check them with a validating client): botocore's validation of
# every request was ~4 % of the daemon's CPU at a 400 TPS budget. Everything else (job
# definitions are user JSON) goes through `batch_checked`, which validates before sending.
UNVALIDATED = frozenset({"SubmitJob", "DescribeJobs"})


def _user_agent() -> str:
    return (f"batchd/{__version__} aiobotocore/{aiobotocore.__version__} "
            f"botocore/{botocore.__version__} Python/{platform.python_version()}")


# A fixed User-Agent names batchd in CloudTrail, and spares botocore rebuilding its default one
# twice per request (~7 % of the daemon's CPU at a 400 TPS budget).
USER_AGENT = _user_agent()


def _snake(operation: str) -> str:
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
