"""Helpers shared by the command modules: workflow targets, reading the user's files, output,
and the argparse types of the filters several commands take."""

from __future__ import annotations

import argparse
import json

from batchctl import render
from batchctl.client import CtlError, path_segment
from batchshared.exitcodes import EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from collections.abc import Iterator
    from typing import Any

    from batchctl.registry import Context


def parse_target(text: str) -> tuple[str, str]:
    """'proj/wf', 'proj/wf.json' or './dir/proj/wf.json' -> ('proj', 'wf')."""
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 2:
        raise CtlError(f"expected PROJECT/WORKFLOW (for example `myproj/FAMLI`), got {text!r}",
                       EXIT_USAGE)
    project, workflow = parts[-2], parts[-1]
    if workflow.lower().endswith(".json"):
        workflow = workflow[: -len(".json")]
    if not project or not workflow or project == ".." or workflow == "..":
        raise CtlError(f"expected PROJECT/WORKFLOW (for example `myproj/FAMLI`), got {text!r}",
                       EXIT_USAGE)
    return project, workflow


def workflow_path(project: str, workflow: str) -> str:
    return f"/v1/projects/{path_segment(project)}/workflows/{path_segment(workflow)}"


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise CtlError(f"{path}: no such file", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CtlError(f"{path}: is a directory, expected a file", EXIT_USAGE) from None
    except PermissionError:
        raise CtlError(f"{path}: permission denied (cannot read the file)", EXIT_USAGE) from None
    except OSError as exc:
        raise CtlError(f"{path}: cannot read: {exc.strerror or exc}", EXIT_USAGE) from None


def decode_utf8(data: bytes, path: str) -> str:
    """UTF-8 (a leading BOM is dropped); otherwise a CtlError naming the line and byte offset."""
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = data.count(b"\n", 0, offset) + 1
        raise CtlError(f"{path}: line {line} is not valid UTF-8 (byte offset {offset}); "
                       "save the file as UTF-8", EXIT_USAGE) from None


def read_text(path: str) -> str:
    return decode_utf8(read_bytes(path), path)


def dump_json(ctx: Context, data: Any) -> None:
    """Stable JSON for scripts: 2-space indent, keys as the daemon sent them, UTF-8."""
    json.dump(data, ctx.out, indent=2, ensure_ascii=False)
    ctx.out.write("\n")


def write_lines(ctx: Context, lines: Iterator[str]) -> None:
    write = ctx.out.write
    for line in lines:
        write(line)
        write("\n")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# -- argparse types of the --state / --status and --step filters -------------------------------
def state_arg(text: str) -> str:
    state = text.strip().upper()
    if state not in render.STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; one of: {', '.join(render.STATES)}")
    return state


def step_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a step number (0, 1, ...), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"step numbers start at 0, got {text!r}")
    return value
