"""A daemon (re)started while its disk is full must come up, answer, and recover once space is
freed. Found by the chaos run (test_chaos.py): after a SIGKILL during a SubmitJob, start-up
marks the attempt's outcome unknown, a write; on a full disk that write failed and the daemon
exited, every time. systemd gives up after 5 failed starts (StartLimitBurst), so batchd stayed
down even after space was freed. The full disk is real: a 32 MiB tmpfs (needs root)."""

from __future__ import annotations

import json

import pytest

from batchd.crashpoints import EXIT_CODE
from tests import raw_http
from tests.e2e.aws_fixtures import Ops, analysis, aws_daemon_factory, fake_aws_factory, samples_csv  # noqa: F401 - fixtures
from tests.e2e.fake_fixtures import wait_until
from tests.e2e.test_chaos import Disk

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk():
    made: list[Disk] = []

    def make(path) -> Disk:
        disk = Disk(path)
        disk.mount()
        made.append(disk)
        if not disk.mounted:
            pytest.skip("cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN)")
        return disk

    yield make
    for disk in made:
        disk.unmount()


def test_a_restart_on_a_full_disk_comes_up_and_recovers(fake_aws_factory, aws_daemon_factory,  # noqa: F811
                                                         small_disk):
    fake = fake_aws_factory()
    daemon = aws_daemon_factory(fake.url)
    disk = small_disk(daemon.state_dir)
    daemon.env["BATCHD_CRASH_AT"] = "backend.submit:before:1"   # dies with an attempt sent
    daemon.start()
    target = Ops(daemon).setup("full", samples_csv(["a"]),
                               {"workflow_name": "wf", "analyses": [analysis(0)]})
    wait_until(lambda: daemon.proc.poll() is not None, 30, "the crash before SubmitJob")
    assert daemon.proc.returncode == EXIT_CODE
    daemon.stop()
    del daemon.env["BATCHD_CRASH_AT"]

    disk.fill(0)
    daemon.start()                   # the old code exited here: "database or disk is full"
    assert daemon.ctl_json("status", target)["counts"] == {"SUBMITTING": 1}
    code, body = raw_http.get(daemon.socket, "/healthz")
    assert code == 503 and json.loads(body)["db_writable"] is False
    assert daemon.events("startup_paused_state_unwritable")

    disk.maybe_free(force=True)
    status = Ops(daemon).wait_for(target, timeout=120)
    assert status["counts"] == {"COMPLETED": 1}
    stats = fake.stats(names=True)
    assert stats["duplicate_job_names"] == {} and stats["jobs_created"] == 1
    assert set(stats["submits_by_name"].values()) == {1}
