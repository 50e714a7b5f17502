"""The small exception hierarchy shared by the daemon, its API and batchctl.

Every error a user can cause or see is a `BatchdError` with a stable `code` (part of the API
contract: batchctl and scripts switch on it) and a `message` written for a scientist, not a
programmer. The API middleware turns them into JSON with `http_status`; anything else is a bug
and becomes a 500 with code "internal".
"""

from __future__ import annotations

from typing import Any


class BatchdError(Exception):
    code = "error"
    http_status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(BatchdError):
    """The request (a CSV, a definition, a flag) is wrong; the message says where and how to
    fix it."""

    code = "invalid_input"
    http_status = 400


class NotFound(BatchdError):
    code = "not_found"
    http_status = 404


class Conflict(BatchdError):
    """The request clashes with existing state (a project that already exists, a running
    workflow)."""

    code = "conflict"
    http_status = 409


class PermissionDenied(BatchdError):
    code = "permission_denied"
    http_status = 403


class PayloadTooLarge(BatchdError):
    code = "payload_too_large"
    http_status = 413


class Unavailable(BatchdError):
    """batchd cannot take new work right now (disk full, read-only state dir, shutting down)."""

    code = "unavailable"
    http_status = 503


class BackendError(BatchdError):
    """A call to the job backend (AWS or local) failed.

    `kind` is one of "throttled" (slow down and retry), "transient" (network/5xx: retry later)
    or "permanent" (the request itself is wrong: retrying cannot help).
    """

    code = "backend_error"
    http_status = 502

    def __init__(self, message: str, *, kind: str = "transient", aws_code: str | None = None,
                 **details: Any) -> None:
        super().__init__(message, kind=kind, aws_code=aws_code, **details)
        self.kind = kind
        self.aws_code = aws_code

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "transient")


class Throttled(BackendError):
    def __init__(self, message: str = "AWS asked us to slow down (API rate limit reached)",
                 **details: Any) -> None:
        super().__init__(message, kind="throttled", **details)


class TransientBackendError(BackendError):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, kind="transient", **details)


class PermanentBackendError(BackendError):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, kind="permanent", **details)


class SubmitOutcomeUnknown(BackendError):
    """SubmitJob may or may not have created the job (response lost). Never retry blindly:
    reconcile by job name first."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, kind="transient", **details)


BY_CODE: dict[str, type[BatchdError]] = {
    cls.code: cls
    for cls in (BatchdError, InvalidInput, NotFound, Conflict, PermissionDenied, PayloadTooLarge,
                Unavailable, BackendError)
}
