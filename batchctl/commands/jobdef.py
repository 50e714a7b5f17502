"""`batchctl jobdef register` and `jobdef list`: job definitions in the AWS Batch
RegisterJobDefinition format. The file is parsed here, strictly (no duplicate keys, no
NaN, no integer beyond 64 bits), so a mistake is named with its line before anything is sent."""

from __future__ import annotations

import argparse
import json

from batchctl import render
from batchctl.client import CtlError
from batchctl.registry import arg, command
from batchctl.util import dump_json, read_text
from batchshared.exitcodes import EXIT_OK, EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from batchctl.registry import Context


def _unique_keys(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears more than once in the same object; "
                             "keep only one")
        out[key] = value
    return out


def _bounded_int(text: str) -> int:
    # the daemon stores 64-bit integers; Python's own refusal (4,300 digits) reads as a bug
    if len(text.lstrip("-")) > 19 or abs(int(text)) > 2 ** 63 - 1:
        raise ValueError(f"the number {text[:30]}... is too large; write the value you mean")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:30]} is too large; write the value you mean")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON; write a number")


@command(
    "jobdef register",
    help="register a job definition from a JSON file",
    description="Register a job definition written in the AWS Batch RegisterJobDefinition "
                "format (jobDefinitionName, type, containerProperties, ...). Registering the "
                "same name again makes a new revision. Reserved to root, the daemon's user "
                "and members of the admin group (setting [access] admin_group): a job "
                "definition carries an IAM role, privileged mode and host volumes (on the "
                "local backend, a command run as the daemon's user); others get exit code 4.",
    example="batchctl jobdef register famli.json",
    args=[arg("file", metavar="FILE.json", help="the job definition")],
)
def cmd_jobdef_register(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.check_file("jobdef", args.file)
    text = read_text(args.file)
    try:
        spec = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int,
                          parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CtlError(f"{args.file} line {exc.lineno} column {exc.colno}: {exc.msg}",
                       EXIT_USAGE) from None
    except RecursionError:
        raise CtlError(f"{args.file}: the JSON is nested too deeply; a job definition needs "
                       "a few levels", EXIT_USAGE) from None
    except ValueError as exc:  # our hooks, and integers of more than 4,300 digits
        raise CtlError(f"{args.file}: {exc}", EXIT_USAGE) from None
    if not isinstance(spec, dict):
        raise CtlError(f"{args.file}: expected a JSON object ({{...}}) describing the job "
                       "definition", EXIT_USAGE)
    answer = ctx.client.post("/v1/jobdefs", {"spec": spec, "filename": args.file},
                             upload="jobdef")
    ctx.print(f"Registered {answer.get('jobDefinitionName', '?')}:{answer.get('revision', '?')}")
    return EXIT_OK


@command(
    "jobdef list",
    help="list the registered job definitions",
    description="List the job definitions batchd knows: name, revision, command, vCPUs and "
                "memory (MiB).",
    example="batchctl jobdef list\n"
            "batchctl jobdef list --json",
    args=[arg("--json", action="store_true", help="print the daemon's JSON")],
)
def cmd_jobdef_list(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get("/v1/jobdefs")
    if args.json:
        dump_json(ctx, answer)
    else:
        ctx.print(render.jobdefs_table(answer))
    return EXIT_OK
