"""The local backend with real runner processes and real files (tmp_path)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchd.backends.base import SubmitRequest
from batchd.backends.local.backend import LocalBackend
from batchd.backends.local.outputs import LocalOutputStore
from batchd.backends.local.runner import OOM_REASON, TIMEOUT_REASON, proc_starttime
from batchd.backends.local.scheduler import HOST_TERMINATED
from batchd.errors import PermanentBackendError, Unavailable

PY = sys.executable


def _kill_leftovers(root: Path) -> None:
    """End the runners/commands these tests started (by their recorded pids), if any remain."""
    for jobdir in (root / "local" / "jobs").glob("*"):
        child = jobdir / "child.pid"
        if child.exists():
            info = json.loads(child.read_text())
            if info.get("starttime") is not None and proc_starttime(info["pid"]) == info[
                    "starttime"]:
                try:
                    os.killpg(info["pid"], signal.SIGKILL)
                except OSError:
                    pass
        pidf = jobdir / "runner.pid"
        if pidf.exists():
            pid = int(pidf.read_text().split()[0] or 0)
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if pid and os.fsencode(str(jobdir)) in cmd:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


class Harness:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.backends: list[tuple[LocalBackend, asyncio.Task | None]] = []

    async def backend(self, *, vcpus: float = 4, memory: int = 8192, run: bool = True,
                      **kw) -> LocalBackend:
        b = LocalBackend(self.state_dir, vcpus=vcpus, memory=memory, kill_grace=1.0, **kw)
        await b.start()
        task = asyncio.create_task(b.run()) if run else None
        self.backends.append((b, task))
        return b

    async def stop(self, b: LocalBackend) -> None:
        for i, (bb, task) in enumerate(self.backends):
            if bb is b:
                if task is not None:
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                await b.close()
                del self.backends[i]
                return

    async def stop_all(self) -> None:
        for b, _ in list(self.backends):
            await self.stop(b)


@pytest.fixture
async def h(tmp_path):
    harness = Harness(tmp_path / "state")
    try:
        yield harness
    finally:
        await harness.stop_all()
        _kill_leftovers(tmp_path / "state")


async def wait_status(b: LocalBackend, job_id: str, statuses, timeout: float = 10.0):
    statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    deadline = time.monotonic() + timeout
    while True:
        [st] = await b.describe([job_id])
        if st.status in statuses:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {st.status} ({st.status_reason}), "
                                 f"wanted {statuses}")
        await asyncio.sleep(0.05)


def jobdef(name: str = "jd", command=None, **extra) -> dict:
    spec = {"jobDefinitionName": name, "type": "container",
            "containerProperties": {"image": "ignored", "command": command or ["true"],
                                    "vcpus": 1, "memory": 2048}}
    spec.update(extra)
    return spec


async def logs(b: LocalBackend, stream: str) -> list[str]:
    return [line async for line in b.fetch_logs(stream)]


# --------------------------------------------------------------------------- job definitions
async def test_register_revisions_and_resolution(h):
    b = await h.backend(run=False)
    r1 = await b.register_job_definition(jobdef("align", ["echo", "one"]))
    r2 = await b.register_job_definition(jobdef("align", ["echo", "two"]))
    assert (r1["revision"], r2["revision"]) == (1, 2)
    assert r2["jobDefinitionArn"] == "arn:batchd:local:jobdef/align:2"
    assert (b.root / "jobdefs" / "align" / "1.json").exists()
    listed = await b.list_job_definitions()
    assert [(d["jobDefinitionName"], d["revision"]) for d in listed] == [("align", 1), ("align", 2)]
    assert b.jobdefs.resolve("align")["containerProperties"]["command"] == ["echo", "two"]
    assert b.jobdefs.resolve("align:1")["containerProperties"]["command"] == ["echo", "one"]
    assert b.jobdefs.resolve(r1["jobDefinitionArn"])["revision"] == 1
    with pytest.raises(PermanentBackendError, match="does not exist; register it"):
        await b.submit(SubmitRequest(job_name="x", queue="q", job_definition="nope"))
    with pytest.raises(PermanentBackendError):
        await b.submit(SubmitRequest(job_name="x", queue="q", job_definition="align:7"))
    # a new backend on the same directory sees them and keeps numbering
    await h.stop(b)
    b2 = await h.backend(run=False)
    assert (await b2.register_job_definition(jobdef("align")))["revision"] == 3


# --------------------------------------------------------------------------- running jobs
async def test_success_writes_file_and_captures_log(h, tmp_path):
    b = await h.backend()
    out = tmp_path / "out.txt"
    await b.register_job_definition({"jobDefinitionName": "w", "containerProperties": {
        "vcpus": 1, "memory": 2048,
        "command": [PY, "-c", "import os,sys; open(sys.argv[1],'w').write("
                    "os.environ['BATCHD_JOB_NAME'] + ' ' + os.environ['AWS_BATCH_JOB_ID']"
                    " + ' ' + os.environ['GREETING'] + ' ' + os.getcwd());"
                    " print('to stdout', flush=True); print('to stderr', file=sys.stderr)",
                    "Ref::out"],
        "environment": [{"name": "GREETING", "value": "jobdef"}]}})
    job_id = await b.submit(SubmitRequest(job_name="job-1", queue="q", job_definition="w",
                                          parameters={"out": str(out)},
                                          environment={"GREETING": "override"},
                                          workdir=str(tmp_path)))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"))
    assert st.status == "SUCCEEDED", st
    assert st.exit_code == 0 and st.log_stream == job_id
    assert st.created_at <= st.started_at <= st.stopped_at
    assert (st.vcpus, st.memory) == (1.0, 2048)
    assert out.read_text() == f"job-1 {job_id} override {tmp_path}"
    assert await logs(b, job_id) == ["to stdout", "to stderr"]
    assert (await b.find_by_name("job-1", "q")).job_id == job_id
    assert await b.find_by_name("job-1", "other-queue") is None
    state = json.loads((b.root / "jobs" / job_id / "state.json").read_text())
    assert state["status"] == "SUCCEEDED"


async def test_ref_parameters_are_passed_literally_without_a_shell(h, tmp_path):
    b = await h.backend()
    marker = tmp_path / "pwned"
    argv_file = tmp_path / "argv.json"
    await b.register_job_definition({
        "jobDefinitionName": "p",
        "parameters": {"mode": "default-mode", "evil": "unused default"},
        "containerProperties": {"vcpus": 1, "memory": 2048, "command": [
            PY, "-c", "import json,sys; json.dump(sys.argv[1:], open(sys.argv[1],'w'))",
            str(argv_file), "Ref::mode", "Ref::evil", "--x=Ref::mode", "Ref::missing"]}})
    evil = f"a b; touch {marker} $(touch {marker}) `touch {marker}` > /dev/null"
    job_id = await b.submit(SubmitRequest(job_name="p1", queue="q", job_definition="p",
                                          parameters={"evil": evil}))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"))
    assert st.status == "SUCCEEDED", st
    assert json.loads(argv_file.read_text()) == [
        str(argv_file), "default-mode", evil, "--x=default-mode", "Ref::missing"]
    assert not marker.exists()
    spec = json.loads((b.root / "jobs" / job_id / "spec.json").read_text())
    assert spec["argv"][5] == evil


async def test_command_override_and_nonzero_exit(h):
    b = await h.backend()
    await b.register_job_definition(jobdef("e", ["true"]))
    job_id = await b.submit(SubmitRequest(
        job_name="e1", queue="q", job_definition="e",
        command=[PY, "-c", "import sys; print('bad input'); sys.exit(3)"]))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"))
    assert (st.status, st.exit_code, st.status_reason) == (
        "FAILED", 3, "Essential container in task exited")
    assert await logs(b, job_id) == ["bad input"]


async def test_command_that_cannot_start(h, tmp_path):
    b = await h.backend()
    await b.register_job_definition(jobdef("m", [str(tmp_path / "no-such-tool"), "x"]))
    job_id = await b.submit(SubmitRequest(job_name="m1", queue="q", job_definition="m"))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"))
    assert st.status == "FAILED" and st.exit_code is None
    assert st.container_reason.startswith("CannotStartContainerError: No such file or directory")


async def test_out_of_memory_is_killed_like_aws(h):
    b = await h.backend()
    await b.register_job_definition(jobdef("oom", [
        PY, "-c", "import time; x = bytearray(300 * 1024 * 1024)\n"
        "for i in range(0, len(x), 4096): x[i] = 1\n"
        "print('allocated', flush=True); time.sleep(30)"]))
    job_id = await b.submit(SubmitRequest(job_name="oom1", queue="q", job_definition="oom",
                                          memory=100))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"), timeout=15)
    assert (st.status, st.exit_code) == ("FAILED", 137)
    assert OOM_REASON in (st.status_reason, st.container_reason)
    assert st.container_reason == "OutOfMemoryError: Container killed due to memory usage"
    assert st.memory == 100


async def test_out_of_memory_in_a_grandchild_counts(h):
    """The limit applies to the whole process tree, not just the command's own process."""
    b = await h.backend()
    hog = ("import time; x = bytearray(300 * 1024 * 1024)\n"
           "for i in range(0, len(x), 4096): x[i] = 1\n"
           "time.sleep(30)")
    await b.register_job_definition(jobdef("oom2", [
        PY, "-c", "import subprocess,sys; subprocess.run([sys.executable, '-c', sys.argv[1]])",
        hog]))
    job_id = await b.submit(SubmitRequest(job_name="oom2", queue="q", job_definition="oom2",
                                          memory=100))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"), timeout=15)
    assert (st.status, st.exit_code, st.container_reason) == ("FAILED", 137, OOM_REASON)


async def test_timeout(h):
    b = await h.backend()
    await b.register_job_definition(jobdef("t", [PY, "-c", "import time; time.sleep(30)"]))
    job_id = await b.submit(SubmitRequest(job_name="t1", queue="q", job_definition="t",
                                          timeout=1))
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"), timeout=10)
    assert (st.status, st.status_reason) == ("FAILED", TIMEOUT_REASON)
    assert st.exit_code == 143        # SIGTERM
    assert 900 <= st.stopped_at - st.started_at < 5000


# --------------------------------------------------------------------------- scheduling
async def test_capacity_runs_jobs_one_after_the_other(h):
    b = await h.backend(vcpus=1, memory=4096)
    await b.register_job_definition(jobdef("s", [PY, "-c", "import time; time.sleep(0.4)"]))
    a = await b.submit(SubmitRequest(job_name="a", queue="q", job_definition="s"))
    c = await b.submit(SubmitRequest(job_name="c", queue="q", job_definition="s"))
    await wait_status(b, a, ("STARTING", "RUNNING", "SUCCEEDED"))
    [st_c] = await b.describe([c])
    assert st_c.status == "RUNNABLE" and st_c.status_reason is None
    st_a = await wait_status(b, a, "SUCCEEDED")
    st_c = await wait_status(b, c, "SUCCEEDED")
    assert st_c.started_at >= st_a.stopped_at


async def test_job_bigger_than_capacity_stays_runnable(h):
    b = await h.backend(vcpus=2, memory=4096)
    await b.register_job_definition({
        "jobDefinitionName": "big", "containerProperties": {
            "command": ["true"], "resourceRequirements": [
                {"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "1000"}]}})
    big = await b.submit(SubmitRequest(job_name="big", queue="q", job_definition="big"))
    small = await b.submit(SubmitRequest(job_name="small", queue="q", job_definition="big",
                                         vcpus=1))
    await wait_status(b, small, "SUCCEEDED")
    [st] = await b.describe([big])
    assert st.status == "RUNNABLE" and (st.vcpus, st.memory) == (8.0, 1000)
    assert st.status_reason.startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job "
                                       "asks for 8 vCPUs / 1000 MiB")
    assert (await b.queues(["q"]))[0].max_vcpus == 2
    # and it can still be cancelled
    await b.cancel(big, "nobody can run this", terminate=False)
    [st] = await b.describe([big])
    assert (st.status, st.status_reason) == ("FAILED", "nobody can run this")


async def test_duplicate_name_returns_same_job_and_runs_once(h, tmp_path):
    b = await h.backend()
    counter = tmp_path / "count"
    await b.register_job_definition(jobdef("d", [
        PY, "-c", "import sys; open(sys.argv[1],'a').write('x\\n')", str(counter)]))
    req = SubmitRequest(job_name="dup", queue="q", job_definition="d")
    first = await b.submit(req)
    assert await b.submit(req) == first
    await wait_status(b, first, "SUCCEEDED")
    assert await b.submit(req) == first
    # a new backend instance on the same state (the name index is on disk)
    await h.stop(b)
    b2 = await h.backend(run=False)
    assert await b2.submit(req) == first
    # and even without the in-memory index: the atomic symlink decides
    b2._names.clear()
    assert await b2.submit(req) == first
    assert len(list((b.root / "jobs").iterdir())) == 1
    assert counter.read_text() == "x\n"
    # same name, other queue: a different job
    assert await b2.submit(SubmitRequest(job_name="dup", queue="q2", job_definition="d")) != first


# --------------------------------------------------------------------------- restarts
async def test_restart_adopts_running_job_and_runs_it_once(h, tmp_path):
    counter = tmp_path / "count"
    b = await h.backend()
    await b.register_job_definition(jobdef("slow", [
        PY, "-c", "import sys,time; time.sleep(1.0); open(sys.argv[1],'a').write('run\\n')",
        str(counter)]))
    req = SubmitRequest(job_name="slow-1", queue="q", job_definition="slow")
    job_id = await b.submit(req)
    await wait_status(b, job_id, "RUNNING")
    await h.stop(b)                                   # the daemon goes away
    b2 = await h.backend()                            # ... and comes back
    [st] = await b2.describe([job_id])
    assert st.status == "RUNNING"
    assert await b2.submit(req) == job_id             # reconciliation by name
    st = await wait_status(b2, job_id, "SUCCEEDED")
    assert counter.read_text() == "run\n"
    # a third start finds it terminal and does not run it again
    await h.stop(b2)
    b3 = await h.backend()
    [st] = await b3.describe([job_id])
    assert st.status == "SUCCEEDED" and st.exit_code == 0
    await asyncio.sleep(0.3)
    assert counter.read_text() == "run\n"


async def test_restart_schedules_jobs_that_never_started(h, tmp_path):
    b = await h.backend(vcpus=1, run=False)          # no scheduler: jobs stay RUNNABLE
    await b.register_job_definition(jobdef("q", ["true"]))
    ids = [await b.submit(SubmitRequest(job_name=f"n{i}", queue="q", job_definition="q"))
           for i in range(3)]
    await h.stop(b)
    b2 = await h.backend(vcpus=1)
    sts = [await wait_status(b2, i, "SUCCEEDED") for i in ids]
    assert [s.started_at for s in sts] == sorted(s.started_at for s in sts)   # FIFO kept


async def test_interrupted_launch_is_failed_and_cannot_start_later(h):
    """Crash after state.json said STARTING but before any runner claimed the job."""
    b = await h.backend(run=False)
    await b.register_job_definition(jobdef("x", ["true"]))
    job_id = await b.submit(SubmitRequest(job_name="x1", queue="q", job_definition="x"))
    job = b._jobs[job_id]
    b.scheduler.set_status(job, "STARTING")
    await h.stop(b)
    b2 = await h.backend()
    [st] = await b2.describe([job_id])
    assert (st.status, st.status_reason) == ("FAILED", HOST_TERMINATED)
    # a late runner loses the claim and does nothing
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "batchd.backends.local.runner", str(job.jobdir))
    assert await proc.wait() == 0
    assert not (job.jobdir / "result.json").exists()


async def test_runner_killed_is_reported_as_host_terminated(h):
    b = await h.backend()
    await b.register_job_definition(jobdef("k", [PY, "-c", "import time; time.sleep(30)"]))
    job_id = await b.submit(SubmitRequest(job_name="k1", queue="q", job_definition="k"))
    await wait_status(b, job_id, "RUNNING")
    jobdir = b.root / "jobs" / job_id
    deadline = time.monotonic() + 5
    while not (jobdir / "child.pid").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    child = json.loads((jobdir / "child.pid").read_text())
    os.kill(int((jobdir / "runner.pid").read_text()), signal.SIGKILL)
    st = await wait_status(b, job_id, ("SUCCEEDED", "FAILED"))
    assert (st.status, st.status_reason, st.exit_code) == ("FAILED", HOST_TERMINATED, None)
    # the orphaned command was killed too (the "machine" went away)
    deadline = time.monotonic() + 3
    while proc_starttime(child["pid"]) == child["starttime"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert proc_starttime(child["pid"]) != child["starttime"]


async def test_runner_died_while_daemon_was_down(h):
    b = await h.backend()
    await b.register_job_definition(jobdef("k", [PY, "-c", "import time; time.sleep(30)"]))
    job_id = await b.submit(SubmitRequest(job_name="k1", queue="q", job_definition="k"))
    await wait_status(b, job_id, "RUNNING")
    await h.stop(b)
    jobdir = b.root / "jobs" / job_id
    pid = int((jobdir / "runner.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    while proc_starttime(pid) is not None:
        await asyncio.sleep(0.02)
    b2 = await h.backend()
    [st] = await b2.describe([job_id])
    assert (st.status, st.status_reason) == ("FAILED", HOST_TERMINATED)


# --------------------------------------------------------------------------- cancel/terminate
async def test_cancel_and_terminate(h, tmp_path):
    b = await h.backend(vcpus=1)
    await b.register_job_definition(jobdef("c", [
        PY, "-c", "import time; print('started', flush=True); time.sleep(30)"]))
    running = await b.submit(SubmitRequest(job_name="r", queue="q", job_definition="c"))
    queued = await b.submit(SubmitRequest(job_name="w", queue="q", job_definition="c"))
    await wait_status(b, running, "RUNNING")
    # cancel without terminate: only queued jobs are affected
    await b.cancel(running, "user cancelled", terminate=False)
    await b.cancel(queued, "user cancelled", terminate=False)
    assert (await b.describe([running]))[0].status == "RUNNING"
    st = (await b.describe([queued]))[0]
    assert (st.status, st.status_reason) == ("FAILED", "user cancelled")
    # terminate a running job
    await b.cancel(running, "Terminated by batchctl cancel", terminate=True)
    st = await wait_status(b, running, ("SUCCEEDED", "FAILED"), timeout=5)
    assert (st.status, st.status_reason) == ("FAILED", "Terminated by batchctl cancel")
    assert st.exit_code == 143
    # the cancelled one never ran; capacity is free again
    await asyncio.sleep(0.3)
    assert (await b.describe([queued]))[0].started_at is None
    with pytest.raises(PermanentBackendError):
        await b.cancel("0" * 32, "x", terminate=True)


# --------------------------------------------------------------------------- logs
async def test_fetch_logs_streams_many_lines(h):
    b = await h.backend()
    await b.register_job_definition(jobdef("l", [
        PY, "-c",
        "import sys\nfor i in range(10000): sys.stdout.write(f'line {i} ' + 'x' * 50 + '\\n')"]))
    job_id = await b.submit(SubmitRequest(job_name="l1", queue="q", job_definition="l"))
    await wait_status(b, job_id, "SUCCEEDED")
    lines = await logs(b, job_id)
    assert len(lines) == 10000
    assert lines[0].startswith("line 0 ") and lines[-1].startswith("line 9999 ")
    assert await logs(b, "../../etc") == []
    assert await logs(b, "f" * 32) == []


# --------------------------------------------------------------------------- output store
async def test_output_store(tmp_path):
    present = tmp_path / "a b.txt"
    present.write_text("x")
    locked_dir = tmp_path / "locked"
    locked_dir.mkdir()
    (locked_dir / "f").write_text("x")

    class FakeS3(LocalOutputStore):
        async def exists_many(self, uris, groups=None):
            return {u: u.endswith("yes") for u in uris}

    store = LocalOutputStore()
    uris = [str(present), f"file://{tmp_path}/a%20b.txt", str(tmp_path / "missing"),
            "s3://bucket/key", "relative/path", str(present / "under-a-file")]
    got = await store.exists_many(uris)
    assert got == {str(present): True, f"file://{tmp_path}/a%20b.txt": True,
                   str(tmp_path / "missing"): False, "s3://bucket/key": None,
                   "relative/path": None, str(present / "under-a-file"): False}
    with_s3 = LocalOutputStore(s3=FakeS3())
    got = await with_s3.exists_many(["s3://b/yes", "s3://b/no", str(present)])
    assert got == {"s3://b/yes": True, "s3://b/no": False, str(present): True}
    if os.geteuid() != 0:
        os.chmod(locked_dir, 0)
        try:
            assert (await store.exists_many([str(locked_dir / "f")])) == {
                str(locked_dir / "f"): None}
        finally:
            os.chmod(locked_dir, 0o755)


async def test_one_backend_per_state_dir(h):
    b = await h.backend(run=False)
    with pytest.raises(Unavailable, match="another batchd"):
        await h.backend(run=False)
    await h.stop(b)
    await h.backend(run=False)


DAEMON = """
import asyncio, sys
from pathlib import Path
from batchd.backends.base import SubmitRequest
from batchd.backends.local.backend import LocalBackend

async def main(state, counter):
    b = LocalBackend(Path(state), vcpus=2, memory=4096)
    await b.start()
    asyncio.get_running_loop().create_task(b.run())
    await b.register_job_definition({"jobDefinitionName": "slow", "containerProperties": {
        "vcpus": 1, "memory": 256, "command": [sys.executable, "-c",
        "import sys,time; time.sleep(1.0); open(sys.argv[1],'a').write('run' + chr(10))",
        counter]}})
    job_id = await b.submit(SubmitRequest(job_name="s1", queue="q", job_definition="slow"))
    while (await b.describe([job_id]))[0].status != "RUNNING":
        await asyncio.sleep(0.05)
    print("JOB", job_id, flush=True)
    await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_daemon_killed_with_sigkill_job_survives_and_is_adopted(h, tmp_path):
    counter = tmp_path / "count"
    proc = await asyncio.create_subprocess_exec(
        PY, "-c", DAEMON, str(h.state_dir), str(counter),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        async def job_line() -> str:
            while line := (await proc.stdout.readline()).decode():
                if line.startswith("JOB "):
                    return line.split()[1]
            raise AssertionError("the daemon process ended early")
        job_id = await asyncio.wait_for(job_line(), 10)
    finally:
        proc.kill()                                   # SIGKILL the "daemon"
        await proc.wait()
    b = await h.backend()
    [st] = await b.describe([job_id])
    assert st.status == "RUNNING"                     # adopted: not our child any more
    await wait_status(b, job_id, "SUCCEEDED")
    assert counter.read_text() == "run\n"


@pytest.mark.parametrize("module", ["batchd.backends.local.runner",
                                    "batchd.backends.local_runner"])  # a pre-layout batchd's
def test_runner_of_either_module_name_is_recognised(tmp_path, module):
    """A runner outlives the daemon that started it: after an upgrade that moved the runner's
    module, the new daemon must still see the old runner's job as running, or it would fail
    the job as host-terminated and kill a healthy command."""
    from batchd.backends.local.jobs import _runner_alive
    jobdir = tmp_path / "jobs" / ("a" * 32)
    jobdir.mkdir(parents=True)
    # argv shaped like `python -m MODULE JOBDIR`: the module name and the job dir as elements
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(30)", module, str(jobdir)])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _runner_alive(proc.pid, jobdir):
            time.sleep(0.02)
        assert _runner_alive(proc.pid, jobdir)
        assert not _runner_alive(proc.pid, tmp_path / "jobs" / ("b" * 32))
    finally:
        proc.kill()
        proc.wait()
    assert not _runner_alive(proc.pid, jobdir)


def test_a_process_that_is_not_a_runner_is_not_taken_for_one(tmp_path):
    jobdir = tmp_path / "jobs" / ("c" * 32)
    jobdir.mkdir(parents=True)
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(30)", "batchd.other",
                             str(jobdir)])
    try:
        time.sleep(0.2)
        from batchd.backends.local.jobs import _runner_alive
        assert not _runner_alive(proc.pid, jobdir)
    finally:
        proc.kill()
        proc.wait()
