"""What the API's mutating requests do: import a project, create and submit a workflow.

Parsing and validation (metadata.py, definition.py) happen completely before the store is
touched, and the store writes each operation in one transaction, so a bad file never leaves a
half-imported project or a workflow with some of its jobs.

Parsing, validating and rendering run in a worker thread through `HeavyWork` (offload.py),
one such job at a time, and touch no SQL: a million-row table took 7 s of pure Python, and on
the event loop nobody else was answered and no job was polled meanwhile (a ping waited 6.9 s
behind an import refused for its last row).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from batchd.api.offload import HeavyWork
from batchd.errors import InvalidInput
from batchd.inputs.definition import parse_definition, render_job
from batchd.inputs.jobdefs import check_references
from batchd.inputs.metadata import Metadata, decode_table, parse_metadata
from batchd.naming import validate_name
from batchd.store import Store
from batchd.text import clip, shorten

BUILTIN_FIELDS = ("project_name", "workflow_name", "sample_name", "file_name")


async def import_project(store: Store, body: dict[str, Any], *, heavy: HeavyWork,
                         owner_uid: int | None = None, owner_name: str | None = None
                         ) -> dict[str, Any]:
    name = _text(body, "name")
    validate_name("project", name)
    filename = body.get("metadata_filename") or "metadata.csv"
    sample_col = body.get("sample_col") or "sample_name"
    file_col = body.get("file_col") or "file_name"
    given = body.get("metadata")
    if isinstance(given, bytes):        # the table itself was the body (api._table_upload)
        def parse() -> Metadata:
            return parse_metadata(decode_table(given, filename), filename=filename,
                                  sample_col=sample_col, file_col=file_col)
    else:
        text = _text(body, "metadata", allow_empty=True)

        def parse() -> Metadata:
            return parse_metadata(text, filename=filename, sample_col=sample_col,
                                  file_col=file_col)
    metadata = await heavy.run("import", parse, project=name)
    count = len(metadata.samples)
    try:
        await store.create_project(
            name=name, columns=metadata.columns, sample_col=sample_col, file_col=file_col,
            metadata_filename=filename, owner_uid=owner_uid, owner_name=owner_name,
            samples=((s.name, s.file_name, s.line, s.metadata) for s in metadata.samples))
    finally:
        await heavy.discard(metadata.samples)
    return {"name": name, "samples": count, "columns": metadata.columns}


def _resolve_local(uri: str, base_dir: str | None) -> str:
    """Relative local output paths are relative to the definition file's directory."""
    if uri.startswith("s3://") or uri.startswith("file://") or os.path.isabs(uri):
        return uri
    if not base_dir:
        raise InvalidInput(f"output {clip(uri)} is a relative path; use an absolute path or an "
                           "s3:// URI (or create the workflow with batchctl, which sends the "
                           "definition's directory)")
    return os.path.normpath(os.path.join(base_dir, uri))


async def create_workflow(store: Store, project_name: str, body: dict[str, Any], *,
                          heavy: HeavyWork, job_definitions: list[dict[str, Any]] | None = None
                          ) -> dict[str, Any]:
    """`job_definitions`, when given (the local backend's registry), are checked against
    every step's job_definition and the Ref:: placeholders of its command."""
    project = await store.project(project_name)
    filename = body.get("definition_filename") or "workflow.json"
    base_dir = body.get("base_dir")
    if base_dir is not None and (not isinstance(base_dir, str) or not os.path.isabs(base_dir)):
        raise InvalidInput("base_dir must be an absolute directory path")
    columns = json.loads(project["columns"])
    fields = sorted(set(BUILTIN_FIELDS) | set(columns))
    # At most limits.definition_bytes (1 MiB): off the loop, but not worth a heavy slot.
    definition = await asyncio.to_thread(parse_definition,
                                         _text(body, "definition", allow_empty=True),
                                         filename=shorten(filename), available_fields=fields)
    validate_name("workflow", definition.name)
    if job_definitions is not None:
        check_references(definition.analyses, job_definitions, filename=shorten(filename))
    samples = await store.samples(project["id"])
    jobs = await heavy.run("create", _render_jobs, samples, definition, project_name, base_dir,
                           project=project_name, workflow=definition.name)
    analyses = [{"step": a.step, "job_definition": a.job_definition, "queue": a.queue,
                 "description": a.description, "vcpus": a.vcpus, "memory": a.memory,
                 "timeout": a.timeout, "retry": a.retry} for a in definition.analyses]
    count = len(jobs)
    try:
        await store.create_workflow(project_id=project["id"], name=definition.name,
                                    definition=definition.raw, definition_filename=filename,
                                    base_dir=base_dir, analyses=analyses, jobs=jobs)
    finally:
        await heavy.discard(jobs, samples)
    return {"project": project_name, "name": definition.name,
            "steps": len(definition.analyses), "jobs": count}


def _render_jobs(samples: Any, definition: Any, project_name: str, base_dir: str | None
                 ) -> list[tuple]:
    """One row per (sample, step), templates filled: the store's create_workflow input."""
    jobs = []
    for sample in samples:
        values = json.loads(sample["metadata"])
        values.update(project_name=project_name, workflow_name=definition.name,
                      sample_name=sample["name"], file_name=sample["file_name"])
        for analysis in definition.analyses:
            rendered = render_job(analysis, values)
            outputs = [_resolve_local(uri, base_dir) for uri in rendered.outputs]
            jobs.append((sample["id"], analysis.step, analysis.queue, json.dumps(outputs),
                         json.dumps(rendered.parameters),
                         json.dumps(list(rendered.command)) if rendered.command else None,
                         json.dumps(rendered.environment) if rendered.environment else None))
    return jobs


def _text(body: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise InvalidInput(f"request field {key!r} must be a non-empty string")
    return value
