"""The Batch job lifecycle simulator: states, dependencies, capacity, attempts, retention.

SUBMITTED -> PENDING (dependencies unfinished) -> RUNNABLE (FIFO per queue, waits for vCPUs of
the queue's compute environments) -> STARTING -> RUNNING -> SUCCEEDED | FAILED; failed attempts
go back to RUNNABLE while the job's retryStrategy allows. Every step is an event on the
scheduler's heap; queues are deques; nothing scans all jobs.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from .clock import Scheduler
from .config import FakeConfig
from .faults import Stats
from .outcomes import Outcomes, Plan

if TYPE_CHECKING:
    from .logs import LogsStore
    from .s3 import S3Store

ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
TERMINAL = ("SUCCEEDED", "FAILED")
CANCELLABLE = ("SUBMITTED", "PENDING", "RUNNABLE")
MISCONFIGURED = ("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement "
                 "(vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to "
                 "the job queue.")
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
APP_REASON = "Essential container in task exited"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
IMAGE_REASON = ("CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                "failed to resolve ref: not found")
DEP_REASON = "Dependent Job failed"


class ComputeEnv:
    __slots__ = ("cfg", "used")

    def __init__(self, cfg) -> None:
        self.cfg, self.used = cfg, 0.0

    def fits_instance(self, job: Job) -> bool:
        c = self.cfg
        return (job.vcpus <= c.max_instance_vcpus and job.memory <= c.max_instance_memory
                and job.vcpus <= c.max_vcpus)


class Queue:
    def __init__(self, cfg, ces: list[ComputeEnv]) -> None:
        self.cfg, self.ces = cfg, ces
        self.fifo: deque[Job] = deque()
        self.blocked: dict[str, Job] = {}


class Job:
    __slots__ = ("id", "arn", "name", "queue", "jobdef_arn", "jobdef_name", "parameters",
                 "environment", "command", "vcpus", "memory", "resource_requirements",
                 "timeout", "depends_on", "tags", "propagate_tags", "retry_strategy", "image",
                 "status", "status_reason", "created_at", "started_at", "stopped_at",
                 "attempts", "exit_code", "container_reason", "log_stream", "gen",
                 "pending_deps", "dep_failed", "dependents", "plan", "ce", "queued",
                 "is_cancelled", "is_terminated", "attempt_start", "task_id", "forgotten",
                 "instance_id")

    def __init__(self, **kw: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, kw.get(name))
        self.attempts, self.dependents, self.gen = [], [], 0
        self.pending_deps, self.dep_failed, self.queued = 0, False, False
        self.is_cancelled = self.is_terminated = self.forgotten = False


class Simulator:
    def __init__(self, config: FakeConfig, scheduler: Scheduler, stats: Stats,
                 s3: S3Store, logs: LogsStore) -> None:
        self.config, self.sched, self.stats, self.s3, self.logs = config, scheduler, stats, s3, logs
        self.clock = scheduler.clock
        self.outcomes = Outcomes(config)
        self.jobs: dict[str, Job] = {}
        self.forgotten: dict[str, Job] = {}
        self.by_name: dict[str, list[Job]] = {}
        self.by_queue_status: dict[tuple[str, str], dict[str, Job]] = {}
        self._names_sorted: list[str] = []
        self._names_new: list[str] = []
        self.ces: dict[str, ComputeEnv] = {}
        self.queues: dict[str, Queue] = {}
        self.build_topology()

    # -- topology ------------------------------------------------------------------------
    def build_topology(self) -> None:
        ce_cfgs, q_cfgs = self.config.resolved_topology()
        old = self.ces
        self.ces = {c.name: ComputeEnv(c) for c in ce_cfgs}
        for name, ce in self.ces.items():
            if name in old:
                ce.used = old[name].used
        for job in self.jobs.values():           # running jobs keep their CE object current
            if job.ce is not None and job.ce.cfg.name in self.ces:
                job.ce = self.ces[job.ce.cfg.name]
        old_q = self.queues
        self.queues = {}
        for q in q_cfgs:
            missing = [n for n in q.compute_environments if n not in self.ces]
            if missing:
                raise ValueError(f"queue {q.name}: unknown compute environments {missing}")
            queue = self.queues[q.name] = Queue(q, [self.ces[n] for n in q.compute_environments])
            if q.name in old_q:
                queue.fifo = old_q[q.name].fifo
                for job in old_q[q.name].blocked.values():    # re-check with new limits
                    self._enqueue(queue, job)
        for queue in self.queues.values():
            self.dispatch(queue)

    def reset(self) -> None:
        self.jobs.clear(), self.forgotten.clear(), self.by_name.clear()
        self.by_queue_status.clear(), self._names_sorted.clear(), self._names_new.clear()
        self.outcomes.reset()
        for ce in self.ces.values():
            ce.used = 0.0
        for q in self.queues.values():
            q.fifo.clear(), q.blocked.clear()

    # -- lookups -------------------------------------------------------------------------
    def names_with_prefix(self, prefix: str) -> list[str]:
        import bisect
        if self._names_new:
            self._names_sorted = sorted(set(self._names_sorted).union(self._names_new))
            self._names_new = []
        names = self._names_sorted
        i = bisect.bisect_left(names, prefix)
        out = []
        while i < len(names) and names[i].startswith(prefix):
            out.append(names[i])
            i += 1
        return out

    def jobs_named(self, pattern: str) -> list[Job]:
        if pattern.endswith("*"):
            return [j for n in self.names_with_prefix(pattern[:-1])
                    for j in self.by_name.get(n, ())]
        return list(self.by_name.get(pattern, ()))

    # -- state changes -------------------------------------------------------------------
    def _set(self, job: Job, status: str, reason: str | None = None) -> None:
        old = job.status
        if old is not None:
            self.by_queue_status[(job.queue, old)].pop(job.id, None)
            self.stats.jobs_by_state[old] -= 1
            self.stats.transitions[(old, status)] += 1
        self.by_queue_status.setdefault((job.queue, status), {})[job.id] = job
        self.stats.jobs_by_state[status] += 1
        job.status, job.status_reason = status, reason
        job.gen += 1

    def submit(self, job: Job, deps: list[Job]) -> None:
        job.created_at = self.clock.now_ms()
        self.jobs[job.id] = job
        named = self.by_name.get(job.name)
        if named is None:
            self.by_name[job.name] = [job]
            self._names_new.append(job.name)
        else:
            named.append(job)
        self.stats.submits_by_name[job.name] += 1
        for dep in deps:
            if dep.status in TERMINAL:
                job.dep_failed |= dep.status == "FAILED"
            else:
                job.pending_deps += 1
                dep.dependents.append(job)
        self._set(job, "SUBMITTED")
        self.sched.after(self.config.submitted_seconds, self._leave_submitted, job, job.gen)

    def _leave_submitted(self, job: Job, gen: int) -> None:
        if job.gen != gen:
            return
        if job.dep_failed:
            self._finish(job, "FAILED", DEP_REASON)
        elif job.pending_deps:
            self._set(job, "PENDING")
        else:
            self._make_runnable(job)

    def _make_runnable(self, job: Job, reason: str | None = None) -> None:
        self._set(job, "RUNNABLE", reason)
        queue = self.queues[job.queue]
        self._enqueue(queue, job)
        self.dispatch(queue)

    def _enqueue(self, queue: Queue, job: Job) -> None:
        if any(ce.fits_instance(job) for ce in queue.ces):
            queue.blocked.pop(job.id, None)
            job.status_reason = None if job.status_reason == MISCONFIGURED else job.status_reason
            job.queued = True
            queue.fifo.append(job)
        else:                                   # like AWS: RUNNABLE forever, queue not blocked
            job.status_reason = MISCONFIGURED
            queue.blocked[job.id] = job

    def dispatch(self, queue: Queue) -> None:
        fifo = queue.fifo
        while fifo:
            job = fifo[0]
            if not job.queued or job.status != "RUNNABLE":
                fifo.popleft()
                continue
            for ce in queue.ces:
                if ce.fits_instance(job) and ce.used + job.vcpus <= ce.cfg.max_vcpus + 1e-9:
                    break
            else:
                return                                  # FIFO: the head waits for capacity
            fifo.popleft()
            job.queued = False
            ce.used += job.vcpus
            job.ce = ce
            self._start(job)

    def _release(self, job: Job) -> None:
        ce, job.ce = job.ce, None
        if ce is None:
            return
        ce.used = max(0.0, ce.used - job.vcpus)
        for queue in sorted(self.queues.values(), key=lambda q: -q.cfg.priority):
            if ce in queue.ces:
                self.dispatch(queue)

    def _start(self, job: Job) -> None:
        attempt = len(job.attempts) + 1
        job.plan = plan = self.outcomes.plan(job, attempt)
        self.stats.outcomes[plan.behaviour] += 1
        job.task_id = uuid.uuid4().hex
        job.instance_id = "i-0" + job.task_id[:16]
        self._set(job, "STARTING")
        job.exit_code = job.container_reason = job.attempt_start = None
        self.sched.after(self.config.starting_seconds, self._running, job, job.gen)

    def _running(self, job: Job, gen: int) -> None:
        if job.gen != gen:
            return
        plan: Plan = job.plan
        if plan.behaviour == "image_error":
            job.attempt_start = None
            self._end_attempt(job, "Task failed to start", None, IMAGE_REASON, retry=True)
            return
        self._set(job, "RUNNING")
        now = self.clock.now()
        job.started_at = job.attempt_start = int(now * 1000)
        job.log_stream = f"{job.jobdef_name}/default/{job.task_id}"
        self.logs.job_stream_started(job, now, plan)
        timeout = job.timeout
        if timeout is not None and timeout < plan.duration:
            self.sched.at(now + timeout, self._timed_out, job, job.gen)
        elif plan.duration != float("inf"):
            self.sched.at(now + plan.duration, self._complete, job, job.gen)

    def _timed_out(self, job: Job, gen: int) -> None:
        if job.gen == gen:
            self._end_attempt(job, TIMEOUT_REASON, None, None, retry=True)

    def _complete(self, job: Job, gen: int) -> None:
        if job.gen != gen:
            return
        b = job.plan.behaviour
        if b in ("success", "no_outputs"):
            if b == "success":
                body = f"fake output of {job.name} ({job.id})\n".encode()
                for uri in self.outcomes.outputs(job):
                    self.s3.put_uri(uri, body, self.clock.now())
            self._end_attempt(job, APP_REASON, 0, None, retry=False, status="SUCCEEDED")
        elif b == "app_error":
            self._end_attempt(job, APP_REASON, job.plan.exit_code, None, retry=True)
        elif b == "oom":
            self._end_attempt(job, APP_REASON, 137, OOM_REASON, retry=True)
        elif b == "spot":
            self._end_attempt(job, f"Host EC2 (instance {job.instance_id}) terminated.",
                              None, None, retry=True)

    def _end_attempt(self, job: Job, reason: str, exit_code: int | None,
                     container_reason: str | None, *, retry: bool,
                     status: str = "FAILED") -> None:
        now = self.clock.now()
        now_ms = int(now * 1000)
        job.exit_code, job.container_reason = exit_code, container_reason
        container: dict[str, Any] = {"taskArn": self._task_arn(job)}
        if exit_code is not None:
            container["exitCode"] = exit_code
        if container_reason is not None:
            container["reason"] = container_reason
        if job.attempt_start is not None:
            container["logStreamName"] = job.log_stream
            self.logs.job_stream_stopped(job, now, reason, exit_code, container_reason)
        attempt: dict[str, Any] = {"container": container, "stoppedAt": now_ms,
                                   "statusReason": reason}
        if job.attempt_start is not None:
            attempt["startedAt"] = job.attempt_start
        job.attempts.append(attempt)
        self._release(job)
        if status == "FAILED" and retry and self._should_retry(job, reason, exit_code,
                                                                container_reason):
            self._make_runnable(job)
            return
        self._finish(job, status, reason)

    def _should_retry(self, job: Job, reason: str, exit_code: int | None,
                      container_reason: str | None) -> bool:
        rs = job.retry_strategy or {}
        if len(job.attempts) >= int(rs.get("attempts") or 1):
            return False
        for rule in rs.get("evaluateOnExit") or []:
            checks = [("onStatusReason", reason), ("onReason", container_reason or ""),
                      ("onExitCode", "" if exit_code is None else str(exit_code))]
            if all(fnmatch.fnmatchcase(value, rule[key]) for key, value in checks if key in rule):
                return rule.get("action", "").upper() == "RETRY"
        return True

    def _task_arn(self, job: Job) -> str:
        return f"arn:aws:ecs:us-east-1:123456789012:task/fake-cluster/{job.task_id}"

    def _finish(self, job: Job, status: str, reason: str | None) -> None:
        now = self.clock.now()
        job.stopped_at = int(now * 1000)
        self._set(job, status, reason)
        self.sched.at(now + self.config.retention_seconds, self._retention, job, job.gen)
        for dep in job.dependents:
            dep.pending_deps -= 1
            dep.dep_failed |= status == "FAILED"
            if dep.status == "PENDING":
                if dep.dep_failed:
                    self._finish(dep, "FAILED", DEP_REASON)
                elif dep.pending_deps <= 0:
                    self._make_runnable(dep)
        job.dependents = []

    def _retention(self, job: Job, gen: int) -> None:
        if job.gen == gen and not job.forgotten:
            self.forget(job.id)

    # -- user actions ----------------------------------------------------------------------
    def cancel(self, job: Job, reason: str) -> None:
        if job.status in CANCELLABLE:
            job.is_cancelled = True
            self._drop_from_queue(job)
            self._finish(job, "FAILED", reason)

    def terminate(self, job: Job, reason: str) -> None:
        if job.status in CANCELLABLE:
            job.is_terminated = True
            self._drop_from_queue(job)
            self._finish(job, "FAILED", reason)
        elif job.status in ("STARTING", "RUNNING"):
            job.is_terminated = True
            self._end_attempt(job, reason, None, None, retry=False)

    def _drop_from_queue(self, job: Job) -> None:
        job.queued = False                  # lazily skipped by dispatch()
        q = self.queues.get(job.queue)
        if q is not None:
            q.blocked.pop(job.id, None)

    def forget(self, job_id: str) -> bool:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        job.forgotten = True
        self.forgotten[job_id] = job
        if job.status in ACTIVE:                # vanishes mid-flight: stop simulating it
            job.gen += 1
            self._drop_from_queue(job)
            self._release(job)
        self.by_queue_status[(job.queue, job.status)].pop(job_id, None)
        self.stats.jobs_by_state[job.status] -= 1
        self.stats.forgotten += 1
        named = self.by_name.get(job.name)
        if named is not None:
            named[:] = [j for j in named if j is not job]
            if not named:
                del self.by_name[job.name]
        return True
