"""batchctl commands that act on a running workflow's jobs: cancel, resubmit, logs, history,
and the per-queue view."""

from __future__ import annotations

import argparse
import os
import sys

from batchctl import render
from batchctl.client import CtlError
from batchctl.registry import arg, command
from batchctl.util import dump_json, parse_target, plural, state_arg, step_arg, workflow_path
from batchshared.exitcodes import EXIT_OK, EXIT_USAGE

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from batchctl.registry import Context


def _confirm(ctx: Context, question: str) -> bool:
    if not sys.stdin.isatty():
        raise CtlError(f"{question} -- refusing without a terminal to confirm; add --yes",
                       EXIT_USAGE)
    ctx.out.write(f"{question} [y/N] ")
    ctx.out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@command(
    "cancel",
    help="cancel a workflow's unfinished jobs",
    description="Cancel jobs that have not finished: jobs still waiting in batchd are simply "
                "marked CANCELLED; jobs queued in AWS Batch get CancelJob, STARTING/RUNNING "
                "ones TerminateJob. batchd keeps asking until AWS reports them stopped. The "
                "reason is recorded with every job. Asks for confirmation unless --yes.",
    example="batchctl cancel myproj/FAMLI --reason 'wrong reference database' --yes\n"
            "batchctl cancel myproj/FAMLI --status RUNNABLE --reason 'stuck'\n"
            "batchctl cancel myproj/FAMLI --sample S12 --reason 'bad sample'",
    args=[arg("target", metavar="PROJECT/WORKFLOW", help="the workflow"),
          arg("--reason", required=True, help="why (recorded, and sent to AWS Batch)"),
          arg("--status", type=state_arg, metavar="STATE", help="only jobs in this state"),
          arg("--sample", metavar="SAMPLE", help="only this sample's jobs"),
          arg("--step", type=step_arg, metavar="N", help="only jobs of step N (from 0)"),
          arg("--yes", action="store_true", help="do not ask for confirmation")],
)
def cmd_cancel(ctx: Context, args: argparse.Namespace) -> int:
    project, workflow = parse_target(args.target)
    scope = ", ".join(f"{k} {v}" for k, v in (("status", args.status), ("sample", args.sample),
                                               ("step", args.step)) if v is not None)
    question = f"Cancel the unfinished jobs of {project}/{workflow}" + (
        f" ({scope})" if scope else " (all of them)") + "?"
    if not args.yes and not _confirm(ctx, question):
        ctx.print("Nothing cancelled.")
        return EXIT_OK
    answer = ctx.client.post(workflow_path(project, workflow) + "/cancel", {
        "reason": args.reason, "status": args.status, "sample": args.sample, "step": args.step})
    ctx.print(f"Cancelled {plural(int(answer.get('cancelled', 0)), 'job')} of "
              f"{project}/{workflow}; {plural(int(answer.get('in_backend', 0)), 'job')} "
              "being cancelled/terminated in the backend")
    return EXIT_OK


@command(
    "resubmit",
    help="start new attempts for failed (or, with --force, completed) jobs",
    description="Give jobs that gave up (FAILED) or were CANCELLED a new attempt and a fresh "
                "retry budget, optionally with other resources or another queue. With --force, "
                "COMPLETED jobs are run again too. Later steps of the same sample wait for the "
                "resubmitted step again.",
    example="batchctl resubmit myproj/FAMLI\n"
            "batchctl resubmit myproj/FAMLI --sample S12 --memory 64000\n"
            "batchctl resubmit myproj/FAMLI --step 1 --queue ondemand --timeout 14400\n"
            "batchctl resubmit myproj/FAMLI --sample S3 --step 0 --force",
    args=[arg("target", metavar="PROJECT/WORKFLOW", help="the workflow"),
          arg("--status", type=state_arg, metavar="STATE",
              help="only jobs in this state (FAILED or CANCELLED; COMPLETED with --force)"),
          arg("--sample", metavar="SAMPLE", help="only this sample's jobs"),
          arg("--step", type=step_arg, metavar="N", help="only jobs of step N (from 0)"),
          arg("--memory", type=int, metavar="MiB", help="memory for the new attempts"),
          arg("--vcpus", type=float, metavar="N", help="vCPUs for the new attempts"),
          arg("--queue", metavar="QUEUE", help="job queue for the new attempts"),
          arg("--timeout", type=int, metavar="SECONDS", help="timeout (>= 60 s)"),
          arg("--force", action="store_true", help="re-run COMPLETED jobs too")],
)
def cmd_resubmit(ctx: Context, args: argparse.Namespace) -> int:
    project, workflow = parse_target(args.target)
    answer = ctx.client.post(workflow_path(project, workflow) + "/resubmit", {
        "status": args.status, "sample": args.sample, "step": args.step,
        "memory": args.memory, "vcpus": args.vcpus, "queue": args.queue,
        "timeout": args.timeout, "force": args.force})
    count = int(answer.get("resubmitted", 0))
    ctx.print(f"Resubmitted {plural(count, 'job')} of {project}/{workflow}")
    if count == 0:
        ctx.note("No job matched: only FAILED or CANCELLED jobs are resubmitted "
                 "(COMPLETED ones with --force).")
    return EXIT_OK


@command(
    "logs",
    help="print (or save) the logs of a workflow's jobs, every attempt",
    description="Fetch the complete logs (CloudWatch Logs on AWS, every page; the local job "
                "log on the local backend) of every attempt of the matching jobs. With --out, "
                "write one file per attempt into DIR instead "
                "(SAMPLE.stepN.attemptA.log).",
    example="batchctl logs myproj/FAMLI --sample S12\n"
            "batchctl logs myproj/FAMLI --sample S12 --step 1 > s12.log\n"
            "batchctl logs myproj/FAMLI --out logs/",
    args=[arg("target", metavar="PROJECT/WORKFLOW", help="the workflow"),
          arg("--sample", metavar="SAMPLE", help="only this sample's jobs"),
          arg("--step", type=step_arg, metavar="N", help="only jobs of step N (from 0)"),
          arg("--out", metavar="DIR", help="write one file per attempt into DIR")],
)
def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    project, workflow = parse_target(args.target)
    path = workflow_path(project, workflow)
    query = {"sample": args.sample, "step": args.step}
    if not args.out:
        out = getattr(ctx.out, "buffer", None)
        for chunk in ctx.client.stream(path + "/logs", query):
            if out is not None:
                out.write(chunk)
            else:
                ctx.out.write(chunk.decode("utf-8", "replace"))
        return EXIT_OK
    os.makedirs(args.out, exist_ok=True)
    attempts = [a for a in ctx.client.get(path + "/attempts", query).get("attempts", [])
                if a.get("log_stream")]
    for attempt in attempts:
        name = f"{attempt['sample']}.step{attempt['step']}.attempt{attempt['attempt']}.log"
        with open(os.path.join(args.out, name), "wb") as handle:
            for chunk in ctx.client.stream(path + "/logs", {**query,
                                                           "attempt_id": attempt["id"]}):
                handle.write(chunk)
    ctx.print(f"Wrote {plural(len(attempts), 'log')} to {args.out}")
    return EXIT_OK


HISTORY_HEADERS = ("SAMPLE", "STEP", "ATTEMPT", "JOB ID", "STATE", "CLASS", "VCPUS", "MEMORY",
                   "QUEUE", "EXIT", "STARTED", "STOPPED", "REASON")


@command(
    "history",
    help="show every attempt of a workflow's jobs",
    description="Every attempt batchd made, kept long after AWS Batch forgets the job: job "
                "id, resources, queue, state, failure class and reason, exit code, times.",
    example="batchctl history myproj/FAMLI --sample S12\n"
            "batchctl history myproj/FAMLI --sample S12 --json",
    args=[arg("target", metavar="PROJECT/WORKFLOW", help="the workflow"),
          arg("--sample", metavar="SAMPLE", help="only this sample's jobs"),
          arg("--step", type=step_arg, metavar="N", help="only jobs of step N (from 0)"),
          arg("--json", action="store_true", help="print the daemon's JSON")],
)
def cmd_history(ctx: Context, args: argparse.Namespace) -> int:
    project, workflow = parse_target(args.target)
    answer = ctx.client.get(workflow_path(project, workflow) + "/attempts",
                            {"sample": args.sample, "step": args.step})
    if args.json:
        dump_json(ctx, answer)
        return EXIT_OK
    rows = [(a["sample"], a["step"], a["attempt"], a.get("backend_job_id"), a["state"],
             a.get("failure_class"), a.get("vcpus"), a.get("memory"), a.get("queue"),
             a.get("exit_code"), render.format_time(a.get("started_at")),
             render.format_time(a.get("stopped_at")),
             render.truncate(a.get("container_reason") or a.get("status_reason") or "",
                             render.REASON_WIDTH)) for a in answer.get("attempts", [])]
    if not rows:
        ctx.print("No attempts yet.")
        return EXIT_OK
    ctx.print(render.table(HISTORY_HEADERS, rows))
    return EXIT_OK


@command(
    "queues",
    help="per job queue: this daemon's jobs by state and the queue's own state",
    description="For every job queue batchd's workflows use: how many of batchd's jobs are "
                "waiting, submitted, runnable, running, and the queue's state in the backend "
                "(ENABLED/VALID, largest compute environment). The backend is asked at most "
                "once a minute, so this is safe to run in a loop.",
    example="batchctl queues\n"
            "batchctl queues --json",
    args=[arg("--json", action="store_true", help="print the daemon's JSON")],
)
def cmd_queues(ctx: Context, args: argparse.Namespace) -> int:
    answer = ctx.client.get("/v1/queues")
    if args.json:
        dump_json(ctx, answer)
        return EXIT_OK
    queues = answer.get("queues", [])
    columns = render.state_columns(q.get("counts", {}) for q in queues)
    rows = [(q["name"], q.get("state") or "?", q.get("status") or q.get("error") or "?",
             q.get("max_vcpus"), *(q.get("counts", {}).get(c, 0) for c in columns))
            for q in queues]
    if not rows:
        ctx.print("No workflow uses a job queue yet.")
        return EXIT_OK
    ctx.print(render.table(("QUEUE", "STATE", "STATUS", "MAX VCPUS", *columns), rows))
    return EXIT_OK
