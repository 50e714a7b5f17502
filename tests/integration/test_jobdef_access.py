"""Registering job definitions is reserved to admins: real users (SO_PEERCRED) against a real
daemon on the aws backend (the project's fake AWS, whose call counter is the referee: a refused
registration must never reach "AWS") and on the local backend. Needs root and useradd."""

from __future__ import annotations

import grp
import json
import os
import subprocess

import pytest

from tests.fakeaws_process import FakeAwsProcess, new_aws_daemon
from tests.integration.test_access import Users, _python_for, login, needs_root

pytestmark = [pytest.mark.integration, needs_root]

JOBDEF = {"jobDefinitionName": "aligner",
          "containerProperties": {"image": "busybox", "command": ["true"], "vcpus": 1,
                                  "memory": 64, "jobRoleArn": "arn:aws:iam::1:role/s3-admin",
                                  "privileged": True}}


@pytest.fixture
def users():
    made = Users()
    yield made
    made.remove()


@pytest.fixture
def fake():
    process = FakeAwsProcess({"time_scale": 1000}, isolate_env=True)
    yield process
    process.stop()


def _lab(daemon, users: Users, admins: str):
    """alice (lab member) and carol (lab member and admin), and a batchctl runner for them;
    the socket is group-accessible as systemd's RuntimeDirectory makes it."""
    sock_group = users.group("lab")
    alice = users.user("alice", [sock_group])
    carol = users.user("carol", [sock_group, admins])
    gid = grp.getgrnam(sock_group).gr_gid
    os.chown(daemon.root, 0, gid)
    os.chmod(daemon.root, 0o750)
    os.chown(daemon.socket, 0, gid)
    path = daemon.root / "aligner.json"
    path.write_text(json.dumps(JOBDEF))
    path.chmod(0o644)
    env = {k: v for k, v in daemon.env.items() if not k.startswith("XDG_")}
    python = _python_for(alice, env)

    def ctl(user: str | None, *args: str) -> subprocess.CompletedProcess:
        who = login(user) if user else {}
        return subprocess.run([python, "-m", "batchctl", "--socket", str(daemon.socket), *args],
                              capture_output=True, text=True, env=env, cwd=daemon.root,
                              timeout=60, **who)

    return alice, carol, ctl


def test_on_aws_only_admins_register_and_everyone_lists(fake, users):
    admins = users.group("adm")
    daemon = new_aws_daemon(fake.url, "--poll-interval", "0.5")
    daemon.env["BATCHD_ADMIN_GROUP"] = admins
    try:
        daemon.start()
        alice, carol, ctl = _lab(daemon, users, admins)

        denied = ctl(alice, "jobdef", "register", "aligner.json")
        assert denied.returncode == 4, (denied.stdout, denied.stderr)
        assert (f"registering job definitions on the aws backend is limited to members of "
                f"group '{admins}' (setting [access] admin_group); ask an admin"
                in denied.stderr)
        assert "Traceback" not in denied.stderr
        assert fake.calls("RegisterJobDefinition") == 0

        allowed = ctl(carol, "jobdef", "register", "aligner.json")
        assert allowed.returncode == 0, allowed.stderr
        assert ctl(None, "jobdef", "register", "aligner.json").returncode == 0   # root
        assert fake.calls("RegisterJobDefinition") == 2

        listed = ctl(alice, "jobdef", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert "aligner" in listed.stdout

        audit = {(e["user"], e["action"], e["outcome"], e["target"])
                 for e in daemon.events("audit")}
        assert (alice, "jobdef_register", "denied", "aligner") in audit
        assert (carol, "jobdef_register", "ok", "aligner") in audit
    finally:
        daemon.cleanup()


def test_on_local_registering_is_admin_only_too(daemon_factory, users):
    """A local job definition's command runs as the daemon's user (here root)."""
    admins = users.group("adm")
    daemon = daemon_factory("--backend", "local", env={"BATCHD_ADMIN_GROUP": admins}).start()
    alice, carol, ctl = _lab(daemon, users, admins)
    denied = ctl(alice, "jobdef", "register", "aligner.json")
    assert denied.returncode == 4, (denied.stdout, denied.stderr)
    assert "on the local backend is limited to members of group" in denied.stderr
    assert "aligner" not in ctl(alice, "jobdef", "list", "--json").stdout
    assert ctl(carol, "jobdef", "register", "aligner.json").returncode == 0
    assert "aligner" in ctl(alice, "jobdef", "list", "--json").stdout
