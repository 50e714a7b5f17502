"""The AWS Batch backend (aiobotocore).

One long-lived client per service (batch, s3, logs), created in `start()` from one `AioSession`
that follows the standard AWS configuration: credential chain, `profile`, region (`region` arg,
then `AWS_REGION`, then `AWS_DEFAULT_REGION` / the profile's region) and the standard endpoint
overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_BATCH`, `AWS_ENDPOINT_URL_S3`,
`AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, or `endpoint_url` in the profile's config; botocore
resolves them and aiobotocore goes through the same code).

Every Batch call waits for the account-wide `RateBudget` first and reports the outcome back
(success / throttled / 5xx). The Batch client never retries by itself
(`total_max_attempts=1`): a retry behind the budget's back would spend quota the budget does
not know about and, for SubmitJob, could create a duplicate job. batchd's loops retry, under
the budget, using the error's `kind`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
from collections import OrderedDict
from typing import Any, AsyncIterator
from urllib.parse import urlparse

import aiobotocore
import aiohttp
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as bexc
from botocore.validate import validate_parameters

from .. import __version__
from ..errors import (BackendError, PermanentBackendError, SubmitOutcomeUnknown, Throttled,
                      TransientBackendError)
from ..ratelimit import Priority, RateBudget
from . import fastparse
from .base import DESCRIBE_BATCH, Backend, JobStatus, QueueInfo, SubmitRequest
from .s3outputs import S3OutputStore

__all__ = ["AwsBackend", "classify_client_error", "job_status_from_detail"]

THROTTLE_CODES = frozenset({
    "TooManyRequestsException", "ThrottlingException", "Throttling", "ThrottledException",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException",
    "TooManyRequests", "SlowDown", "ProvisionedThroughputExceededException",
})

# Credentials that are missing, expired or not (yet) allowed. These are fixed outside batchd
# (refresh the SSO login, fix the role) and then everything should carry on, so they are
# "transient": failing 10,000 jobs because a token expired at 3 am would be the wrong answer.
AUTH_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
    "UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
    "AccessDenied", "AccessDeniedException", "AuthFailure", "MissingAuthenticationToken",
    "InvalidAccessKeyId", "InvalidToken",
})

CREDENTIAL_ERRORS: tuple[type[Exception], ...] = tuple(
    cls for cls in (getattr(bexc, name, None) for name in (
        "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
        "TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError",
        "NoAuthTokenError", "RefreshWithMFAUnsupportedError", "InvalidConfigError",
        "ProfileNotFound"))
    if cls is not None)

_SUBMIT = "SubmitJob"


def _sent(exc: BaseException) -> bool:
    """Could the request have reached the server? False only when provably not sent."""
    if isinstance(exc, (bexc.ConnectTimeoutError,)):
        return False
    if isinstance(exc, bexc.EndpointConnectionError):
        inner = getattr(exc, "kwargs", {}).get("error")
        # ClientConnectorError (refused, unreachable, DNS) happens while connecting.
        return not isinstance(inner, (aiohttp.ClientConnectorError, socket.gaierror))
    return True


def classify_client_error(exc: BaseException, *, operation: str | None = None,
                          service: str = "AWS Batch", job_name: str | None = None
                          ) -> BackendError:
    """Turn any exception from an AWS call into batchd's classified `BackendError`.

    - throttling (429, TooManyRequestsException, ThrottlingException, SlowDown) -> Throttled
    - 5xx, connection errors, timeouts -> TransientBackendError
    - for SubmitJob, anything that may have happened after the request left (read timeout,
      connection reset/closed, 5xx) -> SubmitOutcomeUnknown: the job may exist
    - credentials missing/expired/denied -> TransientBackendError (fixed outside batchd)
    - other 4xx (ClientException, validation) -> PermanentBackendError with AWS's message
    """
    if isinstance(exc, BackendError):
        return exc
    op = operation
    if op is None and isinstance(exc, bexc.ClientError):
        op = exc.operation_name
    submit = op == _SUBMIT
    what = f"job {job_name}" if job_name else "the job"

    if isinstance(exc, bexc.ClientError):
        error = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or error.get("message") or "").strip()
        status = meta.get("HTTPStatusCode")
        try:
            status = int(status) if status is not None else None
        except (TypeError, ValueError):
            status = None
        if not code and status is not None:
            code = str(status)
        details: dict[str, Any] = {"aws_code": code or None, "http_status": status,
                                   "operation": op, "request_id": meta.get("RequestId")}
        said = f": {message}" if message else ""
        if code in THROTTLE_CODES or status == 429:
            return Throttled(f"{service} asked us to slow down ({op}: API rate limit "
                             f"reached); batchd will retry more slowly", **details)
        if status is not None and status >= 500:
            if submit:
                return SubmitOutcomeUnknown(
                    f"{service} failed while creating {what} (HTTP {status} {code}{said}); "
                    "the job may exist anyway, so batchd will look it up by name before "
                    "sending it again", **details)
            return TransientBackendError(
                f"{service} had an internal error ({op}: HTTP {status} {code}{said}); "
                "batchd will retry", **details)
        if code in AUTH_CODES or status in (401, 403):
            return TransientBackendError(
                f"{service} refused our credentials or permissions ({op}: {code}{said}). "
                "Check the AWS credentials/role batchd runs with (an expired SSO login or "
                "session token is the usual cause); batchd retries until it works",
                auth=True, **details)
        if submit:
            text = f"AWS Batch rejected {what}{said or ': ' + code}"
        elif op:
            text = f"{service} rejected the {op} request{said or ': ' + code}"
        else:
            text = f"{service} rejected the request{said or ': ' + code}"
        return PermanentBackendError(text, **details)

    if isinstance(exc, CREDENTIAL_ERRORS):
        return TransientBackendError(
            f"no usable AWS credentials for {service} ({exc}). Configure the standard AWS "
            "credential chain (environment, profile, SSO login, instance role); batchd "
            "retries until it works", auth=True, operation=op)

    if isinstance(exc, bexc.ParamValidationError):
        return PermanentBackendError(f"batchd built an invalid {op or 'AWS'} request: {exc}",
                                     operation=op)

    if isinstance(exc, (bexc.BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError,
                        OSError)):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url")
        where = f" at {endpoint}" if endpoint else ""
        kind_text = type(exc).__name__
        if submit and _sent(exc):
            return SubmitOutcomeUnknown(
                f"the answer to SubmitJob for {what} was lost ({kind_text}: {exc}); the job "
                "may exist anyway, so batchd will look it up by name before sending it again",
                operation=op, error=kind_text)
        return TransientBackendError(
            f"could not reach {service}{where} ({kind_text}: {exc}); batchd will retry",
            operation=op, error=kind_text)

    return TransientBackendError(f"unexpected error calling {service} {op or ''}: "
                                 f"{type(exc).__name__}: {exc}", operation=op,
                                 error=type(exc).__name__)


# ------------------------------------------------------------------------------- mapping
def _resources(requirements: list[dict[str, Any]] | None) -> tuple[float | None, int | None]:
    vcpus = memory = None
    for item in requirements or []:
        kind, value = item.get("type"), item.get("value")
        try:
            if kind == "VCPU":
                vcpus = float(value)
            elif kind == "MEMORY":
                memory = int(float(value))
        except (TypeError, ValueError):
            continue
    return vcpus, memory


def job_status_from_detail(detail: dict[str, Any]) -> JobStatus:
    """DescribeJobs' JobDetail (or ListJobs' JobSummary) -> JobStatus."""
    container = detail.get("container") or {}
    attempts = detail.get("attempts") or []
    last = (attempts[-1].get("container") or {}) if attempts else {}
    exit_code = container.get("exitCode")
    if exit_code is None:
        exit_code = last.get("exitCode")
    reason = container.get("reason") or last.get("reason")
    stream = container.get("logStreamName") or last.get("logStreamName")
    vcpus, memory = _resources(container.get("resourceRequirements"))
    if vcpus is None and container.get("vcpus") is not None:
        vcpus = float(container["vcpus"])
    if memory is None and container.get("memory") is not None:
        memory = int(container["memory"])
    return JobStatus(
        job_id=detail["jobId"], job_name=detail.get("jobName", ""),
        status=detail.get("status", "SUBMITTED"), status_reason=detail.get("statusReason"),
        exit_code=int(exit_code) if exit_code is not None else None,
        container_reason=reason, log_stream=stream,
        created_at=detail.get("createdAt"), started_at=detail.get("startedAt"),
        stopped_at=detail.get("stoppedAt"), vcpus=vcpus, memory=memory)


def _custom_log_group(detail: dict[str, Any]) -> str | None:
    conf = (detail.get("container") or {}).get("logConfiguration") or {}
    if conf.get("logDriver") == "awslogs":
        return (conf.get("options") or {}).get("awslogs-group")
    return None


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".on.aws")


def _is_aws_endpoint(url: str | None) -> bool:
    host = (urlparse(url).hostname or "") if url else ""
    return host.endswith(_AWS_SUFFIXES)


class AwsBackend(Backend):
    name = "aws"
    LOGS_CONCURRENCY = 4
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
        self.batch: Any = None
        self.s3: Any = None
        self.logs: Any = None
        self._logs_sem = asyncio.Semaphore(self.LOGS_CONCURRENCY)
        self._stream_groups: OrderedDict[str, str] = OrderedDict()
        self.calls: dict[str, int] = {}
        self.throttles: dict[str, int] = {}   # by operation, for /metrics

    # ---------------------------------------------------------------- lifecycle
    def _resolve_region(self, session: AioSession) -> str:
        region = (self.region or os.environ.get("AWS_REGION")
                  or session.get_config_variable("region"))
        if not region:
            raise PermanentBackendError(
                "no AWS region configured: set [aws] region in the config, --aws-region, "
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
            fastparse.install(session)
            region = self._resolve_region(session)
        except bexc.ProfileNotFound as exc:
            raise PermanentBackendError(f"AWS profile not found: {exc}") from exc
        self.region = region
        stack = contextlib.AsyncExitStack()
        try:
            batch_config = self._config(retries={"mode": "standard", "total_max_attempts": 1})
            # Validated in _call instead, except where batchd builds every field itself.
            batch_config = batch_config.merge(AioConfig(parameter_validation=False))
            self.batch = await stack.enter_async_context(session.create_client(
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
        self.batch = self.s3 = self.logs = None
        self.outputs.client = None
        await self.budget.aclose()      # no dispatcher task left behind at loop shutdown

    # ---------------------------------------------------------------- the one call path
    async def _call(self, operation: str, priority: Priority, *, job_name: str | None = None,
                    **params: Any) -> dict[str, Any]:
        """One Batch API call under the rate budget, with the outcome fed back to it."""
        if self.batch is None:
            raise TransientBackendError("the AWS backend is not started")
        method = getattr(self.batch, _snake(operation))
        await self.budget.acquire(priority)
        self.calls[operation] = self.calls.get(operation, 0) + 1
        try:
            if operation not in UNVALIDATED:
                validate_parameters(params, self.batch.meta.service_model.operation_model(
                    operation).input_shape)
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
            if self.log is not None:
                self.log.debug("aws_call_failed", operation=operation, kind=error.kind,
                               error=error.message)
            raise error from exc
        self.budget.on_success()
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
    @staticmethod
    def submit_params(request: SubmitRequest) -> dict[str, Any]:
        """SubmitJob's parameters for one request (pure; tested on its own)."""
        params: dict[str, Any] = {"jobName": request.job_name, "jobQueue": request.queue,
                                  "jobDefinition": request.job_definition,
                                  "propagateTags": True}
        if request.parameters:
            params["parameters"] = {str(k): str(v) for k, v in request.parameters.items()}
        overrides: dict[str, Any] = {}
        resources = []
        if request.vcpus is not None:
            vcpus = request.vcpus
            text = str(int(vcpus)) if float(vcpus).is_integer() else str(vcpus)
            resources.append({"type": "VCPU", "value": text})
        if request.memory is not None:
            resources.append({"type": "MEMORY", "value": str(int(request.memory))})
        if resources:
            overrides["resourceRequirements"] = resources
        if request.command is not None:
            overrides["command"] = [str(c) for c in request.command]
        if request.environment:
            overrides["environment"] = [{"name": str(k), "value": str(v)}
                                        for k, v in request.environment.items()]
        if overrides:
            params["containerOverrides"] = overrides
        if request.timeout is not None:
            params["timeout"] = {"attemptDurationSeconds": int(request.timeout)}
        if request.tags:
            params["tags"] = {str(k): str(v) for k, v in request.tags.items()}
        return params

    async def submit(self, request: SubmitRequest) -> str:
        response = await self._call("SubmitJob", Priority.SUBMIT, job_name=request.job_name,
                                    **self.submit_params(request))
        return response["jobId"]

    async def describe(self, job_ids: list[str]) -> list[JobStatus]:
        assert len(job_ids) <= DESCRIBE_BATCH, \
            f"DescribeJobs takes at most {DESCRIBE_BATCH} ids, got {len(job_ids)}"
        if not job_ids:
            return []
        response = await self._call("DescribeJobs", Priority.POLL, jobs=list(job_ids))
        statuses = []
        for detail in response.get("jobs", []):
            status = job_status_from_detail(detail)
            group = _custom_log_group(detail)
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
# submit_params; tests/unit check them against botocore's model): botocore's validation of
# every request was ~4 % of the daemon's CPU at a 400 TPS budget. Everything else (job
# definitions are user JSON) is validated before it is sent.
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
