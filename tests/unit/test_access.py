"""The access policy with injected credentials and group lookups (no real users needed)."""

from __future__ import annotations

import pytest

from batchd.api.access import Policy
from batchd.api.peercred import Caller
from batchd.errors import PermissionDenied

ADMINS_GID = 5000
GROUPS = {1001: {1001}, 1002: {1002, 100}, 1003: {1003, ADMINS_GID}}


def policy(daemon_uid: int = 990) -> Policy:
    return Policy("lab-admins", daemon_uid=daemon_uid,
                  groups_of=lambda uid, gid: GROUPS.get(uid, set()) | ({gid} if gid else set()),
                  gid_of=lambda name: ADMINS_GID if name == "lab-admins" else None)


def caller(uid: int | None, gid: int | None = None) -> Caller:
    return Caller(pid=123, uid=uid, gid=gid if gid is not None else uid)


@pytest.mark.parametrize("who, allowed", [
    (caller(1001), True),            # the owner
    (caller(1002), False),           # another lab member
    (caller(1003), True),            # member of the admin group (supplementary)
    (caller(1002, ADMINS_GID), True),  # ... or as primary group (SO_PEERCRED gid)
    (caller(0), True),               # root
    (caller(990), True),             # the daemon's own user
    (caller(None), False),           # not a Unix-socket caller
])
def test_who_may_change_a_project(who, allowed):
    assert policy().may_change(who, owner_uid=1001) is allowed


def test_denial_names_the_owner_and_how_to_get_access():
    with pytest.raises(PermissionDenied) as info:
        policy().require_owner(caller(1002), action="submit", project="rnaseq",
                               owner_uid=1001, owner_name="alice")
    message = info.value.message
    assert "may not submit in project 'rnaseq'" in message
    assert "alice (uid 1001)" in message and "lab-admins" in message
    assert info.value.http_status == 403 and info.value.details["owner"] == "alice (uid 1001)"


def test_project_without_owner_is_admin_only():
    assert not policy().may_change(caller(1001), owner_uid=None)
    assert policy().may_change(caller(1003), owner_uid=None)


def test_missing_admin_group_grants_nothing():
    p = Policy("no-such-group", daemon_uid=990, groups_of=lambda uid, gid: {ADMINS_GID},
               gid_of=lambda name: None)
    assert not p.is_admin(caller(1003))
    assert p.is_admin(caller(0))


def test_stopping_the_daemon_is_admin_only():
    with pytest.raises(PermissionDenied, match="may not stop batchd"):
        policy().require_admin(caller(1001), action="stop")
    policy().require_admin(caller(1003), action="stop")
    policy().require_admin(caller(990), action="stop")


def test_admin_group_can_change_at_runtime():
    p = policy()
    assert not p.is_admin(caller(1002))
    p.admin_group = "lab-admins"
    assert p.is_admin(caller(1003))


@pytest.mark.parametrize("backend", ["aws", "local"])
@pytest.mark.parametrize("who, allowed", [
    (caller(1001), False),             # a project owner is not thereby a jobdef admin
    (caller(1003), True),              # member of the admin group
    (caller(1002, ADMINS_GID), True),  # ... as primary group
    (caller(0), True),                 # root
    (caller(990), True),               # the daemon's own user (a personal daemon)
    (caller(None), False),
])
def test_registering_job_definitions_is_admin_only(backend, who, allowed):
    if allowed:
        policy().require_jobdef_admin(who, backend=backend)
        return
    with pytest.raises(PermissionDenied) as info:
        policy().require_jobdef_admin(who, backend=backend)
    assert info.value.http_status == 403 and info.value.code == "permission_denied"
    assert (f"registering job definitions on the {backend} backend is limited to members of "
            "group 'lab-admins' (setting [access] admin_group); ask an admin"
            in info.value.message)


def test_without_an_admin_group_only_root_and_the_daemon_user_register():
    p = Policy("", daemon_uid=990, groups_of=lambda uid, gid: {ADMINS_GID},
               gid_of=lambda name: ADMINS_GID)   # an empty name must never match a group
    with pytest.raises(PermissionDenied, match="limited to root and the daemon's own user"):
        p.require_jobdef_admin(caller(1003), backend="aws")
    p.require_jobdef_admin(caller(0), backend="aws")
    p.require_jobdef_admin(caller(990), backend="aws")
