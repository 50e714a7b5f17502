"""The local backend's scheduler: starts RUNNABLE jobs on this machine's capacity and follows
each one until it ends.

Placement: the capacity is the configured vCPUs and memory (`[local] vcpus` / `memory`); a
job holds its share from STARTING until it ends. RUNNABLE jobs start in FIFO order (submission
order, and creation order after a restart) while the head of the queue fits: nothing
overtakes it, so a big job is not starved by a stream of small ones. A job that could never
fit stays RUNNABLE with a MISCONFIGURATION reason, as AWS Batch leaves a job no compute
environment can take.

Following: `state.json` says STARTING before the runner is started (see local/backend.py for
why), the job is RUNNING once its runner has claimed it (`runner.pid`), and it ends with the
runner's `result.json`, or FAILED like a lost host (HOST_TERMINATED) when the runner died
without one. A runner's exit wakes the run loop at once (pidfd); every active job is checked
every second anyway. `recover` makes the same decisions at start for the jobs found on disk.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Mapping
from typing import Any

from batchd.backends.local.jobs import (
    _Job,
    _now_ms,
    _read_json,
    _read_pid,
    _runner_alive,
    kill_orphaned_command,
    spawn_runner,
    terminate_reason,
)
from batchd.backends.local.runner import atomic_write_json, exclusive_create
from batchd.text import shorten

__all__ = ["HOST_TERMINATED", "LocalScheduler"]

HOST_TERMINATED = "Host EC2 (instance local) terminated."
_EPS = 1e-9    # vCPUs are floats (0.25 + 0.25 + 0.5 must fit in 1)


class LocalScheduler:
    def __init__(self, jobs: Mapping[str, _Job], *, vcpus: float, memory: int,
                 log: Any) -> None:
        self.jobs = jobs                        # the backend's jobs, by id
        self.vcpus = float(vcpus)
        self.memory = int(memory)
        self.log = log
        self.runnable: collections.deque[str] = collections.deque()   # FIFO of job ids
        self.active: dict[str, _Job] = {}      # STARTING / RUNNING: hold capacity
        self._wake: asyncio.Event | None = None
        self._check_due = False
        self._closed = False

    # ------------------------------------------------------------------ the run loop
    @property
    def started(self) -> bool:
        return self._wake is not None

    def start(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run the loop now (a job was submitted or cancelled)."""
        if self._wake is not None:
            self._wake.set()

    def check_soon(self) -> None:
        """Check the active jobs on the loop's next turn (one is being terminated)."""
        self._check_due = True

    async def run(self) -> None:
        assert self._wake is not None, "start() first"
        periodic = time.monotonic()
        while True:
            self._wake.clear()
            self._schedule()
            now = time.monotonic()
            starting = any(j.status == "STARTING" for j in self.active.values())
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

    def close(self) -> None:
        """Stop starting and watching; runners and their jobs keep going."""
        self._closed = True
        loop = asyncio.get_running_loop()
        for job in self.active.values():
            self._unwatch(job, loop)

    # ------------------------------------------------------------------ placement
    def misfit_reason(self, vcpus: float, memory: int) -> str | None:
        if vcpus <= self.vcpus + _EPS and memory <= self.memory:
            return None
        return (f"MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job asks for {vcpus:g} vCPUs "
                f"/ {memory} MiB but this machine's local capacity is "
                f"{self.vcpus:g} vCPUs / {self.memory} MiB")

    def enqueue(self, job: _Job) -> None:
        job.status_reason = self.misfit_reason(job.vcpus, job.memory)
        if job.status_reason is None:
            self.runnable.append(job.job_id)
        # else: it can never be placed; it stays RUNNABLE with the reason (like AWS)

    def _schedule(self) -> None:
        """Start RUNNABLE jobs in FIFO order while the head fits (no overtaking, so big jobs
        are not starved)."""
        if self._closed:
            return
        used_v = sum(j.vcpus for j in self.active.values())
        used_m = sum(j.memory for j in self.active.values())
        while self.runnable:
            job = self.jobs.get(self.runnable[0])
            if job is None or job.status != "RUNNABLE":
                self.runnable.popleft()
                continue
            if (used_v + job.vcpus > self.vcpus + _EPS
                    or used_m + job.memory > self.memory):
                break
            self.runnable.popleft()
            self._launch(job)
            if job.job_id in self.active:
                used_v += job.vcpus
                used_m += job.memory

    # ------------------------------------------------------------------ following runners
    def _launch(self, job: _Job) -> None:
        try:
            self.set_status(job, "STARTING")   # written before the runner exists: see recover
            popen = spawn_runner(job.jobdir)
        except OSError as exc:
            self.log.error("local_runner_start_failed", job_id=job.job_id, error=str(exc))
            if exclusive_create(job.jobdir / "runner.pid", "0\n"):
                self.finish(job, status_reason=f"local runner could not start: {exc}",
                            container_reason=f"CannotStartContainerError: {exc}")
            return
        job.pid = popen.pid
        self.active[job.job_id] = job
        self.watch(job)
        self.log.info("local_job_starting", job_id=job.job_id, job_name=job.job_name,
                      runner_pid=popen.pid)

    def watch(self, job: _Job) -> None:
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
        for job in list(self.active.values()):
            if job.pid and _runner_alive(job.pid, job.jobdir):
                if job.status == "STARTING" and (job.jobdir / "runner.pid").exists():
                    self.set_status(job, "RUNNING", started_at=_now_ms())
                continue
            if not self._apply_result(job):
                self._runner_gone(job)

    def recover(self, job: _Job, runnable: list[_Job]) -> None:
        """Decide what an active job found on disk is now (at start, before the run loop);
        one never launched is added to `runnable`, which the caller enqueues in order."""
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
                self.finish(job, status_reason=HOST_TERMINATED)
                return
            pid = _read_pid(job.jobdir / "runner.pid")
        if pid and _runner_alive(pid, job.jobdir):
            job.pid = pid
            if job.status == "STARTING":
                self.set_status(job, "RUNNING", started_at=job.started_at or _now_ms())
            self.active[job.job_id] = job
            return
        self._runner_gone(job)

    # ------------------------------------------------------------------ transitions
    def _apply_result(self, job: _Job) -> bool:
        result = _read_json(job.jobdir / "result.json")
        if not isinstance(result, dict):
            return False
        self.active.pop(job.job_id, None)
        self.set_status(job, result.get("status", "FAILED"),
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
        self.finish(job, status_reason=terminate_reason(job.jobdir) or HOST_TERMINATED)

    def finish(self, job: _Job, *, status_reason: str | None,
               container_reason: str | None = None) -> None:
        """FAILED now (cancelled, or its runner is gone), freeing what it held."""
        self.active.pop(job.job_id, None)
        self.set_status(job, "FAILED", status_reason=status_reason,
                        container_reason=container_reason, stopped_at=_now_ms())

    def set_status(self, job: _Job, status: str, **fields: Any) -> None:
        """One transition, written to the job's `state.json` (atomically) and logged."""
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
