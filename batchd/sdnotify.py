"""The tiny sd_notify protocol: one datagram to $NOTIFY_SOCKET (Type=notify services)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


def notifier(env: dict[str, str] | None = None) -> Callable[[str], None] | None:
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return None
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]

    def notify(message: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect(address)
                sock.sendall(message.encode())
            except OSError:
                pass  # systemd gone or not listening: nothing useful to do about it

    return notify
