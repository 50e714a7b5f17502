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
terminated."). Job records and file helpers are in local_jobs.py, output checks in
local_outputs.py, job definitions in local_jobdefs.py.
"""

from __future__ import annotations

import asyncio
import collections
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
    ACTIVE_STATES,
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
    _now_ms,
    _read_json,
    _read_pid,
    _runner_alive,
    kill_orphaned_command,
    read_log_lines,
    scan_jobs,
    spawn_runner,
    terminate_reason,
)
from batchd.backends.local.outputs import LocalOutputStore
from batchd.backends.local.runner import atomic_write_json, exclusive_create
from batchd.errors import PermanentBackendError, TransientBackendError, Unavailable
from batchd.text import shorten

HOST_TERMINATED = "Host EC2 (instance local) terminated."
_EPS = 1e-9

class LocalBackend(Backend):
    name = "local"

    def __init__(self, state_dir: Path, *, vcpus: float, memory: int, log=None,
                 kill_grace: float = 10.0, outputs: OutputStore | None = None) -> None:
        self.root = Path(state_dir).absolute() / "local"
        self.capacity_vcpus = float(vcpus)
        self.capacity_memory = int(memory)
        self.kill_grace = kill_grace
        self.log = log if log is not None else structlog.get_logger("batchd").bind(
            backend="local")
        self.outputs = outputs if outputs is not None else LocalOutputStore()
        self._jobs: dict[str, _Job] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._runnable: collections.deque[str] = collections.deque()   # FIFO of job ids
        self._active: dict[str, _Job] = {}      # STARTING / RUNNING: hold capacity
        self.jobdefs = LocalJobDefinitions(self.root / "jobdefs", self.log)
        self._wake: asyncio.Event | None = None
        self._check_due = False
        self._closed = False
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ paths
    @property
    def _jobs_dir(self) -> Path:
        return self.root / "jobs"

    def _name_link(self, queue: str, job_name: str) -> Path:
        return self.root / "names" / _fs_name(queue) / _fs_name(job_name)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._wake = asyncio.Event()
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
        for job in self._active.values():
            self._watch(job)
        self.log.info("local_backend_started", jobs=len(self._jobs),
                      active=len(self._active), runnable=len(self._runnable),
                      vcpus=self.capacity_vcpus, memory=self.capacity_memory)

    def _load(self) -> None:
        self.jobdefs.load()
        runnable: list[_Job] = []
        for job in scan_jobs(self._jobs_dir, self._name_link):
            self._jobs[job.job_id] = job
            self._names[(job.queue, job.job_name)] = job.job_id
            if job.status not in ("SUCCEEDED", "FAILED"):
                self._recover(job, runnable)
        runnable.sort(key=lambda j: j.created_ns)
        for job in runnable:
            self._enqueue(job)

    def _recover(self, job: _Job, runnable: list[_Job]) -> None:
        """Decide what an active job found on disk is now."""
        if job.status in ("SUBMITTED", "PENDING", "RUNNABLE"):
            job.status = "RUNNABLE"          # never launched (STARTING is written first)
            runnable.append(job)
            return
        if self._apply_result(job):
            return
        pid = _read_pid(job.jobdir / "runner.pid")
        if pid is None:
            # STARTING but no runner claimed it: a launch interrupted by the crash. Claim it
            # ourselves so a late runner can never start it, and fail it like a lost host.
            if exclusive_create(job.jobdir / "runner.pid", "0\n"):
                self._finish(job, status_reason=HOST_TERMINATED)
                return
            pid = _read_pid(job.jobdir / "runner.pid")
        if pid and _runner_alive(pid, job.jobdir):
            job.pid = pid
            if job.status == "STARTING":
                self._set(job, "RUNNING", started_at=job.started_at or _now_ms())
            self._active[job.job_id] = job
            return
        self._runner_gone(job)

    async def run(self) -> None:
        assert self._wake is not None, "start() first"
        periodic = time.monotonic()
        while True:
            self._wake.clear()
            self._schedule()
            now = time.monotonic()
            starting = any(j.status == "STARTING" for j in self._active.values())
            if self._check_due or now - periodic >= 1.0 or starting:
                self._check_due = False
                periodic = now
                self._check_active()
                self._schedule()
            try:   # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(0.2 if starting else 1.0):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop watching; runners and their jobs keep going."""
        self._closed = True
        loop = asyncio.get_running_loop()
        for job in self._active.values():
            self._unwatch(job, loop)
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
        if self._wake is None:
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
                   status_reason=self._misfit_reason(vcpus, memory))
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
        self._enqueue(job)
        self._wake.set()
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
            self._finish(job, status_reason=reason)
            self.log.info("local_job_cancelled", job_id=job_id, reason=shorten(reason))
        elif terminate and job.status in ("STARTING", "RUNNING"):
            (job.jobdir / "terminate.tmp").write_text(reason, encoding="utf-8")
            os.replace(job.jobdir / "terminate.tmp", job.jobdir / "terminate")
            if job.pid and _runner_alive(job.pid, job.jobdir):
                try:
                    os.killpg(job.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
            self._check_due = True
            self.log.info("local_job_terminating", job_id=job_id, reason=shorten(reason))
        if self._wake is not None:
            self._wake.set()

    async def fetch_logs(self, log_stream: str) -> AsyncIterator[str]:
        if not _JOB_ID_RE.match(log_stream or ""):
            return
        async for line in read_log_lines(self._jobs_dir / log_stream / "log.txt"):
            yield line

    async def queues(self, names: list[str]) -> list[QueueInfo]:
        return [QueueInfo(name=n, state="ENABLED", status="VALID",
                          max_vcpus=self.capacity_vcpus, max_memory=self.capacity_memory)
                for n in names]

    # ------------------------------------------------------------------ scheduling
    def _misfit_reason(self, vcpus: float, memory: int) -> str | None:
        if vcpus <= self.capacity_vcpus + _EPS and memory <= self.capacity_memory:
            return None
        return (f"MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job asks for {vcpus:g} vCPUs "
                f"/ {memory} MiB but this machine's local capacity is "
                f"{self.capacity_vcpus:g} vCPUs / {self.capacity_memory} MiB")

    def _enqueue(self, job: _Job) -> None:
        job.status_reason = self._misfit_reason(job.vcpus, job.memory)
        if job.status_reason is None:
            self._runnable.append(job.job_id)
        # else: it can never be placed; it stays RUNNABLE with the reason (like AWS)

    def _schedule(self) -> None:
        """Start RUNNABLE jobs in FIFO order while the head fits (no overtaking, so big jobs
        are not starved)."""
        if self._closed:
            return
        used_v = sum(j.vcpus for j in self._active.values())
        used_m = sum(j.memory for j in self._active.values())
        while self._runnable:
            job = self._jobs.get(self._runnable[0])
            if job is None or job.status != "RUNNABLE":
                self._runnable.popleft()
                continue
            if (used_v + job.vcpus > self.capacity_vcpus + _EPS
                    or used_m + job.memory > self.capacity_memory):
                break
            self._runnable.popleft()
            self._launch(job)
            if job.job_id in self._active:
                used_v += job.vcpus
                used_m += job.memory

    def _launch(self, job: _Job) -> None:
        try:
            self._set(job, "STARTING")   # written before the runner exists: see _recover
            popen = spawn_runner(job.jobdir)
        except OSError as exc:
            self.log.error("local_runner_start_failed", job_id=job.job_id, error=str(exc))
            if exclusive_create(job.jobdir / "runner.pid", "0\n"):
                self._finish(job, status_reason=f"local runner could not start: {exc}",
                             container_reason=f"CannotStartContainerError: {exc}")
            return
        job.pid = popen.pid
        self._active[job.job_id] = job
        self._watch(job)
        self.log.info("local_job_starting", job_id=job.job_id, job_name=job.job_name,
                      runner_pid=popen.pid)

    def _watch(self, job: _Job) -> None:
        """Wake the run loop as soon as the runner exits (pidfd; else the 1 s poll)."""
        if job.pid is None or job.pidfd is not None or not hasattr(os, "pidfd_open"):
            return
        try:
            fd = os.pidfd_open(job.pid)
        except OSError:
            return
        job.pidfd = fd
        loop = asyncio.get_running_loop()

        def exited() -> None:
            self._unwatch(job, loop)
            self._check_due = True
            if self._wake is not None:
                self._wake.set()
        loop.add_reader(fd, exited)

    def _unwatch(self, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        if job.pidfd is not None:
            loop.remove_reader(job.pidfd)
            os.close(job.pidfd)
            job.pidfd = None

    def _check_active(self) -> None:
        for job in list(self._active.values()):
            if job.pid and _runner_alive(job.pid, job.jobdir):
                if job.status == "STARTING" and (job.jobdir / "runner.pid").exists():
                    self._set(job, "RUNNING", started_at=_now_ms())
                continue
            if not self._apply_result(job):
                self._runner_gone(job)

    def _apply_result(self, job: _Job) -> bool:
        result = _read_json(job.jobdir / "result.json")
        if not isinstance(result, dict):
            return False
        self._active.pop(job.job_id, None)
        self._set(job, result.get("status", "FAILED"),
                  status_reason=result.get("status_reason"),
                  exit_code=result.get("exit_code"),
                  container_reason=result.get("container_reason"),
                  started_at=result.get("started_at") or job.started_at,
                  stopped_at=result.get("stopped_at") or _now_ms())
        return True

    def _runner_gone(self, job: _Job) -> None:
        """The runner died without a result: the "host" went away. Kill what it left."""
        kill_orphaned_command(job.jobdir)
        if self._apply_result(job):   # it may have written one at the very end
            return
        self._finish(job, status_reason=terminate_reason(job.jobdir) or HOST_TERMINATED)

    def _finish(self, job: _Job, *, status_reason: str | None,
                container_reason: str | None = None) -> None:
        self._active.pop(job.job_id, None)
        self._set(job, "FAILED", status_reason=status_reason, container_reason=container_reason,
                  stopped_at=_now_ms())

    def _set(self, job: _Job, status: str, **fields: Any) -> None:
        old = job.status
        job.status = status
        for k, v in fields.items():
            setattr(job, k, v)
        if old == "RUNNABLE" and status != "RUNNABLE" and "status_reason" not in fields:
            job.status_reason = None
        atomic_write_json(job.jobdir / "state.json", job.state_dict())
        if old != status:
            level = self.log.warning if status == "FAILED" else self.log.info
            level("local_job_state_changed", job_id=job.job_id, job_name=job.job_name,
                  old=old, status=status, reason=shorten(job.status_reason),
                  exit_code=job.exit_code)


__all__ = ["LocalBackend", "LocalOutputStore", "ACTIVE_STATES", "HOST_TERMINATED"]
