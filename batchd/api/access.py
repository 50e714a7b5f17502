"""Who may change what, and the audit trail of every change.

The socket's file mode decides who may talk to batchd at all (group `batchd` on a head node).
Everyone who can connect may *read* (status, dashboard, logs): a lab shares its view of the
queue. *Changing* a project's work (create a workflow, submit, cancel, resubmit) is reserved to
the project's owner (the uid that imported it, from SO_PEERCRED, which a client cannot forge),
root, the daemon's own uid (a personal daemon serves just its user) and members of
`settings.admin_group` (lab managers). Stopping the daemon is reserved to the last three.

Registering a job definition (a new name or a new revision of one) is reserved to the last
three as well, on both backends. On AWS a job definition carries an IAM job role, privileged
mode and host volumes, and every workflow naming it runs the newest revision; on the local
backend its command runs as the daemon's own user, who can rewrite the state database. Either
way, whoever registers one acts with more than their own rights. A personal daemon is not
affected: its user is the daemon's user. Listing job definitions stays open.

Every mutating request, allowed or not, leaves one `audit` event (user, uid, action, target,
outcome) written by `audit_middleware`, so the audit trail does not depend on each handler
remembering to log.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable

from aiohttp import web

from batchd.api.peercred import Caller, caller_of
from batchd.errors import PermissionDenied
from batchd.logs import get_logger
from batchd.text import shorten

log = get_logger(component="access")

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# handler name -> the action name in audit events and messages
ACTIONS = {"import_project": "import", "create_workflow": "create",
           "submit_workflow": "submit", "cancel_jobs": "cancel", "resubmit_jobs": "resubmit",
           "register_jobdef": "jobdef_register", "shutdown": "shutdown",
           "delete_project": "delete", "delete_workflow": "delete"}
AUDIT_TARGET = "batchd_audit_target"  # request key a handler may set (e.g. the new project)


def _groups_of(uid: int, gid: int | None) -> set[int]:
    """The caller's groups as the system knows them now (SO_PEERCRED has the primary gid only;
    a user added to a group does not have to log in again for batchd to see it)."""
    groups = {gid} if gid is not None else set()
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return groups
    try:
        groups.update(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups.add(entry.pw_gid)
    return groups


def _gid_of(group: str) -> int | None:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


class Policy:
    """The rules above, with the system lookups injectable for tests."""

    def __init__(self, admin_group: str, *, daemon_uid: int | None = None,
                 groups_of: Callable[[int, int | None], set[int]] = _groups_of,
                 gid_of: Callable[[str], int | None] = _gid_of) -> None:
        self.admin_group = admin_group
        self.daemon_uid = os.geteuid() if daemon_uid is None else daemon_uid
        self._groups_of = groups_of
        self._gid_of = gid_of

    def is_admin(self, caller: Caller) -> bool:
        if caller.uid is None:
            return False
        if caller.uid in (0, self.daemon_uid):
            return True
        gid = self._gid_of(self.admin_group) if self.admin_group else None
        return gid is not None and gid in self._groups_of(caller.uid, caller.gid)

    def may_change(self, caller: Caller, owner_uid: int | None) -> bool:
        if caller.uid is None:
            return False  # not a Unix-socket caller: nobody to hold responsible
        return (owner_uid is not None and caller.uid == owner_uid) or self.is_admin(caller)

    def require_owner(self, caller: Caller, *, action: str, project: str,
                      owner_uid: int | None, owner_name: str | None = None) -> None:
        if self.may_change(caller, owner_uid):
            return
        owner = _user_label(owner_uid, owner_name)
        raise PermissionDenied(
            f"{caller.name or 'this caller'} may not {action} in project {project!r}: it "
            f"belongs to {owner}. Ask {owner} to do it, or ask an administrator to add you to "
            f"the {self.admin_group!r} group (`usermod -aG {self.admin_group} "
            f"{caller.name or 'USER'}`).", project=project, owner=owner, action=action)

    def require_admin(self, caller: Caller, *, action: str) -> None:
        if self.is_admin(caller):
            return
        raise PermissionDenied(
            f"{caller.name or 'this caller'} may not {action} batchd: that is reserved to root, "
            f"the daemon's user and members of the {self.admin_group!r} group.", action=action)

    def require_jobdef_admin(self, caller: Caller, *, backend: str) -> None:
        if self.is_admin(caller):
            return
        who = (f"members of group {self.admin_group!r} (setting [access] admin_group)"
               if self.admin_group else "root and the daemon's own user (setting [access] "
               "admin_group is empty)")
        power = _JOBDEF_POWER.get(backend, "more than its user's own rights")
        raise PermissionDenied(
            f"registering job definitions on the {backend} backend is limited to {who}; ask an "
            f"admin. (A job definition carries {power}.)",
            action="jobdef_register", backend=backend, admin_group=self.admin_group)


_JOBDEF_POWER = {"aws": "an IAM job role, privileged mode and host volumes",
                 "local": "a command that runs as the daemon's user"}


def _user_label(uid: int | None, name: str | None) -> str:
    if uid is None:
        return "no recorded owner (only administrators may change it)"
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = None
    return f"{name} (uid {uid})" if name else f"uid {uid}"


POLICY = web.AppKey("access_policy", Policy)


def policy_of(request: web.Request) -> Policy:
    return request.app[POLICY]


def _target(request: web.Request) -> str | None:
    if AUDIT_TARGET in request:
        return request[AUDIT_TARGET]
    info = request.match_info
    if "project" in info and "workflow" in info:
        return f"{info['project']}/{info['workflow']}"
    return info.get("project")


@web.middleware
async def audit_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost middleware: sees the final status, whatever the handler raised."""
    if request.method not in MUTATING:
        return await handler(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route
        name = getattr(route.handler, "__name__", None) if route is not None else None
        caller = caller_of(request)
        outcome = ("ok" if status < 400 else "denied" if status == 403
                   else "unavailable" if status == 503 else "error")
        log.info("audit", user=caller.name, uid=caller.uid, pid=caller.pid,
                 action=ACTIONS.get(name or "", name or request.path),
                 target=shorten(_target(request)),
                 method=request.method, path=shorten(request.path), status=status, outcome=outcome)
