"""AWS errors -> batchd's error classes (throttled, transient, permanent, outcome unknown),
with messages in words a scientist understands.

Every failure of a call to AWS goes through `classify_client_error`: botocore's ClientError
by its code and HTTP status, credential problems, and network/timeouts. For SubmitJob, a
failure after the request may have reached AWS is `SubmitOutcomeUnknown` (look the job up by
name before sending it again), never "failed".
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
from botocore import exceptions as bexc

from batchd.errors import (
    BackendError,
    PermanentBackendError,
    SubmitOutcomeUnknown,
    Throttled,
    TransientBackendError,
)

__all__ = ["AUTH_CODES", "CREDENTIAL_ERRORS", "THROTTLE_CODES", "classify_client_error"]

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
    - for SubmitJob, any exception not recognised here -> SubmitOutcomeUnknown: only an
      answer that proves nothing was created (throttling, a 4xx, a client-side parameter
      error, a connection never made) may be resent or failed without a lookup
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

    if submit:
        # Nothing proves the request was not sent: resending blindly could create it twice.
        return SubmitOutcomeUnknown(
            f"SubmitJob for {what} failed unexpectedly ({type(exc).__name__}: {exc}); the job "
            "may exist anyway, so batchd will look it up by name before sending it again",
            operation=op, error=type(exc).__name__)
    return TransientBackendError(f"unexpected error calling {service} {op or ''}: "
                                 f"{type(exc).__name__}: {exc}", operation=op,
                                 error=type(exc).__name__)
