"""Access control with real users: batchctl runs as different uids against a real daemon and
the daemon tells them apart with SO_PEERCRED. Needs root and useradd (CI runs as root)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("groupadd"),
    reason="creating test users needs root and useradd/groupadd")


class Users:
    """Throw-away users and groups, removed at the end even if the test fails."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.users: list[str] = []
        self.groups: list[str] = []

    def group(self, name: str) -> str:
        name = f"bd{self.tag}{name}"
        subprocess.run(["groupadd", name], check=True, capture_output=True)
        self.groups.append(name)
        return name

    def user(self, name: str, groups: list[str]) -> str:
        name = f"bd{self.tag}{name}"
        subprocess.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin",
                        "-G", ",".join(groups), name], check=True, capture_output=True)
        self.users.append(name)
        return name

    def remove(self) -> None:
        for name in self.users:
            subprocess.run(["userdel", name], capture_output=True)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def users():
    made = Users()
    yield made
    made.remove()


def login(user: str) -> dict:
    """subprocess arguments that give the child the user's uid, gid and groups, as a login
    would (`user=` alone would keep root's groups)."""
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid,
            "extra_groups": os.getgrouplist(user, entry.pw_gid)}


def _python_for(user: str, env: dict[str, str]) -> str:
    """batchctl is stdlib-only: any Python 3.9+ the test user may execute will do (the test
    interpreter can live under /root, which other users cannot enter)."""
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        try:
            if candidate and subprocess.run([candidate, "-c", "import batchctl.cli"],
                                            env=env, capture_output=True,
                                            **login(user)).returncode == 0:
                return candidate
        except OSError:
            continue
    pytest.skip(f"no Python interpreter that user {user} can run batchctl with")


@needs_root
def test_owner_admin_and_others(daemon_factory, users):
    sock_group = users.group("lab")                   # plays the `batchd` group
    admins = users.group("adm")
    daemon = daemon_factory("--backend", "local", "--poll-interval", "0.2",
                            env={"BATCHD_ADMIN_GROUP": admins}).start()
    alice = users.user("alice", [sock_group])
    bob = users.user("bob", [sock_group])
    carol = users.user("carol", [sock_group, admins])
    mallory = users.user("mal", [])                    # not in the socket group at all
    # What systemd's RuntimeDirectory=batchd (0750, group batchd) gives on a head node.
    gid = grp.getgrnam(sock_group).gr_gid
    os.chown(daemon.root, 0, gid)
    os.chmod(daemon.root, 0o750)
    os.chown(daemon.socket, 0, gid)

    (daemon.root / "samples.csv").write_text("sample_name,file_name\ns1,a\ns2,b\n")
    (daemon.root / "job.json").write_text(json.dumps({
        "jobDefinitionName": "touch-out",
        "containerProperties": {"command": ["python3", "-c",
                                            "import sys; open(sys.argv[1], 'w').write('x')",
                                            "Ref::out"], "vcpus": 1, "memory": 64}}))
    (daemon.root / "wf.json").write_text(json.dumps({
        "workflow_name": "wf", "analyses": [{
            "job_definition": "touch-out", "queue": "local", "outputs": ["out/{sample_name}"],
            "parameters": {"out": "out/{sample_name}"}}]}))
    (daemon.root / "out").mkdir()
    for name in ("samples.csv", "job.json", "wf.json"):
        (daemon.root / name).chmod(0o644)
    env = {k: v for k, v in daemon.env.items() if not k.startswith("XDG_")}
    python = _python_for(alice, env)

    def ctl(user: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, "-m", "batchctl", "--socket", str(daemon.socket), *args],
                              capture_output=True, text=True, env=env, **login(user),
                              cwd=daemon.root, timeout=60)

    # The socket's group keeps outsiders out entirely (exit 4, from the client).
    outsider = ctl(mallory, "dashboard")
    assert outsider.returncode == 4, outsider.stderr
    # job definitions: admins only (a local one's command runs as the daemon's user)
    assert ctl(alice, "jobdef", "register", "job.json").returncode == 4
    assert ctl(carol, "jobdef", "register", "job.json").returncode == 0
    assert ctl(alice, "import", "aproj", "--metadata", "samples.csv").returncode == 0
    # bob may not add work to alice's project...
    denied = ctl(bob, "create", "aproj", "--definition", "wf.json")
    assert denied.returncode == 4, denied.stderr
    assert f"{alice} (uid" in denied.stderr and admins in denied.stderr
    assert ctl(alice, "create", "aproj", "--definition", "wf.json").returncode == 0
    for args in (("submit", "aproj/wf"),
                 ("cancel", "aproj/wf", "--reason", "mine now", "--yes"),
                 ("resubmit", "aproj/wf"),
                 ("daemon", "stop", "--no-wait")):
        result = ctl(bob, *args)
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        assert "not allowed" in result.stderr
    # ... but may read everything.
    assert ctl(bob, "status", "aproj/wf").returncode == 0
    assert ctl(bob, "dashboard").returncode == 0
    assert ctl(bob, "daemon", "status").returncode == 0
    # An admin may act on anyone's project.
    submitted = ctl(carol, "submit", "aproj/wf")
    assert submitted.returncode == 0, submitted.stderr
    daemon.wait_for("aproj/wf")
    assert ctl(alice, "resubmit", "aproj/wf", "--force").returncode == 0
    daemon.assert_alive()

    audit = daemon.events("audit")
    by = {(e["user"], e["action"], e["outcome"]) for e in audit}
    assert (bob, "submit", "denied") in by and (bob, "shutdown", "denied") in by
    assert (bob, "create", "denied") in by and (bob, "cancel", "denied") in by
    assert (carol, "submit", "ok") in by and (alice, "import", "ok") in by
    assert (carol, "jobdef_register", "ok") in by and (alice, "resubmit", "ok") in by
    assert (alice, "jobdef_register", "denied") in by
    uids = {e["user"]: e["uid"] for e in audit}
    assert uids[alice] == int(subprocess.run(["id", "-u", alice], capture_output=True,
                                             text=True).stdout)
    assert all(e["target"] for e in audit if e["action"] != "shutdown")
    assert [e["target"] for e in audit if e["user"] == alice and e["action"] == "import"] \
        == ["aproj"]
