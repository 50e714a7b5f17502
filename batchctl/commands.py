"""The batchctl sub-commands. Each is one function registered with `@command` (see cli.py).

A command returns its exit code; failures are raised as `CtlError(message, exit_code)` and
printed by `cli.main` without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from typing import Any, Iterator

from batchctl import render
from batchctl.cli import Context, _version_string, arg, command
from batchctl.client import (EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, CtlError,
                             path_segment)

JOBS_PAGE_LIMIT = 1000


# -- helpers -----------------------------------------------------------------------------------
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


# -- import / create / submit ------------------------------------------------------------------
@command(
    "import",
    help="import a project from a samples table (CSV/TSV)",
    description="Create a project from a metadata table with one row per sample. The table "
                "needs a column naming each sample and one naming its input file (by default "
                "`sample_name` and `file_name`); every column can be used as {column} in "
                "workflow definitions. The file must be UTF-8.",
    example="batchctl import myproj --metadata samples.csv\n"
            "batchctl import myproj --metadata samples.tsv --sample-col id --file-col fastq",
    args=[arg("project", help="name of the new project"),
          arg("--metadata", metavar="FILE", required=True, help="the samples CSV/TSV file"),
          arg("--sample-col", metavar="COLUMN", default="sample_name",
              help="column with the sample names (default: sample_name)"),
          arg("--file-col", metavar="COLUMN", default="file_name",
              help="column with the input files (default: file_name)")],
)
def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.check_file("metadata", args.metadata)
    text = read_text(args.metadata)
    answer = ctx.client.post("/v1/projects", {
        "name": args.project, "metadata": text, "metadata_filename": args.metadata,
        "sample_col": args.sample_col, "file_col": args.file_col,
    }, upload="metadata")
    project = answer.get("project") or {}
    samples = int(project.get("samples") or 0)
    columns = project.get("columns") or []
    ctx.print(f"Imported project {project.get('name', args.project)}: "
              f"{plural(samples, 'sample')} (columns: {', '.join(map(str, columns))})")
    return EXIT_OK


@command(
    "create",
    help="create a workflow for a project from a definition file",
    description="Create a workflow (one job per sample and step) from a JSON workflow "
                "definition, in the same format as the original batch_project tool "
                "(workflow_name, analyses: job_definition, queue, outputs, parameters, ...). "
                "Relative paths in the definition are taken relative to its directory.",
    example="batchctl create myproj --definition famli.json",
    args=[arg("project", help="the project (see `batchctl import`)"),
          arg("--definition", metavar="FILE", required=True,
              help="the workflow definition (JSON)")],
)
def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.check_file("definition", args.definition)
    text = read_text(args.definition)
    base_dir = os.path.dirname(os.path.abspath(args.definition))
    answer = ctx.client.post(f"/v1/projects/{path_segment(args.project)}/workflows", {
        "definition": text, "definition_filename": args.definition, "base_dir": base_dir,
    }, upload="definition")
    wf = answer.get("workflow") or {}
    steps = wf.get("steps")
    steps = len(steps) if isinstance(steps, list) else int(steps or 0)
    jobs = int(wf.get("jobs") or 0)
    name = f"{wf.get('project', args.project)}/{wf.get('name', '?')}"
    ctx.print(f"Created workflow {name}: {plural(steps, 'step')}, {plural(jobs, 'job')}")
    ctx.print(f"Submit it with: batchctl submit {name}")
    return EXIT_OK


@command(
    "submit",
    help="submit a workflow's jobs to the backend",
    description="Start running a workflow: its jobs are checked (outputs already present -> "
                "COMPLETED) and submitted as submit slots free up. The original tool's form "
                "PROJECT/WORKFLOW.json is accepted too.",
    example="batchctl submit myproj/FAMLI\n"
            "batchctl submit myproj/FAMLI.json",
    args=[arg("target", metavar="PROJECT/WORKFLOW", help="the workflow to submit")],
)
def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    project, workflow = parse_target(args.target)
    answer = ctx.client.post(workflow_path(project, workflow) + "/submit")
    status = answer.get("workflow") or {}
    released = int(answer.get("released") or 0)
    total = int(status.get("total") or 0)
    ctx.print(f"Submitted {project}/{workflow}: {plural(released, 'job')} released "
              f"({plural(total, 'job')} in total; status {status.get('status', '?')})")
    ctx.print(f"Follow it with: batchctl status {project}/{workflow}")
    return EXIT_OK


# -- status ------------------------------------------------------------------------------------
def fetch_jobs(ctx: Context, project: str, workflow: str,
               args: argparse.Namespace) -> list[dict]:
    """All job rows matching the filters, following the `next` cursor."""
    jobs: list[dict] = []
    after = None
    path = workflow_path(project, workflow) + "/jobs"
    while True:
        page = ctx.client.get(path, {"state": args.state, "sample": args.sample,
                                     "step": args.step, "limit": JOBS_PAGE_LIMIT,
                                     "after": after})
        jobs.extend(page.get("jobs") or [])
        after = page.get("next")
        if not after:
            return jobs


def _filters(args: argparse.Namespace) -> str:
    parts = [f"{k}={v}" for k, v in (("state", args.state), ("sample", args.sample),
                                      ("step", args.step)) if v is not None]
    return ", ".join(parts)


def _show_status(ctx: Context, args: argparse.Namespace, project: str, workflow: str,
                 status: dict) -> None:
    if args.json and not args.jobs:
        dump_json(ctx, status)
        return
    jobs = fetch_jobs(ctx, project, workflow, args) if args.jobs else None
    if args.json:
        dump_json(ctx, {"jobs": jobs})
        return
    if jobs is None:
        ctx.print(render.status_table(status))
        return
    ctx.print(render.status_header(status))
    ctx.print()
    filters = _filters(args)
    if not jobs:
        ctx.print(f"No jobs match ({filters})." if filters else "This workflow has no jobs.")
        return
    write_lines(ctx, render.iter_jobs_table(jobs))
    ctx.print()
    ctx.print(plural(len(jobs), "job") + (f" ({filters})" if filters else ""))


def _state(text: str) -> str:
    state = text.strip().upper()
    if state not in render.STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; one of: {', '.join(render.STATES)}")
    return state


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a step number (0, 1, ...), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"step numbers start at 0, got {text!r}")
    return value


def _watch_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"refresh at most once a second, got {text!r}")
    return value


@command(
    "status",
    help="show a workflow's progress (per step, or per job with --jobs)",
    description="Show how many jobs of a workflow are in each state, step by step. With --jobs "
                "(or any of --state/--sample/--step) list the jobs themselves: sample, step, "
                "state, attempt, backend job id, exit code and the reason of a failure (or "
                "what the job waits for, e.g. AWS refusing batchd's credentials). "
                "Steps are numbered from 0. Exit code 0 whatever the workflow's status, unless "
                "--watch is given: then batchctl waits until the workflow ends and exits 0 if "
                "it COMPLETED, 1 if it FAILED or was CANCELLED.",
    example="batchctl status myproj/FAMLI\n"
            "batchctl status myproj/FAMLI --jobs --state FAILED\n"
            "batchctl status myproj/FAMLI --watch 60\n"
            "batchctl status myproj/FAMLI --jobs --json > jobs.json",
    args=[arg("target", metavar="PROJECT/WORKFLOW", help="the workflow"),
          arg("--jobs", action="store_true", help="list the jobs instead of the step summary"),
          arg("--state", type=_state, metavar="STATE",
              help="only jobs in this state (implies --jobs)"),
          arg("--sample", metavar="SAMPLE", help="only this sample's jobs (implies --jobs)"),
          arg("--step", type=_nonneg_int, metavar="N",
              help="only jobs of step N, counting from 0 (implies --jobs)"),
          arg("--json", action="store_true",
              help="print the daemon's JSON (with --jobs: {\"jobs\": [...all pages...]})"),
          arg("--watch", type=_watch_seconds, metavar="SECONDS",
              help="redraw every SECONDS until the workflow ends; exit 0 if it COMPLETED, "
                   "1 otherwise")],
)
def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    project, workflow = parse_target(args.target)
    if args.state or args.sample is not None or args.step is not None:
        args.jobs = True
    path = workflow_path(project, workflow)
    if not args.watch:
        _show_status(ctx, args, project, workflow, ctx.client.get(path))
        return EXIT_OK
    tty = ctx.out.isatty() if hasattr(ctx.out, "isatty") else False
    while True:
        status = ctx.client.get(path)
        if tty and not args.json:
            ctx.out.write("\033[H\033[2J")
        _show_status(ctx, args, project, workflow, status)
        state = status.get("status")
        if state in render.WORKFLOW_TERMINAL:
            return EXIT_OK if state == "COMPLETED" else EXIT_ERROR
        if not args.json:
            ctx.print(f"\n(refreshing every {args.watch:g} s until the workflow ends; "
                      f"Ctrl-C to stop; last update {time.strftime('%H:%M:%S')})")
        ctx.out.flush()
        time.sleep(args.watch)


# -- dashboard ---------------------------------------------------------------------------------
@command(
    "dashboard",
    help="summarise every workflow of every project",
    description="One line per workflow: status, jobs waiting (WAITING/READY/QUEUED), active "
                "(SUBMITTING..CHECKING), completed and failed, and the percentage done. "
                "Completed workflows are summed up in one line unless --all is given.",
    example="batchctl dashboard\n"
            "batchctl dashboard --all",
    args=[arg("--all", action="store_true", help="list completed workflows too"),
          arg("--json", action="store_true", help="print the daemon's JSON")],
)
def cmd_dashboard(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get("/v1/dashboard")
    if args.json:
        dump_json(ctx, answer)
    else:
        ctx.print(render.dashboard_table(answer, show_all=args.all))
    return EXIT_OK


# -- job definitions ---------------------------------------------------------------------------
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


# -- daemon ------------------------------------------------------------------------------------
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
    ctx.print(f"batchctl {_version_string()}")
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


@command(
    "daemon stop",
    help="ask batchd to shut down",
    description="Ask batchd to stop cleanly (running backend jobs are not cancelled; the "
                "daemon picks them up again when it restarts). Waits until the socket stops "
                "answering, up to --request-timeout seconds, unless --no-wait.",
    example="batchctl daemon stop",
    args=[arg("--no-wait", action="store_true", help="return as soon as batchd has the request")],
)
def cmd_daemon_stop(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.post("/v1/shutdown")
    if args.no_wait:
        ctx.print("batchd is stopping")
        return EXIT_OK
    deadline = time.monotonic() + ctx.timeout
    ctx.client.timeout = min(ctx.timeout, 5.0)
    while time.monotonic() < deadline:
        try:
            ctx.client.get("/v1/ping")
        except CtlError as exc:
            if exc.exit_code == EXIT_NOT_RUNNING:
                ctx.print("batchd stopped")
                return EXIT_OK
            # shutting down (503 / connection closed mid-answer): keep waiting
        time.sleep(0.1)
    ctx.note(f"batchd was asked to stop but still answers on {ctx.socket_path} after "
             f"{ctx.timeout:g} s")
    return EXIT_ERROR
