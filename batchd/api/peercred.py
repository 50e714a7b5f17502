"""Who is calling: the peer's uid/gid from the Unix socket (SO_PEERCRED).

The kernel fills these in; a client cannot forge them. They are used to record a project's
owner and to audit-log every mutating request.
"""

from __future__ import annotations

import pwd
import socket
import struct
from dataclasses import dataclass

from aiohttp import web

_PEERCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True)
class Caller:
    pid: int | None
    uid: int | None
    gid: int | None

    @property
    def name(self) -> str | None:
        if self.uid is None:
            return None
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)


def caller_of(request: web.Request) -> Caller:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return Caller(None, None, None)
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return Caller(pid, uid, gid)
