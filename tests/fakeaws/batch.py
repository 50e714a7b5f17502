"""AWS Batch REST-JSON API (`POST /v1/<operation>`) on top of the lifecycle simulator."""

from __future__ import annotations

import copy
import itertools
import re
import time
import uuid
from collections import OrderedDict
from typing import Any

from .config import ACCOUNT, REGION, FakeConfig
from .errors import ApiError
from .jobs import Job, Simulator

OPERATIONS = {op.lower(): op for op in (
    "SubmitJob", "DescribeJobs", "ListJobs", "CancelJob", "TerminateJob", "DescribeJobQueues",
    "DescribeJobDefinitions", "RegisterJobDefinition", "DescribeComputeEnvironments")}
ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}"
NAME_RX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
MAX_PAYLOAD = 30 * 1024


def client_error(message: str) -> ApiError:
    return ApiError("ClientException", message)


class BatchApi:
    def __init__(self, sim: Simulator, config: FakeConfig) -> None:
        self.sim, self.config = sim, config
        self.jobdefs: dict[str, list[dict[str, Any]]] = {}     # name -> revisions (rev-1 index)
        self._snapshots: OrderedDict[str, list[Job]] = OrderedDict()
        self._snap_ids = itertools.count(1)
        self._listed_from: dict[str, float] = {}   # job id -> monotonic time it is listed
        self.register_defaults()

    def register_defaults(self) -> None:
        self.jobdefs.clear()
        for spec in self.config.job_definitions:
            self.op_RegisterJobDefinition(copy.deepcopy(spec))

    def handle(self, op: str, req: dict[str, Any], size: int = 0) -> dict[str, Any]:
        if op == "SubmitJob" and size > MAX_PAYLOAD:
            raise client_error("SubmitJob request payload exceeds 30 KiB")
        return getattr(self, "op_" + op)(req)

    # -- resolution ----------------------------------------------------------------------
    def queue_name(self, ref: str | None) -> str:
        name = (ref or "").rsplit("job-queue/", 1)[-1]
        if name not in self.sim.queues:
            raise client_error(f"JobQueue {ref} not found.")
        return name

    def jobdef(self, ref: str | None) -> dict[str, Any]:
        ref = ref or ""
        name = ref.rsplit("job-definition/", 1)[-1]
        name, _, rev = name.partition(":")
        revisions = self.jobdefs.get(name)
        if revisions:
            if rev:
                if rev.isdigit() and 1 <= int(rev) <= len(revisions):
                    jd = revisions[int(rev) - 1]
                    if jd["status"] == "ACTIVE":
                        return jd
            else:
                for jd in reversed(revisions):
                    if jd["status"] == "ACTIVE":
                        return jd
        raise client_error(f"Job definition {ref} does not exist.")

    def job(self, job_id: str) -> Job | None:
        return self.sim.jobs.get(job_id)

    # -- SubmitJob -----------------------------------------------------------------------
    def op_SubmitJob(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("jobName") or ""
        if not NAME_RX.match(name):
            raise client_error("Error executing request, Exception : Job name should be 1-128 "
                               "characters long: letters, numbers, hyphens and underscores, "
                               "starting with a letter or number.")
        queue = self.queue_name(req.get("jobQueue"))
        jd = self.jobdef(req.get("jobDefinition"))
        props = jd.get("containerProperties") or {}
        over = req.get("containerOverrides") or {}
        params = dict(jd.get("parameters") or {})
        params.update(req.get("parameters") or {})
        vcpus, memory = _resources(props)
        if "vcpus" in over:
            vcpus = float(over["vcpus"])
        if "memory" in over:
            memory = int(over["memory"])
        over_rr = over.get("resourceRequirements")
        if over_rr:
            ov, om = _resources({"resourceRequirements": over_rr}, None, None)
            vcpus, memory = ov if ov is not None else vcpus, om if om is not None else memory
        env = {e["name"]: e.get("value", "") for e in props.get("environment") or []}
        env.update({e["name"]: e.get("value", "") for e in over.get("environment") or []})
        command = over.get("command") or props.get("command") or []
        command = [params.get(t[5:], t) if t.startswith("Ref::") else t for t in command]
        timeout = (req.get("timeout") or jd.get("timeout") or {}).get("attemptDurationSeconds")
        if timeout is not None and int(timeout) < 60:
            raise client_error("timeout.attemptDurationSeconds must be at least 60 seconds")
        retry = req.get("retryStrategy") or jd.get("retryStrategy")
        if retry and not 1 <= int(retry.get("attempts") or 1) <= 10:
            raise client_error("retryStrategy.attempts must be between 1 and 10")
        depends = req.get("dependsOn") or []
        if len(depends) > 20:
            raise client_error("A job can depend on at most 20 jobs.")
        deps = []
        for d in depends:
            dep = (self.sim.jobs.get(d.get("jobId", ""))
                   or self.sim.forgotten.get(d.get("jobId", "")))
            if dep is None:
                raise client_error(f"Dependent job ID {d.get('jobId')} does not exist.")
            deps.append(dep)
        try:
            self.sim.outcomes.validate(params.get("fake_behaviour") or env.get("FAKE_BEHAVIOUR"))
        except ValueError as e:
            raise client_error(str(e)) from e
        job_id = str(uuid.uuid4())
        tags = dict(jd.get("tags") or {}) if req.get("propagateTags") else {}
        tags.update(req.get("tags") or {})
        job = Job(id=job_id, arn=f"{ARN}:job/{job_id}", name=name, queue=queue,
                  jobdef_arn=jd["jobDefinitionArn"], jobdef_name=jd["jobDefinitionName"],
                  parameters=params, environment=env, command=command, vcpus=vcpus,
                  memory=memory, timeout=int(timeout) if timeout is not None else None,
                  resource_requirements=[{"type": "VCPU", "value": _num(vcpus)},
                                         {"type": "MEMORY", "value": str(memory)}],
                  depends_on=depends, tags=tags, propagate_tags=bool(req.get("propagateTags")),
                  retry_strategy=retry, image=props.get("image", "busybox"))
        self.sim.submit(job, deps)
        if self.config.list_lag > 0:
            self._listed_from[job.id] = time.monotonic() + self.config.list_lag
        return {"jobArn": job.arn, "jobName": name, "jobId": job_id}

    # -- DescribeJobs / ListJobs ---------------------------------------------------------
    def op_DescribeJobs(self, req: dict[str, Any]) -> dict[str, Any]:
        ids = req.get("jobs")
        if not isinstance(ids, list):
            raise client_error("jobs is required")
        if len(ids) > 100:
            raise client_error("Error executing request, Exception : Too many jobs requested. "
                               "Maximum is 100.")
        jobs = self.sim.jobs
        return {"jobs": [self.detail(j) for j in (jobs.get(i) for i in ids) if j is not None]}

    def detail(self, job: Job) -> dict[str, Any]:
        container: dict[str, Any] = {
            "image": job.image, "command": job.command, "memory": job.memory,
            "resourceRequirements": job.resource_requirements}
        if job.environment:
            container["environment"] = [{"name": k, "value": v}
                                        for k, v in job.environment.items()]
        if float(job.vcpus).is_integer():
            container["vcpus"] = int(job.vcpus)
        if job.exit_code is not None:
            container["exitCode"] = job.exit_code
        if job.container_reason is not None:
            container["reason"] = job.container_reason
        if job.log_stream is not None:
            container["logStreamName"] = job.log_stream
        if job.task_id is not None and job.status not in ("SUBMITTED", "PENDING", "RUNNABLE"):
            container["taskArn"] = self.sim._task_arn(job)
        d: dict[str, Any] = {
            "jobArn": job.arn, "jobName": job.name, "jobId": job.id,
            "jobQueue": f"{ARN}:job-queue/{job.queue}", "status": job.status,
            "attempts": job.attempts, "createdAt": job.created_at,
            "dependsOn": job.depends_on, "jobDefinition": job.jobdef_arn,
            "parameters": job.parameters, "container": container, "tags": job.tags,
            "propagateTags": job.propagate_tags, "platformCapabilities": ["EC2"],
            "isCancelled": job.is_cancelled, "isTerminated": job.is_terminated}
        if job.status_reason is not None:
            d["statusReason"] = job.status_reason
        if job.started_at is not None:
            d["startedAt"] = job.started_at
        if job.stopped_at is not None:
            d["stoppedAt"] = job.stopped_at
        if job.timeout is not None:
            d["timeout"] = {"attemptDurationSeconds": job.timeout}
        if job.retry_strategy:
            d["retryStrategy"] = job.retry_strategy
        return d

    def summary(self, job: Job) -> dict[str, Any]:
        s: dict[str, Any] = {"jobArn": job.arn, "jobId": job.id, "jobName": job.name,
                             "createdAt": job.created_at, "status": job.status,
                             "jobDefinition": job.jobdef_arn}
        if job.status_reason is not None:
            s["statusReason"] = job.status_reason
        if job.started_at is not None:
            s["startedAt"] = job.started_at
        if job.stopped_at is not None:
            s["stoppedAt"] = job.stopped_at
        c = {}
        if job.exit_code is not None:
            c["exitCode"] = job.exit_code
        if job.container_reason is not None:
            c["reason"] = job.container_reason
        if c or job.status in ("SUCCEEDED", "FAILED"):
            s["container"] = c
        return s

    def op_ListJobs(self, req: dict[str, Any]) -> dict[str, Any]:
        max_results = int(req.get("maxResults") or 100)
        if not 1 <= max_results <= 100:
            raise client_error("maxResults must be between 1 and 100")
        token = req.get("nextToken")
        if token:
            snap_id, _, offset = token.partition(":")
            jobs = self._snapshots.get(snap_id)
            if jobs is None or not offset.isdigit():
                raise client_error("Invalid nextToken")
            start = int(offset)
        else:
            jobs, start, snap_id = self._list(req), 0, ""
        page = [j for j in jobs[start:start + max_results] if not j.forgotten]
        out: dict[str, Any] = {"jobSummaryList": [self.summary(j) for j in page]}
        if start + max_results < len(jobs):
            if not snap_id:
                snap_id = str(next(self._snap_ids))
                self._snapshots[snap_id] = jobs
                while len(self._snapshots) > 256:
                    self._snapshots.popitem(last=False)
            out["nextToken"] = f"{snap_id}:{start + max_results}"
        return out

    def _list(self, req: dict[str, Any]) -> list[Job]:
        if req.get("arrayJobId") or req.get("multiNodeJobId"):
            return []                    # the fake has no array / multi-node jobs
        queue = self.queue_name(req.get("jobQueue"))
        filters = req.get("filters") or []
        if not filters:
            status = req.get("jobStatus") or "RUNNING"
            return [j for j in self.sim.by_queue_status.get((queue, status), {}).values()
                    if not self._unlisted(j)]
        jobs: list[Job] | None = None
        for f in filters:
            name, values = f.get("name"), f.get("values") or []
            if len(values) != 1:
                raise client_error("A filter must have exactly one value")
            value = values[0]
            if name == "JOB_NAME":
                found = [j for j in self.sim.jobs_named(value) if j.queue == queue]
                jobs = found if jobs is None else [j for j in jobs if j in found]
                continue
            if jobs is None:             # slow path: every job of the queue
                jobs = [j for (q, _s), d in self.sim.by_queue_status.items() if q == queue
                        for j in d.values()]
            if name == "JOB_DEFINITION":
                jobs = [j for j in jobs if _jobdef_match(j, value)]
            elif name == "BEFORE_CREATED_AT":
                jobs = [j for j in jobs if j.created_at < int(value)]
            elif name == "AFTER_CREATED_AT":
                jobs = [j for j in jobs if j.created_at > int(value)]
            else:
                raise client_error(f"Unsupported filter {name}")
        jobs = sorted(jobs or [], key=lambda j: j.created_at)
        return [j for j in jobs if not self._unlisted(j)]

    def _unlisted(self, job: Job) -> bool:
        """ListJobs lags SubmitJob (`list_lag`, real seconds): a new job is not listed yet."""
        until = self._listed_from.get(job.id)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._listed_from[job.id]
            return False
        self.sim.stats.unlisted += 1
        return True

    # -- Cancel / Terminate ------------------------------------------------------------------
    def op_CancelJob(self, req: dict[str, Any]) -> dict[str, Any]:
        job = self._job_for_action(req)
        if job is not None:
            self.sim.cancel(job, req["reason"])
        return {}

    def op_TerminateJob(self, req: dict[str, Any]) -> dict[str, Any]:
        job = self._job_for_action(req)
        if job is not None:
            self.sim.terminate(job, req["reason"])
        return {}

    def _job_for_action(self, req: dict[str, Any]) -> Job | None:
        if not req.get("jobId") or not req.get("reason"):
            raise client_error("jobId and reason are required")
        return self.sim.jobs.get(req["jobId"])        # unknown / forgotten ids: a no-op

    # -- queues, compute environments, job definitions ---------------------------------
    def op_DescribeJobQueues(self, req: dict[str, Any]) -> dict[str, Any]:
        wanted = [r.rsplit("job-queue/", 1)[-1] for r in req.get("jobQueues") or []]
        queues = [self.sim.queues[n] for n in (wanted or self.sim.queues) if n in self.sim.queues]
        items = [{"jobQueueName": q.cfg.name, "jobQueueArn": f"{ARN}:job-queue/{q.cfg.name}",
                  "state": "ENABLED", "status": "VALID", "statusReason": "JobQueue Healthy",
                  "priority": q.cfg.priority, "jobQueueType": "ECS", "tags": {},
                  "computeEnvironmentOrder": [
                      {"order": i + 1,
                       "computeEnvironment": f"{ARN}:compute-environment/{ce.cfg.name}"}
                      for i, ce in enumerate(q.ces)]} for q in queues]
        return _paged(req, items, "jobQueues")

    def op_DescribeComputeEnvironments(self, req: dict[str, Any]) -> dict[str, Any]:
        wanted = [r.rsplit("compute-environment/", 1)[-1]
                  for r in req.get("computeEnvironments") or []]
        ces = [self.sim.ces[n] for n in (wanted or self.sim.ces) if n in self.sim.ces]
        items = [{"computeEnvironmentName": ce.cfg.name,
                  "computeEnvironmentArn": f"{ARN}:compute-environment/{ce.cfg.name}",
                  "ecsClusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{ce.cfg.name}",
                  "type": "MANAGED", "state": "ENABLED", "status": "VALID",
                  "statusReason": "ComputeEnvironment Healthy", "tags": {},
                  "computeResources": {
                      "type": ce.cfg.type, "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED",
                      "minvCpus": 0, "maxvCpus": ce.cfg.max_vcpus,
                      "desiredvCpus": int(ce.used), "instanceTypes": ce.cfg.instance_types,
                      "subnets": ["subnet-0fake"], "securityGroupIds": ["sg-0fake"],
                      "instanceRole": "ecsInstanceRole", "tags": {}},
                  "serviceRole": f"arn:aws:iam::{ACCOUNT}:role/AWSBatchServiceRole"}
                 for ce in ces]
        return _paged(req, items, "computeEnvironments")

    def op_RegisterJobDefinition(self, req: dict[str, Any]) -> dict[str, Any]:
        name = req.get("jobDefinitionName") or ""
        if not NAME_RX.match(name) or not req.get("type"):
            raise client_error("jobDefinitionName (valid name) and type are required")
        revisions = self.jobdefs.setdefault(name, [])
        rev = len(revisions) + 1
        jd = dict(req)
        jd.update(jobDefinitionArn=f"{ARN}:job-definition/{name}:{rev}", revision=rev,
                  status="ACTIVE")
        jd.setdefault("platformCapabilities", ["EC2"])
        revisions.append(jd)
        return {"jobDefinitionName": name, "jobDefinitionArn": jd["jobDefinitionArn"],
                "revision": rev}

    def op_DescribeJobDefinitions(self, req: dict[str, Any]) -> dict[str, Any]:
        refs = req.get("jobDefinitions") or []
        if refs:
            items = []
            for ref in refs:
                name, _, rev = ref.rsplit("job-definition/", 1)[-1].partition(":")
                for jd in self.jobdefs.get(name, []):
                    if not rev or str(jd["revision"]) == rev:
                        items.append(jd)
        else:
            only = req.get("jobDefinitionName")
            items = [jd for n, revs in self.jobdefs.items() if not only or n == only
                     for jd in revs]
        if req.get("status"):
            items = [jd for jd in items if jd["status"] == req["status"]]
        return _paged(req, items, "jobDefinitions")


def _paged(req: dict[str, Any], items: list[Any], key: str) -> dict[str, Any]:
    start = int(req.get("nextToken") or 0)
    size = int(req.get("maxResults") or 100)
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


def _resources(props: dict[str, Any], vcpus: float | None = 1.0,
               memory: int | None = 2048) -> tuple[Any, Any]:
    if props.get("vcpus") is not None:
        vcpus = float(props["vcpus"])
    if props.get("memory") is not None:
        memory = int(props["memory"])
    for rr in props.get("resourceRequirements") or []:
        if rr.get("type") == "VCPU":
            vcpus = float(rr["value"])
        elif rr.get("type") == "MEMORY":
            memory = int(rr["value"])
    return vcpus, memory


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _jobdef_match(job: Job, value: str) -> bool:
    ref = value.rsplit("job-definition/", 1)[-1]
    full = job.jobdef_arn.rsplit("job-definition/", 1)[-1]
    if ref.endswith("*"):
        return full.startswith(ref[:-1])
    return ref == full or (":" not in ref and job.jobdef_name == ref)
