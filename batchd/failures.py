"""Why an attempt failed, and what to do about it.

`classify` reads the same fields AWS Batch reports (statusReason, the container's reason, the
exit code) and names one failure class; the local backend reports its failures in AWS's words so
it lands in the same classes. `decide` applies the analysis' retry policy and returns either a
`Retry` (with the resources of the next attempt) or a `GiveUp`, each with a sentence a scientist
can act on. Both are pure functions: every rule here is unit-tested on realistic payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SPOT = "spot"
OOM = "oom"
TIMEOUT = "timeout"
IMAGE = "image"
MISCONFIGURATION = "misconfiguration"
DEPENDENCY = "dependency"
APP = "app"
OUTPUTS_MISSING = "outputs_missing"
LOST = "lost"
CANCELLED = "cancelled"
SUBMIT_REJECTED = "submit_rejected"
REGISTRY_THROTTLED = "registry_throttled"

CLASSES = (SPOT, OOM, TIMEOUT, IMAGE, MISCONFIGURATION, DEPENDENCY, APP, OUTPUTS_MISSING, LOST,
           CANCELLED, SUBMIT_REJECTED, REGISTRY_THROTTLED)

_IMAGE_MARKERS = ("CannotPullContainerError", "CannotStartContainerError",
                  "CannotCreateContainerError", "CannotInspectContainerError",
                  "ResourceInitializationError", "CannotStopContainerError")
# A registry's rate limit (Docker Hub's "toomanyrequests", HTTP 429) says nothing about the
# image: the same pull works a little later, so it must not give the job up as an image error.
_REGISTRY_THROTTLE_MARKERS = ("toomanyrequests", "too many requests", "429 too many",
                              "rate limit exceeded", "pull rate limit")


def classify(status_reason: str | None, container_reason: str | None,
             exit_code: int | None) -> str:
    reason = status_reason or ""
    container = container_reason or ""
    both = f"{reason}\n{container}"
    if "Host EC2" in reason and "terminated" in reason:
        return SPOT
    if "OutOfMemoryError" in both or "killed due to memory usage" in both.lower():
        return OOM
    if "exceeded timeout" in reason:
        return TIMEOUT
    if any(marker in both for marker in _IMAGE_MARKERS):
        lowered = both.lower()
        if any(marker in lowered for marker in _REGISTRY_THROTTLE_MARKERS):
            return REGISTRY_THROTTLED
        return IMAGE
    if "MISCONFIGURATION" in both:
        return MISCONFIGURATION
    if "Dependent Job failed" in reason:
        return DEPENDENCY
    if exit_code is None and not container and ("cancel" in reason.lower()
                                                or "terminat" in reason.lower()):
        return CANCELLED
    return APP


# The bounds of a retry policy, the daemon's [retry] defaults and a step's "retry" alike:
# every attempt is paid for, and beyond them a number is a typo. MAX_MEMORY (MiB) is the
# largest EC2 instance's (u-24tb1.112xlarge, 24 TiB); asking for more waits RUNNABLE forever.
MAX_ATTEMPTS = 20
MAX_SPOT_ATTEMPTS = 100
MAX_FACTOR = 16.0
MAX_MEMORY = 24 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    spot_attempts: int = 5
    memory_factor: float = 2.0
    max_memory: int = 256_000
    timeout_factor: float = 1.0

    @classmethod
    def merged(cls, defaults: Any, override: Mapping[str, Any] | None) -> RetryPolicy:
        values = {name: getattr(defaults, name) for name in cls.__dataclass_fields__}
        values.update(override or {})
        return cls(**values)


@dataclass(frozen=True)
class FailedAttempt:
    """What `decide` needs to know about the attempt that just failed."""

    failure_class: str
    detail: str                 # statusReason / container reason / missing outputs, as reported
    exit_code: int | None
    memory: int | None          # MiB the attempt had (None: job definition default, unknown)
    vcpus: float | None
    timeout: int | None
    spot_failures: int          # previous spot failures of this job (not counting this one)
    other_failures: int         # previous non-spot failures of this job (not counting this one)


@dataclass(frozen=True)
class Retry:
    reason: str
    failure_class: str
    memory: int | None
    vcpus: float | None
    timeout: int | None
    spot: bool                  # counts against spot_attempts instead of max_attempts


@dataclass(frozen=True)
class GiveUp:
    reason: str
    failure_class: str
    cancelled: bool = False


def _mib(value: int | None) -> str:
    return f"{value:,} MiB" if value is not None else "the job definition's memory"


def describe(failure: FailedAttempt) -> str:
    cls, detail = failure.failure_class, failure.detail
    if cls == SPOT:
        return "the spot instance running it was reclaimed by AWS"
    if cls == REGISTRY_THROTTLED:
        return f"the container registry limited its image pulls ({detail})"
    if cls == OOM:
        return f"it ran out of memory with {_mib(failure.memory)}"
    if cls == TIMEOUT:
        limit = f"{failure.timeout:,} s" if failure.timeout else "its"
        return f"it ran longer than {limit} timeout"
    if cls == IMAGE:
        return f"its container could not be started ({detail})"
    if cls == MISCONFIGURATION:
        return f"no compute environment of its queue can ever run it ({detail})"
    if cls == DEPENDENCY:
        return "a job it depended on failed"
    if cls == OUTPUTS_MISSING:
        return f"it reported success but did not write its outputs ({detail})"
    if cls == LOST:
        return f"AWS Batch lost track of it ({detail})"
    if cls == CANCELLED:
        return f"it was cancelled ({detail})"
    if cls == SUBMIT_REJECTED:
        return f"AWS Batch rejected the submission ({detail})"
    code = f"exit code {failure.exit_code}" if failure.exit_code is not None else "no exit code"
    return f"the program failed ({code}{'; ' + detail if detail else ''})"


def decide(failure: FailedAttempt, policy: RetryPolicy) -> Retry | GiveUp:
    cls = failure.failure_class
    what = describe(failure)
    if cls in (IMAGE, MISCONFIGURATION, SUBMIT_REJECTED):
        fix = {IMAGE: "fix the image or command in the job definition",
               MISCONFIGURATION: "ask for fewer vCPUs/less memory or use a queue with larger "
                                 "instances",
               SUBMIT_REJECTED: "fix the job definition, queue or parameters"}[cls]
        return GiveUp(f"{what}; not retried because retrying cannot help: {fix}, then "
                      "`batchctl resubmit`", cls)
    if cls == CANCELLED:
        return GiveUp(what, cls, cancelled=True)
    if cls in (SPOT, REGISTRY_THROTTLED):
        # Not the job's fault either way: counted with spot reclaims (infrastructure).
        used = failure.spot_failures + 1
        if used < policy.spot_attempts:
            return Retry(f"{what}; retrying with the same resources (spot retry {used} of "
                         f"{policy.spot_attempts - 1})", cls, failure.memory, failure.vcpus,
                         failure.timeout, spot=True)
        fix = ("consider an on-demand queue" if cls == SPOT else
               "use a registry mirror (ECR pull-through cache) or registry credentials")
        return GiveUp(f"{what} {used} times (retry.spot_attempts = {policy.spot_attempts}); "
                      f"{fix}", cls)
    attempts_used = failure.other_failures + 1
    if attempts_used >= policy.max_attempts:
        return GiveUp(f"{what}; gave up after {attempts_used} failed attempt"
                      f"{'s' if attempts_used != 1 else ''} (retry.max_attempts = "
                      f"{policy.max_attempts})", cls)
    left = f"attempt {attempts_used + 1} of {policy.max_attempts}"
    memory, timeout = failure.memory, failure.timeout
    if cls == OOM:
        if memory is None:
            return GiveUp(f"{what}, and batchd does not know how much memory it had; resubmit "
                          "with `batchctl resubmit --memory MiB`", cls)
        if memory >= policy.max_memory:
            return GiveUp(f"{what}, already the most allowed (retry.max_memory = "
                          f"{policy.max_memory:,} MiB); raise max_memory or split the input",
                          cls)
        memory = min(int(memory * policy.memory_factor), policy.max_memory)
        return Retry(f"{what}; retrying with {memory:,} MiB ({left})", cls, memory,
                     failure.vcpus, timeout, spot=False)
    if cls == TIMEOUT and timeout and policy.timeout_factor > 1:
        timeout = int(timeout * policy.timeout_factor)
        return Retry(f"{what}; retrying with a {timeout:,} s timeout ({left})", cls, memory,
                     failure.vcpus, timeout, spot=False)
    return Retry(f"{what}; retrying ({left})", cls, memory, failure.vcpus, timeout, spot=False)
