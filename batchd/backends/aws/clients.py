"""The AWS backend's long-lived aiobotocore clients: Batch twice, S3 and CloudWatch Logs.

All four come from one `AioSession` that follows the standard AWS configuration: credential
chain, `profile`, region (the configured one, then `AWS_REGION`, then `AWS_DEFAULT_REGION` /
the profile's region) and the standard endpoint overrides (`AWS_ENDPOINT_URL`,
`AWS_ENDPOINT_URL_BATCH`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`, or
`endpoint_url` in the profile's config; botocore resolves them and aiobotocore goes through
the same code). The only tuning is public `AioConfig`: a fixed user agent, pool sizes, no
client-side retries on Batch, and no parameter validation on the Batch client that sends the
two calls made for every job (`UNVALIDATED`), whose parameters batchd builds itself. Every
other Batch call, job definitions (user JSON) first, goes through a second Batch client that
validates.

The Batch clients never retry by themselves (`total_max_attempts=1`): a retry behind the rate
budget's back would spend quota the budget does not know about and, for SubmitJob, could
create a duplicate job. batchd's loops retry, under the budget.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any
from urllib.parse import urlparse

import aiobotocore
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as bexc

from batchd import __version__
from batchd.errors import PermanentBackendError

__all__ = ["UNVALIDATED", "USER_AGENT", "AwsClients"]

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

_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".on.aws")


def _is_aws_endpoint(url: str | None) -> bool:
    host = (urlparse(url).hostname or "") if url else ""
    return host.endswith(_AWS_SUFFIXES)


class AwsClients:
    """The four clients of one backend, opened together by `open()` and closed together by
    `close()`; each attribute is None while they are not open."""

    def __init__(self, *, profile: str | None, connect_timeout: float, read_timeout: float,
                 max_pool_connections: int, s3_pool: int, logs_pool: int) -> None:
        self.profile = profile
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_pool_connections = max_pool_connections
        self.s3_pool = s3_pool
        self.logs_pool = logs_pool
        self._stack: contextlib.AsyncExitStack | None = None
        self._session: AioSession | None = None
        self.batch: Any = None            # UNVALIDATED operations, parameter validation off
        self.batch_checked: Any = None    # every other Batch operation, validated
        self.s3: Any = None
        self.logs: Any = None

    @property
    def is_open(self) -> bool:
        return self._stack is not None

    def batch_for(self, operation: str) -> Any:
        """The Batch client that sends `operation` (None while not open)."""
        return self.batch if operation in UNVALIDATED else self.batch_checked

    # ---------------------------------------------------------------- configuration
    @staticmethod
    def _resolve_region(session: AioSession, configured: str | None) -> str:
        region = (configured or os.environ.get("AWS_REGION")
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

    # ---------------------------------------------------------------- lifecycle
    async def open(self, region: str | None) -> str:
        """Open every client in `region` (None: the standard AWS configuration's) and return
        the region used. Raises PermanentBackendError for a missing profile or region."""
        try:
            session = AioSession(profile=self.profile) if self.profile else AioSession()
            region = self._resolve_region(session, region)
        except bexc.ProfileNotFound as exc:
            raise PermanentBackendError(f"AWS profile not found: {exc}") from exc
        stack = contextlib.AsyncExitStack()
        try:
            batch_config = self._config(retries={"mode": "standard", "total_max_attempts": 1})
            self.batch = await stack.enter_async_context(session.create_client(
                "batch", region_name=region,
                config=batch_config.merge(AioConfig(parameter_validation=False))))
            # Few calls, some carrying user JSON: botocore names a bad field before sending.
            self.batch_checked = await stack.enter_async_context(session.create_client(
                "batch", region_name=region, config=batch_config))
            self.s3 = await self._open_s3(session, region, stack)
            self.logs = await stack.enter_async_context(session.create_client(
                "logs", region_name=region,
                config=self._config(retries={"mode": "standard", "total_max_attempts": 3},
                                    pool=self.logs_pool)))
        except BaseException:
            await stack.aclose()
            raise
        self._session, self._stack = session, stack
        return region

    async def _open_s3(self, session: AioSession, region: str,
                       stack: contextlib.AsyncExitStack) -> Any:
        s3_retries = {"mode": "standard", "total_max_attempts": 3}
        s3_client = session.create_client(
            "s3", region_name=region,
            config=self._config(retries=s3_retries, s3={"addressing_style": "auto"},
                                pool=self.s3_pool))
        s3 = await s3_client.__aenter__()
        if not _is_aws_endpoint(s3.meta.endpoint_url):
            # Endpoint override (moto, MinIO, LocalStack...): virtual-hosted bucket names
            # would not resolve there; path style works everywhere.
            await s3_client.__aexit__(None, None, None)
            s3_client = session.create_client(
                "s3", region_name=region,
                config=self._config(retries=s3_retries, s3={"addressing_style": "path"},
                                    pool=self.s3_pool))
            s3 = await s3_client.__aenter__()
        stack.push_async_exit(s3_client.__aexit__)
        return s3

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self.batch = self.batch_checked = self.s3 = self.logs = None
