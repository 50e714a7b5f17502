"""The local backend's job records and on-disk helpers: one `_Job` per job directory, reading
state and pid files, finding the jobs on disk at start, starting a runner, and telling a live
runner from a recycled pid (see local/backend.py for the layout of `STATE_DIR/local/`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import batchd
from batchd.backends.base import JobStatus
from batchd.backends.local.runner import proc_starttime

# Runners this process started, by pid: keeps the Popen objects referenced (so they are never
# garbage-collected with a "still running" warning and are reaped by poll()) across backend
# instances; a Popen never kills its process.
_SPAWNED: dict[int, subprocess.Popen] = {}
RUNNER_MODULE = "batchd.backends.local.runner"
# A runner outlives the daemon that started it, so one started by a batchd from before the
# package layout of docs/design.md carries the old module name in its argv.
RUNNER_MODULES = (RUNNER_MODULE.encode(), b"batchd.backends.local_runner")
_JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fs_name(s: str) -> str:
    """A queue or job name as one safe path component."""
    enc = quote(s, safe="-_").replace(".", "%2E") or "%"
    if len(enc) > 200:
        enc = enc[:100] + "~" + hashlib.sha256(s.encode()).hexdigest()[:32]
    return enc


def _read_json(path: Path) -> Any:   # None when absent or unreadable
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return None


def _runner_alive(pid: int, jobdir: Path) -> bool:
    """Is `pid` alive and the runner of `jobdir` (not a recycled pid)?"""
    popen = _SPAWNED.get(pid)
    if popen is not None:
        if popen.poll() is None:
            return True
        _SPAWNED.pop(pid, None)
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
    except OSError:
        return False
    # The job id (a uuid4) in a runner's argv identifies it whatever spelling of the state
    # directory was used to start it.
    tail = os.fsencode(os.sep + jobdir.name)
    return any(name in args for name in RUNNER_MODULES) and any(
        a == os.fsencode(str(jobdir)) or a.rstrip(b"/").endswith(tail) for a in args)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Job:
    job_id: str
    job_name: str
    queue: str
    jobdir: Path
    created_at: int
    created_ns: int
    vcpus: float
    memory: int
    status: str = "RUNNABLE"
    status_reason: str | None = None
    exit_code: int | None = None
    container_reason: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    pid: int | None = None                 # the runner's pid once launched
    pidfd: int | None = field(default=None, repr=False)

    def status_obj(self) -> JobStatus:
        return JobStatus(
            job_id=self.job_id, job_name=self.job_name, status=self.status,
            status_reason=self.status_reason, exit_code=self.exit_code,
            container_reason=self.container_reason, log_stream=self.job_id,
            created_at=self.created_at, started_at=self.started_at, stopped_at=self.stopped_at,
            vcpus=self.vcpus, memory=self.memory)

    def state_dict(self) -> dict[str, Any]:
        return {"status": self.status, "status_reason": self.status_reason,
                "exit_code": self.exit_code, "container_reason": self.container_reason,
                "started_at": self.started_at, "stopped_at": self.stopped_at,
                "updated_at": _now_ms()}


async def read_log_lines(path: Path) -> AsyncIterator[str]:
    """A job's log, line by line, read in large chunks off the event loop."""
    try:
        fh = await asyncio.to_thread(open, path, "rb")
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        rest = b""
        while True:
            chunk = await asyncio.to_thread(fh.read, 256 * 1024)
            if not chunk:
                break
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield line.decode("utf-8", "replace").rstrip("\r")
        if rest:
            yield rest.decode("utf-8", "replace").rstrip("\r")
    finally:
        fh.close()


def scan_jobs(jobs_dir: Path, name_link: Callable[[str, str], Path]) -> Iterator[_Job]:
    """Every job on disk, as its files say. A directory without its name link is a submit
    that never completed (nobody was told its id): it is removed."""
    for jobdir in jobs_dir.iterdir():
        job_id = jobdir.name
        if not _JOB_ID_RE.match(job_id):
            continue
        spec = _read_json(jobdir / "spec.json")
        link = name_link(spec["queue"], spec["job_name"]) if isinstance(spec, dict) else None
        try:
            committed = link is not None and os.readlink(link) == job_id
        except OSError:
            committed = False
        if not committed:
            shutil.rmtree(jobdir, ignore_errors=True)
            continue
        job = _Job(job_id=job_id, job_name=spec["job_name"], queue=spec["queue"],
                   jobdir=jobdir, created_at=spec["created_at"],
                   created_ns=spec.get("created_ns", spec["created_at"] * 1_000_000),
                   vcpus=spec["vcpus"], memory=spec["memory"])
        state = _read_json(jobdir / "state.json") or {"status": "RUNNABLE"}
        for k in ("status", "status_reason", "exit_code", "container_reason",
                  "started_at", "stopped_at"):
            if k in state:
                setattr(job, k, state[k])
        yield job


def spawn_runner(jobdir: Path) -> subprocess.Popen:
    """`python -m batchd.backends.local.runner JOBDIR` in a session of its own (it outlives
    the daemon); raises OSError if it cannot start."""
    pkg_parent = Path(batchd.__file__).resolve().parent.parent
    with open(jobdir / "runner.log", "ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", RUNNER_MODULE, str(jobdir)],
            cwd=pkg_parent, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    _SPAWNED[popen.pid] = popen
    return popen


def kill_orphaned_command(jobdir: Path) -> None:
    """Kill the command a dead runner left behind (its pid and start time are in child.pid,
    so a recycled pid is never hit)."""
    child = _read_json(jobdir / "child.pid")
    if isinstance(child, dict) and child.get("pid"):
        cpid = int(child["pid"])
        if child.get("starttime") is not None and proc_starttime(cpid) == child["starttime"]:
            try:
                os.killpg(cpid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def terminate_reason(jobdir: Path) -> str | None:
    """The reason of a TerminateJob request for this job, if one was made."""
    try:
        return (jobdir / "terminate").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
