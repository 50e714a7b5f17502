"""Pure functions that turn batchd's JSON answers into text tables (unit-testable, no I/O).

Tables are plain text: a header row in capitals, columns separated by two spaces, counts with
thousands separators and right-aligned, no trailing spaces. `iter_*` variants yield lines one
at a time so that a 100,000-row job listing is written as it is formatted.
"""

from __future__ import annotations

from datetime import UTC

from batchshared.model import (
    CHECKING,
    COMPLETED,
    FAILED,
    FINISHED,
    IN_FLIGHT,
    JOB_STATES,
    QUEUED,
    READY,
    WAITING,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms at start-up; annotations are strings anyway
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from typing import Any

# Job states in lifecycle order (docs/design.md, "Job model").
STATES = JOB_STATES
ALWAYS_SHOWN = (COMPLETED, FAILED)
WAITING_STATES = (WAITING, READY, QUEUED)
ACTIVE_STATES = (*IN_FLIGHT, CHECKING)
WORKFLOW_TERMINAL = FINISHED

GAP = "  "
DESCRIPTION_WIDTH = 40
REASON_WIDTH = 80
COMMAND_WIDTH = 50


# -- cells -------------------------------------------------------------------------------------
def fmt_count(value: Any) -> str:
    """1234567 -> '1,234,567'; None -> '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    return str(value)


def cell(value: Any) -> str:
    """One table cell: numbers get thousands separators, None becomes '-'."""
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return fmt_count(value)
    text = str(value)
    if "\n" in text or "\t" in text or "\r" in text:
        text = " ".join(text.split())
    return text


def truncate(text: Any, width: int) -> str:
    """Shorten `text` to at most `width` characters, ending with '...' when cut."""
    s = "" if text is None else " ".join(str(text).split())
    if len(s) <= width:
        return s
    if width <= 3:
        return s[:width]
    return s[: width - 3] + "..."


def percent(part: int, whole: int) -> str:
    """Percentage rounded down to 0.1 (so 99.96% never shows as 100.0%)."""
    if not whole:
        return "-"
    tenths = (1000 * part) // whole
    return f"{tenths // 10}.{tenths % 10}%"


def format_time(value: Any) -> str:
    """An API timestamp (ISO 8601 string or epoch seconds) as local 'YYYY-MM-DD HH:MM:SS'."""
    if value in (None, ""):
        return "-"
    from datetime import datetime

    try:
        if isinstance(value, (int, float)):
            dt = datetime.fromtimestamp(float(value), tz=UTC)
        else:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
        return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return str(value)


# -- generic table -----------------------------------------------------------------------------
def iter_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None,
               footer: Iterable[Sequence[Any]] = ()) -> Iterator[str]:
    """Yield the lines of a table.

    `align` has one letter per column, 'l' or 'r'; when None, columns whose values are all
    numbers are right-aligned. `footer` rows (totals) come after a rule of dashes. Each row is
    converted to strings once (to measure the columns) and then formatted line by line.
    """
    ncols = len(headers)
    widths = [len(h) for h in headers]
    numeric = [True] * ncols
    body: list[tuple[str, ...]] = []
    foot: list[tuple[str, ...]] = []
    for target, source in ((body, rows), (foot, footer)):
        for row in source:
            cells = []
            for i in range(ncols):
                value = row[i] if i < len(row) else None
                if value is not None and value != "" and (
                        not isinstance(value, (int, float)) or isinstance(value, bool)):
                    numeric[i] = False
                text = cell(value)
                if len(text) > widths[i]:
                    widths[i] = len(text)
                cells.append(text)
            target.append(tuple(cells))
    if align is None:
        align = "".join("r" if numeric[i] and (body or foot) else "l" for i in range(ncols))
    align = (align + "l" * ncols)[:ncols]
    last = ncols - 1

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, text in enumerate(cells):
            if align[i] == "r":
                parts.append(text.rjust(widths[i]))
            elif i == last:
                parts.append(text)
            else:
                parts.append(text.ljust(widths[i]))
        return GAP.join(parts).rstrip()

    yield line(headers)
    for row in body:
        yield line(row)
    if foot:
        yield GAP.join("-" * w for w in widths)
        for row in foot:
            yield line(row)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None,
          footer: Iterable[Sequence[Any]] = ()) -> str:
    """The table as one string (no trailing newline)."""
    return "\n".join(iter_table(headers, rows, align, footer))


# -- workflow status ---------------------------------------------------------------------------
def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def state_columns(count_maps: Iterable[Mapping[str, Any]]) -> list[str]:
    """States to show: lifecycle order, only those with a non-zero count, plus COMPLETED and
    FAILED always; states batchctl does not know (a newer daemon) come last."""
    seen: set[str] = set()
    for counts in count_maps:
        for state, n in (counts or {}).items():
            if _int(n):
                seen.add(str(state).upper())
    cols = [s for s in STATES if s in seen or s in ALWAYS_SHOWN]
    cols += sorted(seen.difference(STATES))
    return cols


def _counts(obj: Mapping[str, Any]) -> dict[str, int]:
    return {str(k).upper(): _int(v) for k, v in (obj.get("counts") or {}).items()}


def workflow_name(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('project', '?')}/{obj.get('workflow') or obj.get('name') or '?'}"


def status_header(status: Mapping[str, Any]) -> str:
    """One line, e.g.
    'proj/wf  RUNNING  5,000 jobs (60.0% completed, 12 failed)  submitted 2024-05-01 12:00:03'."""
    counts = _counts(status)
    total = _int(status.get("total")) or sum(counts.values())
    done = counts.get("COMPLETED", 0)
    failed = counts.get("FAILED", 0)
    progress = f"{percent(done, total)} completed" if total else "no jobs"
    if failed:
        progress += f", {failed:,} failed"
    submitted = status.get("submitted_at")
    when = f"submitted {format_time(submitted)}" if submitted else "not submitted yet"
    return (f"{workflow_name(status)}  {status.get('status', '?')}  "
            f"{total:,} job{'s' if total != 1 else ''} ({progress})  {when}")


def auth_problem(auth: Mapping[str, Any] | None) -> str | None:
    """One line while AWS refuses batchd's credentials (daemon status, workflow status)."""
    operations = (auth or {}).get("operations") or {}
    if not operations:
        return None
    parts = [f"{op} ({r.get('aws_code') or 'no credentials'}, {r.get('count', 0):,} refused "
             f"since {format_time(r.get('since'))})" for op, r in sorted(operations.items())]
    return ("AWS REFUSES BATCHD'S CREDENTIALS for " + ", ".join(parts) + ": refresh the AWS "
            "login/role batchd runs with; batchd retries (backing off) and carries on by itself")


def status_table(status: Mapping[str, Any]) -> str:
    """Header line, then one row per step with counts per state, then a total row."""
    steps = list(status.get("steps") or [])
    step_counts = [_counts(s) for s in steps]
    wf_counts = _counts(status)
    cols = state_columns([wf_counts, *step_counts])
    headers = ["STEP", "DESCRIPTION", "JOB DEFINITION", "QUEUE", *cols, "TOTAL"]
    rows = []
    for step, counts in zip(steps, step_counts, strict=True):
        total = _int(step.get("total")) or sum(counts.values())
        rows.append([step.get("step"), truncate(step.get("description"), DESCRIPTION_WIDTH),
                     step.get("job_definition"), step.get("queue"),
                     *[counts.get(c, 0) for c in cols], total])
    total = _int(status.get("total")) or sum(wf_counts.values())
    footer = [["TOTAL", "", "", "", *[wf_counts.get(c, 0) for c in cols], total]]
    align = "llll" + "r" * (len(cols) + 1)
    lines = [status_header(status), ""]
    problem = auth_problem(status.get("backend_auth"))
    if problem:
        lines[1:1] = [problem]
    if not steps:
        lines.append("(this workflow has no steps)")
        return "\n".join(lines)
    lines.extend(iter_table(headers, rows, align, footer))
    return "\n".join(lines)


# -- jobs --------------------------------------------------------------------------------------
JOB_HEADERS = ("SAMPLE", "STEP", "STATE", "ATTEMPT", "JOB ID", "EXIT", "REASON")


def job_reason(job: Mapping[str, Any]) -> str:
    """'failure_class: reason', or 'skipped: outputs already present' for skipped jobs; what
    the job waits for right now (AWS refusing batchd's credentials) comes first."""
    failure_class = job.get("failure_class")
    reason = job.get("reason")
    if failure_class and reason:
        text = f"{failure_class}: {reason}"
    else:
        text = str(failure_class or reason or "")
    if not text and job.get("skipped"):
        text = "skipped: outputs already present"
    if job.get("waiting_reason"):
        text = f"{job['waiting_reason']} ({text})" if text else str(job["waiting_reason"])
    return truncate(text, REASON_WIDTH)


def _job_row(job: Mapping[str, Any]) -> tuple[Any, ...]:
    return (job.get("sample"), job.get("step"), job.get("state"), job.get("attempt") or None,
            job.get("job_id") or None, job.get("exit_code"), job_reason(job))


def iter_jobs_table(jobs: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Lines of the per-job table (sample, step, state, attempt, job id, exit code, reason)."""
    return iter_table(JOB_HEADERS, map(_job_row, jobs), "lrlrlrl")


def jobs_table(jobs: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(iter_jobs_table(jobs))


# -- dashboard ---------------------------------------------------------------------------------
def dashboard_table(dashboard: Mapping[str, Any], show_all: bool = False) -> str:
    """One row per workflow; COMPLETED ones folded into a summary line unless `show_all`."""
    workflows = list(dashboard.get("workflows") or [])
    if not workflows:
        return ("No workflows yet. Import a project with `batchctl import`, then "
                "`batchctl create` and `batchctl submit` a workflow.")
    shown: list[Mapping[str, Any]] = []
    folded: list[Mapping[str, Any]] = []
    for wf in workflows:
        (folded if not show_all and wf.get("status") == "COMPLETED" else shown).append(wf)
    shown.sort(key=lambda w: (str(w.get("project", "")), str(w.get("workflow", ""))))
    rows = []
    any_cancelled = False
    for wf in shown:
        counts = _counts(wf)
        total = _int(wf.get("total")) or sum(counts.values())
        cancelled = counts.get("CANCELLED", 0)
        any_cancelled = any_cancelled or bool(cancelled)
        rows.append([workflow_name(wf), wf.get("status"), total,
                     sum(counts.get(s, 0) for s in WAITING_STATES),
                     sum(counts.get(s, 0) for s in ACTIVE_STATES),
                     counts.get("COMPLETED", 0), counts.get("FAILED", 0), cancelled,
                     percent(counts.get("COMPLETED", 0), total)])
    headers = ["WORKFLOW", "STATUS", "TOTAL", "WAITING", "ACTIVE", "COMPLETED", "FAILED",
               "CANCELLED", "DONE"]
    align = "llrrrrrrr"
    if not any_cancelled:
        del headers[7]
        align = align[:7] + align[8:]
        for row in rows:
            del row[7]
    lines: list[str] = []
    if rows:
        lines.extend(iter_table(headers, rows, align))
    if folded:
        jobs = sum(_int(w.get("total")) or sum(_counts(w).values()) for w in folded)
        n = len(folded)
        if lines:
            lines.append("")
        lines.append(f"{n:,} completed workflow{'s' if n != 1 else ''} ({jobs:,} jobs); "
                     "--all to list them")
    return "\n".join(lines)


# -- job definitions ---------------------------------------------------------------------------
def _resource(props: Mapping[str, Any], kind: str) -> Any:
    for req in props.get("resourceRequirements") or []:
        if str(req.get("type", "")).upper() == kind:
            value = req.get("value")
            try:
                return int(value)
            except (TypeError, ValueError):
                try:
                    return float(value)
                except (TypeError, ValueError):
                    return value
    return props.get("vcpus" if kind == "VCPU" else "memory")


def jobdef_row(jd: Mapping[str, Any]) -> tuple[Any, ...]:
    """(name, revision, command, vcpus, memory MiB) from a flat or an AWS-shaped job definition."""
    spec: Any = jd.get("spec") if isinstance(jd.get("spec"), dict) else {}
    props = jd.get("containerProperties") or spec.get("containerProperties") or {}
    name = jd.get("jobDefinitionName") or jd.get("name") or spec.get("jobDefinitionName")
    revision = jd.get("revision")
    command = jd.get("command", props.get("command"))
    if isinstance(command, (list, tuple)):
        command = " ".join(str(c) for c in command)
    vcpus = jd.get("vcpus", _resource(props, "VCPU"))
    memory = jd.get("memory", _resource(props, "MEMORY"))
    return (name, revision, truncate(command, COMMAND_WIDTH) if command else None, vcpus, memory)


def jobdefs_table(job_definitions: Any) -> str:
    """Table of job definitions; accepts the API answer or its `job_definitions` list."""
    if isinstance(job_definitions, dict):
        job_definitions = job_definitions.get("job_definitions") or []
    items = list(job_definitions)
    if not items:
        return ("No job definitions registered yet. "
                "Add one with `batchctl jobdef register FILE.json`.")
    rows = sorted((jobdef_row(jd) for jd in items),
                  key=lambda r: (str(r[0] or ""), _int(r[1])))
    return table(("NAME", "REVISION", "COMMAND", "VCPUS", "MEMORY (MiB)"), rows, "lrlrr")
