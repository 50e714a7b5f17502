"""batchctl's `main()` and argument parsing. The commands themselves are in
`batchctl/commands/`, found through `batchctl.registry` (see there to add one); only the
module of the command typed is imported, and only the standard library (fast start).
"""

from __future__ import annotations

import argparse
import os
import sys

from batchctl import registry
from batchctl.client import DEFAULT_TIMEOUT, CtlError
from batchctl.registry import COMMANDS, GROUPS, Context
from batchshared import exitcodes
from batchshared.exitcodes import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from collections.abc import Callable
    from typing import Any, TextIO

PROG = "batchctl"

EXIT_CODES_EPILOG = exitcodes.epilog()

TOP_DESCRIPTION = """\
batchctl talks to batchd, the daemon that runs and monitors very large numbers of jobs on
AWS Batch (or locally). A project is a table of samples; a workflow runs a series of steps
(job definitions) on every sample.

typical session:
  batchctl import myproj --metadata samples.csv
  batchctl create myproj --definition famli.json
  batchctl submit myproj/FAMLI
  batchctl status myproj/FAMLI --watch 60
  batchctl dashboard
"""


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--socket/--request-timeout/--debug, accepted before or after the sub-command."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    group = parser.add_argument_group("global options")
    group.add_argument("--socket", metavar="PATH", default=default(None),
                       help="batchd's socket (default: $BATCHD_SOCKET, else "
                            "/run/batchd/batchd.sock if it exists, else "
                            "$XDG_RUNTIME_DIR/batchd/batchd.sock or /tmp/batchd-UID/batchd.sock)")
    group.add_argument("--request-timeout", dest="timeout", metavar="SECONDS",
                       type=_positive_seconds,
                       default=default(DEFAULT_TIMEOUT),
                       help=f"how long to wait for batchd's answer (default {DEFAULT_TIMEOUT:g})")
    group.add_argument("--debug", action="store_true", default=default(False),
                       help="show tracebacks for errors")


_VALUE_OPTIONS = ("--socket", "--request-timeout")


def command_word(argv: list[str]) -> str | None:
    """The sub-command named on the command line (skipping global options), if any. None
    when help is asked for before it (the top-level help lists every command)."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            return next(tokens, None)
        if token in ("-h", "--help"):
            return None
        if token.startswith("--") and "=" not in token \
                and any(option.startswith(token) for option in _VALUE_OPTIONS):
            next(tokens, None)          # --socket PATH (argparse accepts --sock PATH too)
        elif not token.startswith("-"):
            return token
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (`only` = a known command word) one whose sub-parsers are just
    that command's, with only its module imported: building all 18 cost ~25 ms at every
    start. Help and usage errors for anything else come from the full parser."""
    registry.load(only)
    if only not in {cmd.head for cmd in COMMANDS}:
        only = None
    parser = argparse.ArgumentParser(
        prog=PROG, description=TOP_DESCRIPTION, epilog=EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _global_options(parser, suppress=False)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    groups: dict[str, Any] = {}  # group -> its add_subparsers() object
    for cmd in registry.ordered(COMMANDS):
        head, _, tail = cmd.name.partition(" ")
        if only is not None and head != only:
            continue
        target = subs
        if tail:
            if head not in groups:
                short, long = GROUPS.get(head, ("", ""))
                group_parser = subs.add_parser(
                    head, help=short, description=_wrap(long or short),
                    epilog=_group_epilog(head),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
                _global_options(group_parser, suppress=True)
                groups[head] = group_parser.add_subparsers(
                    dest=f"{head}_command", metavar="COMMAND", title="commands")
                group_parser.set_defaults(func=_group_usage(group_parser))
            target = groups[head]
        sub = target.add_parser(
            tail or head, help=cmd.help, description=_wrap(cmd.description),
            epilog="example:\n" + "\n".join("  " + line for line in cmd.example.splitlines()),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        for names, kwargs in cmd.args:
            sub.add_argument(*names, **kwargs)
        _global_options(sub, suppress=True)
        sub.set_defaults(func=cmd.func)
    return parser


def _wrap(text: str, width: int = 79) -> str:
    """Fill each paragraph of a description (RawDescriptionHelpFormatter keeps it as is)."""
    import textwrap  # already imported by argparse: free

    return "\n\n".join(textwrap.fill(p, width) if "\n" not in p.strip() else p
                       for p in text.split("\n\n"))


def _group_epilog(head: str) -> str:
    examples = [c.example.splitlines()[0] for c in COMMANDS if c.name.startswith(head + " ")]
    return "example:\n" + "\n".join("  " + e for e in examples)


def _group_usage(parser: argparse.ArgumentParser) -> Callable[[Context, argparse.Namespace], int]:
    def usage(ctx: Context, args: argparse.Namespace) -> int:
        parser.print_help(ctx.err)
        return EXIT_USAGE

    return usage


def main(argv: list[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run batchctl; return the exit code (never raises for expected failures)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    err_stream = err if err is not None else sys.stderr
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        words = sys.argv[1:] if argv is None else argv
        parser = build_parser(only=command_word(words))
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(err_stream)
            return EXIT_USAGE
        ctx = Context(args, out=out, err=err)
        debug = ctx.debug
        return int(args.func(ctx, args) or 0)
    except CtlError as exc:
        if debug:
            import traceback

            traceback.print_exc(file=err_stream)
        print(exc.message, file=err_stream)
        return exc.exit_code
    except KeyboardInterrupt:
        try:
            print(file=err_stream)
        except Exception:  # noqa: BLE001
            pass
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `batchctl status --jobs | head`: the reader went away; exit quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE
    except SystemExit as exc:  # argparse (usage errors, --help)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - a bug: one line unless --debug
        if debug:
            import traceback

            traceback.print_exc(file=err_stream)
        else:
            print(f"batchctl: unexpected error: {type(exc).__name__}: {exc} "
                  "(run with --debug for the traceback)", file=err_stream)
        return EXIT_ERROR
