"""`batchctl ping` and `batchctl version`: is the daemon there, and which versions. They need
neither the renderer nor the shared helpers, so these two start fastest."""

from __future__ import annotations

from batchctl import __version__
from batchctl.client import CtlError
from batchctl.registry import command
from batchshared.exitcodes import EXIT_NOT_RUNNING, EXIT_OK

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    import argparse

    from batchctl.registry import Context


@command(
    "ping",
    help="check that batchd is running",
    description="Ask batchd whether it is running; print its version, backend, pid and socket. "
                "Exit code 3 if it is not running.",
    example="batchctl ping\n"
            "batchctl ping --socket /run/batchd/batchd.sock",
)
def cmd_ping(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get("/v1/ping")
    ctx.print(f"batchd {answer.get('version', '?')} is running (backend "
              f"{answer.get('backend', '?')}, pid {answer.get('pid', '?')}, "
              f"socket {ctx.socket_path})")
    return EXIT_OK


@command(
    "version",
    help="print batchctl's version (and the daemon's, if it runs)",
    description="Print batchctl's version and, if batchd answers, the daemon's version.",
    example="batchctl version",
)
def cmd_version(ctx: Context, args: argparse.Namespace) -> int:
    ctx.print(f"batchctl {__version__}")
    ctx.client.timeout = min(ctx.timeout, 5.0)
    try:
        answer = ctx.client.get("/v1/ping")
    except CtlError as exc:
        if exc.exit_code == EXIT_NOT_RUNNING:
            ctx.print(f"batchd: not running (socket {ctx.socket_path})")
        else:
            ctx.print(f"batchd: unknown ({exc.message})")
        return EXIT_OK
    ctx.print(f"batchd {answer.get('version', '?')} (socket {ctx.socket_path})")
    return EXIT_OK
