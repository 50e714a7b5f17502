"""`batchd`: the daemon's command line. Exit codes: 0 stopped cleanly, 1 a loop crashed or an
unexpected error, 2 bad configuration, 3 another daemon owns the socket or state directory."""

from __future__ import annotations

import argparse
import asyncio
import sys

from . import __version__
from .errors import InvalidInput, Unavailable
from .logs import configure_logging, get_logger
from .settings import load_settings

EPILOG = """\
settings come from (later wins): built-in defaults < TOML config file (--config, else
/etc/batchd/batchd.toml when it exists) < BATCHD_* environment variables (e.g.
BATCHD_SOCKET, BATCHD_STATE_DIR, BATCHD_BACKEND, BATCHD_POLL_INTERVAL) < these flags.

example:
  batchd --backend local --state-dir /tmp/demo --socket /tmp/demo/batchd.sock
  BATCHD_BACKEND=aws AWS_REGION=us-west-2 batchd --config ~/batchd.toml

exit codes: 0 stopped cleanly, 1 crashed, 2 bad configuration, 3 already running
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="batchd", description="Run and monitor large numbers of jobs on AWS Batch or on "
        "this machine; control it with batchctl.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", dest="config_file", metavar="FILE", help="TOML config file")
    p.add_argument("--socket", metavar="PATH", help="control socket path")
    p.add_argument("--state-dir", metavar="DIR", help="where the database and local jobs live")
    p.add_argument("--backend", choices=("local", "aws"), help="where jobs run (default local)")
    p.add_argument("--poll-interval", type=float, metavar="SECONDS",
                   help="seconds between status polls of a job (default 30 aws, 1 local)")
    p.add_argument("--rate-limit", type=float, metavar="TPS",
                   help="ceiling for all AWS Batch API calls per second (default 40)")
    p.add_argument("--max-in-flight", type=int, metavar="N",
                   help="default cap of submitted, unfinished jobs per queue (default 1000)")
    p.add_argument("--local-vcpus", type=float, metavar="N", help="local backend capacity")
    p.add_argument("--local-memory", type=int, metavar="MiB", help="local backend capacity")
    p.add_argument("--log-format", choices=("auto", "json", "console"))
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--version", action="version", version=f"batchd {__version__}")
    return p


def main(argv: list[str] | None = None) -> None:
    args = vars(parser().parse_args(argv))
    try:
        settings = load_settings(args)
    except InvalidInput as exc:
        print(f"batchd: {exc.message}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format)
    from .daemon import AlreadyRunning, serve
    from .sdnotify import notifier
    try:
        # The flags given now keep winning over the file when SIGHUP reloads it.
        code = asyncio.run(serve(settings, notify=notifier(),
                                 flags={k: v for k, v in args.items() if v is not None}))
    except AlreadyRunning as exc:
        print(f"batchd: {exc.message}", file=sys.stderr)
        sys.exit(3)
    except (InvalidInput, Unavailable) as exc:
        get_logger().error("daemon_failed_to_start", error=exc.message)
        print(f"batchd: {exc.message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)
