"""`batchd`: the daemon's command line. Its exit codes are batchshared/exitcodes.py's
DAEMON_* (`serve` returns DAEMON_STOPPED or DAEMON_CRASHED)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from batchd import __version__
from batchd.config.settings import load_settings
from batchd.errors import InvalidInput, Unavailable
from batchd.logs import configure_logging
from batchshared import exitcodes
from batchshared.exitcodes import DAEMON_ALREADY_RUNNING, DAEMON_BAD_CONFIG

EPILOG = """\
settings come from (later wins): built-in defaults < TOML config file (--config, else
/etc/batchd/batchd.toml when it exists) < BATCHD_* environment variables (e.g.
BATCHD_SOCKET, BATCHD_STATE_DIR, BATCHD_BACKEND, BATCHD_POLL_INTERVAL) < these flags.

example:
  batchd --backend local --state-dir /tmp/demo --socket /tmp/demo/batchd.sock
  BATCHD_BACKEND=aws AWS_REGION=us-west-2 batchd --config ~/batchd.toml

start-up checks: every value is converted and range-checked the same way from the file, the
environment and these flags; the socket and state directory must be creatable and writable, the
socket path at most 107 bytes, and on aws the profile must exist and the region be a region
name. Any of these stops batchd with one line naming the setting, exit code 2, nothing created.

""" + exitcodes.daemon_epilog()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other bad setting (exit 2)
        self.exit(DAEMON_BAD_CONFIG, f"batchd: {message}; see batchd --help\n")


def parser() -> argparse.ArgumentParser:
    # Values stay strings here: settings.py converts and range-checks them, with the same
    # messages as for the TOML file and the BATCHD_* variables.
    p = _Parser(
        prog="batchd", description="Run and monitor large numbers of jobs on AWS Batch or on "
        "this machine; control it with batchctl.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", dest="config_file", metavar="FILE", help="TOML config file")
    p.add_argument("--socket", metavar="PATH", help="control socket path")
    p.add_argument("--state-dir", metavar="DIR", help="where the database and local jobs live")
    p.add_argument("--backend", metavar="{local,aws}", help="where jobs run (default local)")
    p.add_argument("--poll-interval", metavar="SECONDS",
                   help="seconds between status polls of a job (default 30 aws, 1 local)")
    p.add_argument("--rate-limit", metavar="TPS",
                   help="ceiling for all AWS Batch API calls per second (default 40)")
    p.add_argument("--max-in-flight", metavar="N",
                   help="default cap of submitted, unfinished jobs per queue (default 1000)")
    p.add_argument("--local-vcpus", metavar="N", help="local backend capacity")
    p.add_argument("--local-memory", metavar="MiB", help="local backend capacity")
    p.add_argument("--log-format", metavar="{auto,json,console}")
    p.add_argument("--log-level", metavar="{debug,info,warning,error}")
    p.add_argument("--version", action="version", version=f"batchd {__version__}")
    return p


def main(argv: list[str] | None = None) -> None:
    args = vars(parser().parse_args(argv))
    try:
        settings = load_settings(args)
    except InvalidInput as exc:
        print(f"batchd: {exc.message}", file=sys.stderr)
        sys.exit(DAEMON_BAD_CONFIG)
    configure_logging(settings.log_level, settings.log_format)
    from batchd.daemon import AlreadyRunning, serve
    from batchd.sdnotify import notifier
    try:
        # The flags given now keep winning over the file when SIGHUP reloads it.
        code = asyncio.run(serve(settings, notify=notifier(),
                                 flags={k: v for k, v in args.items() if v is not None}))
    except AlreadyRunning as exc:
        print(f"batchd: {exc.message}", file=sys.stderr)
        sys.exit(DAEMON_ALREADY_RUNNING)
    except (InvalidInput, Unavailable) as exc:
        # This one line is the whole report (journald keeps stderr): a log event as well
        # would say it twice.
        print(f"batchd: {exc.message}", file=sys.stderr)
        sys.exit(DAEMON_BAD_CONFIG)
    sys.exit(code)
