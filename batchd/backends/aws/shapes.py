"""Translation between batchd's types and AWS Batch's shapes: a SubmitRequest -> SubmitJob's
parameters, DescribeJobs' JobDetail (or ListJobs' JobSummary) -> JobStatus, and a
DescribeJobQueues entry with its compute environments -> QueueInfo. Pure."""

from __future__ import annotations

from typing import Any

from batchd.backends.base import JobStatus, QueueInfo, SubmitRequest

__all__ = ["custom_log_group", "job_status_from_detail", "queue_info", "submit_params"]


def _resources(requirements: list[dict[str, Any]] | None) -> tuple[float | None, int | None]:
    vcpus = memory = None
    for item in requirements or []:
        kind = item.get("type")
        value: Any = item.get("value")     # a string per AWS; float() rejects anything else
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


def custom_log_group(detail: dict[str, Any]) -> str | None:
    conf = (detail.get("container") or {}).get("logConfiguration") or {}
    if conf.get("logDriver") == "awslogs":
        return (conf.get("options") or {}).get("awslogs-group")
    return None


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


def queue_info(queue: dict[str, Any], ces: dict[str, dict[str, Any]]) -> QueueInfo:
    """One DescribeJobQueues entry -> QueueInfo. `ces`: DescribeComputeEnvironments' entries
    by ARN and by name; a compute environment that is not enabled and valid is named in the
    status reason, and the capacity is the largest `maxvCpus` of the queue's environments."""
    max_vcpus: float | None = None
    problems = []
    for entry in queue.get("computeEnvironmentOrder", []):
        ce = ces.get(entry.get("computeEnvironment", ""))
        if ce is None:
            continue
        if ce.get("state") != "ENABLED" or ce.get("status") not in (None, "VALID"):
            problems.append(f"compute environment {ce.get('computeEnvironmentName')} "
                            f"is {ce.get('state')}/{ce.get('status')}"
                            + (f": {ce['statusReason']}" if ce.get("statusReason") else ""))
        cap = (ce.get("computeResources") or {}).get("maxvCpus")
        if cap is not None:
            max_vcpus = max(max_vcpus or 0.0, float(cap))
    reason = queue.get("statusReason")
    if problems:
        reason = "; ".join(([reason] if reason else []) + problems)
    return QueueInfo(name=queue.get("jobQueueName", ""), state=queue.get("state"),
                     status=queue.get("status"), status_reason=reason, max_vcpus=max_vcpus,
                     max_memory=None)
