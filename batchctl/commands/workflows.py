"""The commands that set up and follow a workflow, in the order of a typical session: import
(the project: its samples), create, submit, status (per step or per job, --watch) and
dashboard (every workflow)."""

from __future__ import annotations

import argparse
import os
import time
from urllib.parse import quote

from batchctl import render
from batchctl.client import path_segment
from batchctl.registry import arg, command
from batchctl.util import (
    dump_json,
    parse_target,
    plural,
    read_text,
    state_arg,
    step_arg,
    workflow_path,
    write_lines,
)
from batchshared.exitcodes import EXIT_ERROR, EXIT_OK

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from batchctl.registry import Context

JOBS_PAGE_LIMIT = 1000


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
    text = read_text(args.metadata)     # checked here: a bad byte is named before sending
    # The table itself is the body (not a JSON string): the daemon never decodes a big
    # upload as JSON on its event loop, and refuses a bad name from the query at once.
    answer = ctx.client.request(
        "POST", "/v1/projects", raw=text.encode("utf-8"), upload="metadata",
        query={"name": args.project, "sample_col": args.sample_col, "file_col": args.file_col},
        headers={"Content-Type": "text/csv; charset=utf-8",
                 "X-Batchd-Filename": quote(args.metadata, safe="/")})
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
          arg("--state", type=state_arg, metavar="STATE",
              help="only jobs in this state (implies --jobs)"),
          arg("--sample", metavar="SAMPLE", help="only this sample's jobs (implies --jobs)"),
          arg("--step", type=step_arg, metavar="N",
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
