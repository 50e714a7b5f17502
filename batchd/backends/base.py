"""The interface every job backend implements, and the value types that cross it.

The daemon's loops only ever talk to a `Backend`; they never know whether jobs run on AWS
Batch or as local processes. The shapes deliberately mirror AWS Batch (state names, failure
reasons, job names) so that the same failure classification and the same store serve both.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchd.backends.auth import AuthWatch

# AWS Batch job states, in lifecycle order.
ACTIVE_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
TERMINAL_STATES = ("SUCCEEDED", "FAILED")
BACKEND_STATES = ACTIVE_STATES + TERMINAL_STATES

DESCRIBE_BATCH = 100  # DescribeJobs accepts at most 100 ids per call


@dataclass(frozen=True)
class SubmitRequest:
    """Everything needed to start one attempt of one job."""

    job_name: str                      # deterministic per attempt, already sanitised
    queue: str
    job_definition: str                # "name" or "name:revision"
    parameters: dict[str, str] = field(default_factory=dict)
    vcpus: float | None = None         # override; None = job definition's value
    memory: int | None = None          # MiB; None = job definition's value
    command: list[str] | None = None   # containerOverrides.command
    environment: dict[str, str] = field(default_factory=dict)
    timeout: int | None = None         # attemptDurationSeconds
    tags: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None         # local backend only: the job's working directory


@dataclass(frozen=True)
class JobStatus:
    """One job as the backend describes it (a subset of DescribeJobs' JobDetail)."""

    job_id: str
    job_name: str
    status: str                        # one of BACKEND_STATES
    status_reason: str | None = None
    exit_code: int | None = None
    container_reason: str | None = None
    log_stream: str | None = None
    created_at: int | None = None      # epoch milliseconds, as AWS reports them
    started_at: int | None = None
    stopped_at: int | None = None
    vcpus: float | None = None
    memory: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES


@dataclass(frozen=True)
class QueueInfo:
    name: str
    state: str | None = None           # ENABLED / DISABLED
    status: str | None = None          # VALID / INVALID / ...
    status_reason: str | None = None
    max_vcpus: float | None = None     # largest capacity any compute environment offers
    max_memory: int | None = None      # MiB, largest single instance (None = unknown)


class OutputStore(abc.ABC):
    """Answers "do these outputs exist?" for s3:// URIs and local paths.

    Returns, per URI, True (exists), False (definitely missing) or None (could not tell:
    permission error, throttling, network; the caller must retry later, never treat it as
    missing).
    """

    @abc.abstractmethod
    async def exists_many(self, uris: list[str],
                          groups: Sequence[Sequence[str]] | None = None
                          ) -> dict[str, bool | None]:
        """`groups`: an optional hint, URIs that likely sit side by side (one sample's
        outputs of consecutive steps), which an object store may answer in one request."""

    async def close(self) -> None:  # pragma: no cover - default no-op
        return None


class Backend(abc.ABC):
    name: str = "abstract"
    outputs: OutputStore
    # Credentials the service refuses, per operation (backends/auth.py): the loops back off on
    # them and status shows them. None for a backend whose credentials never expire (local).
    auth: AuthWatch | None = None

    async def start(self) -> None:  # noqa: B027 -- optional hook, no-op by default
        """Open clients / recover state. Called once before any other method."""

    async def run(self) -> None:  # noqa: B027 -- optional hook, no-op by default
        """Background work the backend needs (the local scheduler). Runs in the daemon's
        TaskGroup until cancelled; the default does nothing and returns."""

    async def close(self) -> None:  # noqa: B027 -- optional hook, no-op by default
        """Release clients and resources. Must not kill jobs: jobs outlive the daemon."""

    @abc.abstractmethod
    async def register_job_definition(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Register a job definition given in RegisterJobDefinition format. Returns
        {"jobDefinitionName", "revision", "jobDefinitionArn"}."""

    @abc.abstractmethod
    async def list_job_definitions(self) -> list[dict[str, Any]]:
        """Active job definitions, each {"jobDefinitionName", "revision", "status",
        "containerProperties", "parameters"}."""

    @abc.abstractmethod
    async def submit(self, request: SubmitRequest) -> str:
        """Start one attempt; returns the backend's job id. Raises BackendError (classified);
        SubmitOutcomeUnknown when the job may have been created anyway."""

    @abc.abstractmethod
    async def describe(self, job_ids: list[str]) -> list[JobStatus]:
        """Describe at most DESCRIBE_BATCH jobs. Ids the backend no longer knows are simply
        absent from the result."""

    @abc.abstractmethod
    async def find_by_name(self, job_name: str, queue: str) -> JobStatus | None:
        """The job with this exact name in this queue, if the backend has it (reconciliation
        after a crash or a lost SubmitJob response)."""

    @abc.abstractmethod
    async def cancel(self, job_id: str, reason: str, *, terminate: bool) -> None:
        """CancelJob (queued jobs) or TerminateJob (STARTING/RUNNING) when terminate=True."""

    @abc.abstractmethod
    def fetch_logs(self, log_stream: str) -> AsyncIterator[str]:
        """Every line of a job's log, all pages, in order."""

    @abc.abstractmethod
    async def queues(self, names: list[str]) -> list[QueueInfo]:
        """The named job queues' own state and capacity."""
