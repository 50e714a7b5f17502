"""The per-job supervisor of the local backend: `python -m batchd.backends.local.runner JOBDIR`.

The local backend starts one runner per job in its own session, so the runner (and the job)
outlive the daemon. The runner owns the job's process from start to end and is the only writer
of `runner.pid`, `child.pid`, `log.txt` and `result.json` in the job directory:

1. claims the job by creating `runner.pid` atomically (hard link of a complete temp file): a
   second runner, or a restarted daemon that gave up on a never-started launch, loses the claim
   and the command is never run twice;
2. starts the command from `spec.json` as an argv list (never through a shell), in its own
   process group, stdout+stderr appended to `log.txt`;
3. every ~50 ms: reaps the child, enforces the memory limit (sum of the resident set of the
   child's whole process tree; over the limit -> SIGKILL the group, exit code 137 and AWS's
   `OutOfMemoryError: Container killed due to memory usage`), the timeout (SIGTERM, then SIGKILL
   after a grace; `Job attempt duration exceeded timeout`) and termination requests (SIGTERM to
   the runner; the reason is read from the `terminate` file);
4. writes `result.json` atomically, then exits.

Standard library only: it starts fast and cannot break on the daemon's dependencies.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
EXITED_REASON = "Essential container in task exited"
START_FAILED_REASON = "Task failed to start"
TERMINATED_REASON = "Terminated"

SAMPLE_INTERVAL = 0.05      # seconds between memory/exit checks
DEFAULT_KILL_GRACE = 10.0   # seconds between SIGTERM and SIGKILL

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
    os.replace(tmp, path)


def exclusive_create(path: Path, text: str) -> bool:
    """Create `path` with `text` atomically and only if it does not exist yet (link(2) of a
    complete temp file). Returns False when someone else created it first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def proc_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, identifies a process
    across pid reuse. None when the process does not exist (or is a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if not fields or fields[0] == b"Z":
        return None
    return int(fields[19])


# ---------------------------------------------------------------------------- process tree
def _children_files_supported() -> bool:
    return os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _tree_via_children(root: int) -> set[int]:
    seen: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except OSError:
                pass
    return seen


def _tree_via_scan(root: int) -> set[int]:
    """Descendants of `root` plus members of its process group, by scanning /proc."""
    parent: dict[int, int] = {}
    members: set[int] = {root}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2:].split()
        if len(fields) < 3:
            continue
        pid = int(name)
        parent[pid] = int(fields[1])
        if int(fields[2]) == root:
            members.add(pid)
    kids: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        kids.setdefault(ppid, []).append(pid)
    todo = list(members)
    while todo:
        pid = todo.pop()
        for kid in kids.get(pid, ()):
            if kid not in members:
                members.add(kid)
                todo.append(kid)
    return members


FULL_SCAN_EVERY = 10        # without /proc/PID/task/TID/children: rescan /proc every 10 ticks


class TreeSampler:
    """Resident bytes of a process and all its descendants. Uses the kernel's children lists
    when available (cheap: every tick); otherwise rescans /proc every FULL_SCAN_EVERY ticks and
    re-reads the known members' RSS in between."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.use_children = _children_files_supported()
        self.pids: set[int] = {root}
        self.tick = 0

    def rss(self) -> int:
        if self.use_children:
            self.pids = _tree_via_children(self.root)
        elif self.tick % FULL_SCAN_EVERY == 0:
            self.pids = _tree_via_scan(self.root)
        self.tick += 1
        return pids_rss(self.pids)


def pids_rss(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------- the runner
class Runner:
    def __init__(self, jobdir: Path) -> None:
        self.jobdir = jobdir
        self.term_requested = False

    def _on_term(self, signum, frame) -> None:  # noqa: ARG002
        self.term_requested = True

    def terminate_reason(self) -> str:
        try:
            text = (self.jobdir / "terminate").read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        return text or TERMINATED_REASON

    def write_result(self, **fields: Any) -> None:
        result = {"status": "FAILED", "exit_code": None, "status_reason": None,
                  "container_reason": None, "started_at": None, "stopped_at": now_ms()}
        result.update(fields)
        atomic_write_json(self.jobdir / "result.json", result)

    def main(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        jobdir = self.jobdir
        if not exclusive_create(jobdir / "runner.pid", f"{os.getpid()}\n"):
            return 0  # someone else owns this job (or the daemon gave up on this launch)
        if (jobdir / "result.json").exists():
            return 0
        spec = json.loads((jobdir / "spec.json").read_text(encoding="utf-8"))
        if self.term_requested or (jobdir / "terminate").exists():
            self.write_result(status_reason=self.terminate_reason())
            return 0
        try:
            return self._run(spec)
        except BaseException as exc:  # never leave a job without a result
            child = getattr(self, "child", None)
            if child is not None:
                killpg(child.pid, signal.SIGKILL)
            self.write_result(status_reason=f"local runner error: {exc!r}",
                              started_at=getattr(self, "started_at", None))
            raise

    def _run(self, spec: dict[str, Any]) -> int:
        import subprocess

        jobdir = self.jobdir
        argv = [str(a) for a in spec["argv"]]
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
        env.update({
            "AWS_BATCH_JOB_ID": spec["job_id"],
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_JQ_NAME": spec.get("queue", ""),
            "AWS_BATCH_CE_NAME": "local",
            "BATCHD_JOB_NAME": spec["job_name"],
        })
        cwd = spec.get("workdir") or str(jobdir)
        memory = spec.get("memory")
        limit = int(memory) * 1024 * 1024 if memory else None
        timeout = spec.get("timeout")
        grace = float(spec.get("kill_grace") or DEFAULT_KILL_GRACE)

        self.started_at = now_ms()
        with open(jobdir / "log.txt", "ab", buffering=0) as log:
            try:
                self.child = subprocess.Popen(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
            except OSError as exc:
                text = exc.strerror or str(exc)
                where = exc.filename if exc.filename is not None else argv[0] if argv else ""
                msg = f"CannotStartContainerError: {text}: {where}" if where else \
                    f"CannotStartContainerError: {text}"
                log.write(f"batchd: cannot start {argv!r}: {text}\n".encode())
                self.write_result(status_reason=START_FAILED_REASON, container_reason=msg,
                                  started_at=self.started_at)
                return 0
        child = self.child
        start_ticks = proc_starttime(child.pid)
        atomic_write_json(jobdir / "child.pid", {"pid": child.pid, "starttime": start_ticks})

        sampler = TreeSampler(child.pid)
        deadline = time.monotonic() + float(timeout) if timeout else None
        kill_at: float | None = None     # SIGKILL time once SIGTERM was sent
        reason: str | None = None        # why we stopped it (None: it ended by itself)
        container_reason: str | None = None
        oom = False
        while True:
            rc = child.poll()
            if rc is not None:
                break
            now = time.monotonic()
            if reason is None:
                if self.term_requested:
                    reason = self.terminate_reason()
                elif deadline is not None and now >= deadline:
                    reason = TIMEOUT_REASON
                if reason is not None:
                    killpg(child.pid, signal.SIGTERM)
                    kill_at = now + grace
            elif kill_at is not None and now >= kill_at:
                killpg(child.pid, signal.SIGKILL)
                kill_at = None
            if limit is not None and not oom and sampler.rss() > limit:
                oom = True
                reason = container_reason = OOM_REASON
                killpg(child.pid, signal.SIGKILL)
                kill_at = None
            time.sleep(SAMPLE_INTERVAL)
        # The container is gone when its essential process ends: kill what it left behind.
        killpg(child.pid, signal.SIGKILL)
        exit_code = rc if rc >= 0 else 128 - rc
        if oom:
            exit_code = 137
        if reason is None and exit_code == 0:
            self.write_result(status="SUCCEEDED", exit_code=0, started_at=self.started_at)
        else:
            self.write_result(status="FAILED", exit_code=exit_code,
                              status_reason=reason or EXITED_REASON,
                              container_reason=container_reason, started_at=self.started_at)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m batchd.backends.local.runner JOBDIR", file=sys.stderr)
        return 2
    return Runner(Path(args[0])).main()


if __name__ == "__main__":
    sys.exit(main())
