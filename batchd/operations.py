"""What the API's mutating requests do: import a project, create and submit a workflow.

Parsing and validation (metadata.py, definition.py) happen completely before the store is
touched, and the store writes each operation in one transaction, so a bad file never leaves a
half-imported project or a workflow with some of its jobs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .definition import parse_definition, render_job
from .errors import InvalidInput
from .limits import clip, shorten
from .metadata import parse_metadata
from .naming import validate_name
from .store import Store

BUILTIN_FIELDS = ("project_name", "workflow_name", "sample_name", "file_name")


async def import_project(store: Store, body: dict[str, Any], *, owner_uid: int | None = None,
                         owner_name: str | None = None) -> dict[str, Any]:
    name = _text(body, "name")
    validate_name("project", name)
    filename = body.get("metadata_filename") or "metadata.csv"
    sample_col = body.get("sample_col") or "sample_name"
    file_col = body.get("file_col") or "file_name"
    metadata = parse_metadata(_text(body, "metadata", allow_empty=True), filename=filename,
                              sample_col=sample_col, file_col=file_col)
    await store.create_project(
        name=name, columns=metadata.columns, sample_col=sample_col, file_col=file_col,
        metadata_filename=filename, owner_uid=owner_uid, owner_name=owner_name,
        samples=((s.name, s.file_name, s.line, s.metadata) for s in metadata.samples))
    return {"name": name, "samples": len(metadata.samples), "columns": metadata.columns}


def _resolve_local(uri: str, base_dir: str | None) -> str:
    """Relative local output paths are relative to the definition file's directory."""
    if uri.startswith("s3://") or uri.startswith("file://") or os.path.isabs(uri):
        return uri
    if not base_dir:
        raise InvalidInput(f"output {clip(uri)} is a relative path; use an absolute path or an "
                           "s3:// URI (or create the workflow with batchctl, which sends the "
                           "definition's directory)")
    return os.path.normpath(os.path.join(base_dir, uri))


async def create_workflow(store: Store, project_name: str, body: dict[str, Any]
                          ) -> dict[str, Any]:
    project = await store.project(project_name)
    filename = body.get("definition_filename") or "workflow.json"
    base_dir = body.get("base_dir")
    if base_dir is not None and (not isinstance(base_dir, str) or not os.path.isabs(base_dir)):
        raise InvalidInput("base_dir must be an absolute directory path")
    columns = json.loads(project["columns"])
    fields = sorted(set(BUILTIN_FIELDS) | set(columns))
    definition = parse_definition(_text(body, "definition", allow_empty=True),
                                  filename=shorten(filename), available_fields=fields)
    validate_name("workflow", definition.name)
    samples = await store.samples(project["id"])
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
    analyses = [{"step": a.step, "job_definition": a.job_definition, "queue": a.queue,
                 "description": a.description, "vcpus": a.vcpus, "memory": a.memory,
                 "timeout": a.timeout, "retry": a.retry} for a in definition.analyses]
    await store.create_workflow(project_id=project["id"], name=definition.name,
                                definition=definition.raw, definition_filename=filename,
                                base_dir=base_dir, analyses=analyses, jobs=jobs)
    return {"project": project_name, "name": definition.name,
            "steps": len(definition.analyses), "jobs": len(jobs)}


def _text(body: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise InvalidInput(f"request field {key!r} must be a non-empty string")
    return value
