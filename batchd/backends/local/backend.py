"""The local backend: jobs run as processes on this machine, with AWS Batch's shapes.

It behaves like a separate service that outlives the daemon. Everything lives in files under
`STATE_DIR/local/`; the in-memory index is rebuilt from them at `start()`:

    jobdefs/<name>/<revision>.json    registered job definitions (revisions 1, 2, ... per name)
    names/<queue>/<job name>          symlink -> job id: the exactly-once name index
    jobs/<job id>/spec.json           what to run (written once, before the name is claimed)
    jobs/<job id>/state.json          the backend's view, replaced atomically on each transition
    jobs/<job id>/runner.pid          written (exclusively) by the runner that owns the job
    jobs/<job id>/child.pid           the command's pid + start time (to kill orphans)
    jobs/<job id>/log.txt             stdout+stderr of the command
    jobs/<job id>/terminate           the reason of a TerminateJob request
    jobs/<job id>/result.json         written atomically by the runner when the command ended

Exactly once: a job becomes visible only when its name symlink is created (`symlink(2)` is
atomic and fails if the name exists); a job directory without its name link is a submit that
never completed and is removed at start. A job is launched only after `state.json` says
STARTING, and a runner only runs the command after creating `runner.pid` exclusively, so after a
crash a STARTING job without `runner.pid` can be claimed (and failed) by the restarted backend
with no risk of a late runner starting it as well.

Each job runs under `python -m batchd.backends.local.runner JOBDIR` started in a new session.
`close()` leaves runners alone; a new backend adopts the live ones (pid + /proc cmdline check)
and fails the dead ones without a result like a lost host ("Host EC2 (instance local)
terminated."). Job records and file helpers are in local/jobs.py, the placement of RUNNABLE
jobs on the configured capacity and the following of their runners in local/scheduler.py,
output checks in local/outputs.py, job definitions in local/jobdefs.py.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from batchd.backends.base import (
    Backend,
    JobStatus,
    OutputStore,
    QueueInfo,
    SubmitRequest,
)
from batchd.backends.local.jobdefs import LocalJobDefinitions
from batchd.backends.local.jobs import (
    _JOB_ID_RE,
    _fs_name,
    _Job,
    _runner_alive,
    read_log_lines,
    scan_jobs,
)
from batchd.backends.local.outputs import LocalOutputStore
from batchd.backends.local.runner import atomic_write_json
from batchd.backends.local.scheduler import LocalScheduler
from batchd.errors import PermanentBackendError, TransientBackendError, Unavailable
from batchd.text import shorten


class LocalBackend(Backend):
    name = "local"

    def __init__(self, state_dir: Path, *, vcpus: float, memory: int, log=None,
                 kill_grace: float = 10.0, outputs: OutputStore | None = None) -> None:
        self.root = Path(state_dir).absolute() / "local"
        self.kill_grace = kill_grace
        self.log = log if log is not None else structlog.get_logger("batchd").bind(
            backend="local")
        self.outputs = outputs if outputs is not None else LocalOutputStore()
        self._jobs: dict[str, _Job] = {}
        self._names: dict[tuple[str, str], str] = {}
        self.scheduler = LocalScheduler(self._jobs, vcpus=vcpus, memory=memory, log=self.log)
        self.jobdefs = LocalJobDefinitions(self.root / "jobdefs", self.log)
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ paths
    @property
    def _jobs_dir(self) -> Path:
        return self.root / "jobs"

    def _name_link(self, queue: str, job_name: str) -> Path:
        return self.root / "names" / _fs_name(queue) / _fs_name(job_name)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.scheduler.start()
        for sub in ("jobdefs", "jobs", "names"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # One backend per state directory: two would both schedule the same RUNNABLE jobs.
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Unavailable(f"another batchd is using the local backend state in {self.root}; "
                              "stop it first") from None
        self._lock_fd = fd
        await asyncio.to_thread(self._load)
        scheduler = self.scheduler
        for job in scheduler.active.values():
            scheduler.watch(job)
        self.log.info("local_backend_started", jobs=len(self._jobs),
                      active=len(scheduler.active), runnable=len(scheduler.runnable),
                      vcpus=scheduler.vcpus, memory=scheduler.memory)

    def _load(self) -> None:
        self.jobdefs.load()
        runnable: list[_Job] = []
        for job in scan_jobs(self._jobs_dir, self._name_link):
            self._jobs[job.job_id] = job
            self._names[(job.queue, job.job_name)] = job.job_id
            if job.status not in ("SUCCEEDED", "FAILED"):
                self.scheduler.recover(job, runnable)
        runnable.sort(key=lambda j: j.created_ns)
        for job in runnable:
            self.scheduler.enqueue(job)

    async def run(self) -> None:
        await self.scheduler.run()

    async def close(self) -> None:
        """Stop watching; runners and their jobs keep going."""
        self.scheduler.close()
        await self.outputs.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ job definitions
    async def register_job_definition(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.jobdefs.register(spec)

    async def list_job_definitions(self) -> list[dict[str, Any]]:
        return self.jobdefs.listing()

    # ------------------------------------------------------------------ jobs
    async def submit(self, request: SubmitRequest) -> str:
        if not self.scheduler.started:
            raise TransientBackendError("the local backend is not started")
        existing = self._names.get((request.queue, request.job_name))
        if existing is not None:
            return existing
        run = self.jobdefs.what_to_run(request)
        vcpus, memory = run["vcpus"], run["memory"]
        created_ns = time.time_ns()
        job_id = uuid.uuid4().hex
        jobdir = self._jobs_dir / job_id
        spec = {"job_id": job_id, "job_name": request.job_name, "queue": request.queue,
                **run, "workdir": request.workdir, "tags": request.tags,
                "kill_grace": self.kill_grace,
                "created_at": created_ns // 1_000_000, "created_ns": created_ns}
        job = _Job(job_id=job_id, job_name=request.job_name, queue=request.queue,
                   jobdir=jobdir, created_at=spec["created_at"], created_ns=created_ns,
                   vcpus=vcpus, memory=memory, status="RUNNABLE",
                   status_reason=self.scheduler.misfit_reason(vcpus, memory))
        link = self._name_link(request.queue, request.job_name)
        try:
            jobdir.mkdir()
            atomic_write_json(jobdir / "spec.json", spec)
            atomic_write_json(jobdir / "state.json", job.state_dict())
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(job_id, link)     # the commit point: atomic, fails if the name exists
            except FileExistsError:
                shutil.rmtree(jobdir, ignore_errors=True)
                other = os.readlink(link)
                self._names[(request.queue, request.job_name)] = other
                return other
        except OSError as exc:
            shutil.rmtree(jobdir, ignore_errors=True)
            raise TransientBackendError(f"cannot write the local job {request.job_name}: {exc}",
                                        ) from exc
        self._jobs[job_id] = job
        self._names[(request.queue, request.job_name)] = job_id
        self.scheduler.enqueue(job)
        self.scheduler.wake()
        self.log.info("local_job_submitted", job_id=job_id, job_name=request.job_name,
                      queue=request.queue, vcpus=vcpus, memory=memory)
        return job_id

    async def describe(self, job_ids: list[str]) -> list[JobStatus]:
        return [self._jobs[i].status_obj() for i in job_ids if i in self._jobs]

    async def find_by_name(self, job_name: str, queue: str) -> JobStatus | None:
        job_id = self._names.get((queue, job_name))
        return self._jobs[job_id].status_obj() if job_id in self._jobs else None

    async def cancel(self, job_id: str, reason: str, *, terminate: bool) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            raise PermanentBackendError(f"job {job_id} does not exist",
                                        aws_code="ClientException")
        if job.status in ("SUBMITTED", "PENDING", "RUNNABLE"):
            self.scheduler.finish(job, status_reason=reason)
            self.log.info("local_job_cancelled", job_id=job_id, reason=shorten(reason))
        elif terminate and job.status in ("STARTING", "RUNNING"):
            (job.jobdir / "terminate.tmp").write_text(reason, encoding="utf-8")
            os.replace(job.jobdir / "terminate.tmp", job.jobdir / "terminate")
            if job.pid and _runner_alive(job.pid, job.jobdir):
                try:
                    os.killpg(job.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
            self.scheduler.check_soon()
            self.log.info("local_job_terminating", job_id=job_id, reason=shorten(reason))
        self.scheduler.wake()

    async def fetch_logs(self, log_stream: str) -> AsyncIterator[str]:
        if not _JOB_ID_RE.match(log_stream or ""):
            return
        async for line in read_log_lines(self._jobs_dir / log_stream / "log.txt"):
            yield line

    async def queues(self, names: list[str]) -> list[QueueInfo]:
        return [QueueInfo(name=n, state="ENABLED", status="VALID",
                          max_vcpus=self.scheduler.vcpus, max_memory=self.scheduler.memory)
                for n in names]


__all__ = ["LocalBackend"]
