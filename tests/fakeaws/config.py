"""Configuration of the fake AWS server (all times are *simulated* seconds unless noted).

`FakeConfig.from_dict()` accepts the same keys as the dataclass fields (a JSON config file or
`POST /_fake/config` body); unknown keys raise ValueError so typos do not pass silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class ComputeEnvConfig:
    name: str
    max_vcpus: int = 256                  # capacity shared by every queue that uses this CE
    max_instance_vcpus: float = 64        # largest instance: a job needing more never runs
    max_instance_memory: int = 262144     # MiB, largest instance
    instance_types: list[str] = field(default_factory=lambda: ["optimal"])
    type: str = "SPOT"                    # MANAGED compute resources type: EC2 | SPOT

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComputeEnvConfig:
        return _build(cls, data)


@dataclass
class QueueConfig:
    name: str
    compute_environments: list[str] = field(default_factory=list)  # CE names, in order
    priority: int = 1
    # Shortcut: when compute_environments is empty a CE "<name>-ce" is made with these.
    max_vcpus: int = 256
    max_instance_vcpus: float = 64
    max_instance_memory: int = 262144

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueConfig:
        return _build(cls, data)


DEFAULT_JOB_DEFINITION = {
    "jobDefinitionName": "fake-jobdef", "type": "container",
    "containerProperties": {"image": "public.ecr.aws/docker/library/busybox:latest",
                            "command": ["true"],
                            "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                     {"type": "MEMORY", "value": "2048"}]},
}


@dataclass
class FakeConfig:
    # --- time ---
    time_scale: float = 60.0              # simulated seconds per real second
    submitted_seconds: float = 1.0        # time spent in SUBMITTED
    starting_seconds: float = 5.0         # time spent in STARTING
    duration_mean: float = 300.0          # RUNNING time when nothing else says
    duration_spread: float = 0.5          # uniform in mean*(1 +- spread)
    retention_seconds: float = 86400.0    # finished jobs vanish from Describe/List after this
    # --- topology ---
    compute_environments: list[ComputeEnvConfig] = field(default_factory=list)
    queues: list[QueueConfig] = field(default_factory=lambda: [QueueConfig("default")])
    job_definitions: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(DEFAULT_JOB_DEFINITION)])
    # --- outcomes ---
    seed: int = 0
    spot_rate: float = 0.0                # random per attempt, deterministic given seed+name
    oom_rate: float = 0.0
    app_error_rate: float = 0.0
    rules: list[dict[str, Any]] = field(default_factory=list)   # see outcomes.py
    output_parameters: str = "s3"        # "s3": every parameter value starting with s3://
    # is an output; "named": only parameters `outputs` / `fake_outputs`; "none"
    log_lines: int = 20                   # lines per job attempt log stream
    log_page_size: int = 100              # GetLogEvents page when `limit` is not given
    # --- faults (real time) ---
    tps_limit: float | None = None        # token bucket over all Batch calls; None = off
    tps_burst: float | None = None        # bucket size (default: tps_limit)
    error_5xx_rate: float = 0.0           # random 500/503 ServerException on Batch calls
    drop_submit_response_rate: float = 0.0   # create the job, then lose the response
    drop_submit_response_count: int = 0      # ... for the next N SubmitJob calls
    drop_submit_mode: str = "close"       # "close" (reset connection) | "500" (empty 500)
    list_lag: float = 0.0                 # REAL seconds a new job stays absent from ListJobs
    # (real, like batchd's own settle delay, so a test does not depend on time_scale)
    hold_submit_names: str | None = None  # glob: SubmitJob creates the job, then its answer
    hold_submit_seconds: float = 30.0     # waits for POST /_fake/release (at most this, real)
    throttle_submit_names: str | None = None   # glob: SubmitJob of such a name always 429
    throttle_rate: float = 0.0            # random 429 TooManyRequestsException on Batch calls
    # (on top of tps_limit: AWS throttles by account-wide load a client cannot see)
    s3_503_rate: float = 0.0              # random 503 SlowDown on S3 HEAD and ListObjectsV2
    logs_throttle_rate: float = 0.0       # random ThrottlingException on Logs GetLogEvents
    auto_create_buckets: bool = True
    # --- refused credentials (runtime-switchable) ---
    auth_error_code: str | None = None    # answer HTTP 403 with this code (e.g.
    # ExpiredTokenException, AccessDeniedException) to the Batch calls below; None = off
    auth_error_operations: list[str] = field(default_factory=list)   # empty: every Batch op

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FakeConfig:
        cfg = cls()
        cfg.update(data)
        return cfg

    def update(self, data: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in data.items():
            if key not in names:
                raise ValueError(f"unknown fake config key {key!r}")
            if key == "queues":
                value = [q if isinstance(q, QueueConfig) else QueueConfig.from_dict(q)
                         for q in value]
            elif key == "compute_environments":
                value = [c if isinstance(c, ComputeEnvConfig) else ComputeEnvConfig.from_dict(c)
                         for c in value]
            setattr(self, key, value)

    def resolved_topology(self) -> tuple[list[ComputeEnvConfig], list[QueueConfig]]:
        """CEs (explicit plus one per queue that uses the shortcut) and queues with CE names."""
        ces = [dataclasses.replace(c) for c in self.compute_environments]
        queues = []
        for q in self.queues:
            q = dataclasses.replace(q, compute_environments=list(q.compute_environments))
            if not q.compute_environments:
                ces.append(ComputeEnvConfig(f"{q.name}-ce", max_vcpus=q.max_vcpus,
                                            max_instance_vcpus=q.max_instance_vcpus,
                                            max_instance_memory=q.max_instance_memory))
                q.compute_environments = [f"{q.name}-ce"]
            queues.append(q)
        return ces, queues

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    bad = set(data) - names
    if bad:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(bad)}")
    return cls(**data)


def parse_queue_spec(spec: str) -> QueueConfig:
    """CLI shortcut `name[:max_vcpus[:max_instance_memory_mib[:max_instance_vcpus]]]`."""
    parts = spec.split(":")
    q = QueueConfig(parts[0])
    if len(parts) > 1 and parts[1]:
        q.max_vcpus = int(parts[1])
    if len(parts) > 2 and parts[2]:
        q.max_instance_memory = int(parts[2])
    if len(parts) > 3 and parts[3]:
        q.max_instance_vcpus = float(parts[3])
    return q
