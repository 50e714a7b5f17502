"""Workflow definitions: strict JSON parsing and validation, and rendering one job.

The format is the original tool's (workflow_name + a list of analyses) but read as strict
JSON: its README example has `#` comments and a missing comma, so syntax errors come with a
hint for exactly those. Everything is validated before a single job exists: every template
against the project's fields, every number's type and range, every key's spelling (typos get
a did-you-mean), because a mistake found after 100,000 jobs were submitted costs real money.

Problems are collected (up to MAX_PROBLEMS) and reported together, each as
`FILE: JSON.path: what is wrong; how to fix it`. The per-key walk is in definition_parser,
built on the single-value checks of field_checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchd.errors import InvalidInput
from batchd.inputs.definition_parser import SUBMIT_PAYLOAD_LIMIT, Analysis, Parser, payload_size
from batchd.inputs.templates import TemplateError, render
from batchd.inputs.validation import MIN_TIMEOUT, load_json
from batchd.text import clip

__all__ = ["MIN_TIMEOUT", "SUBMIT_PAYLOAD_LIMIT", "Analysis", "RenderedJob", "WorkflowDefinition",
           "parse_definition", "render_job"]


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    analyses: tuple[Analysis, ...]
    raw: dict


@dataclass(frozen=True, slots=True)
class RenderedJob:
    outputs: tuple[str, ...]
    parameters: dict[str, str]
    command: tuple[str, ...] | None
    environment: dict[str, str]


def _syntax_error(text: str, filename: str, exc: json.JSONDecodeError) -> InvalidInput:
    hints = []
    # [ \t]*, not \s*: \s* crosses line ends, so every line start rescanned all the blank
    # lines after it and a definition of a million newlines held the event loop for hours.
    if re.search(r"^[ \t]*(#|//)", text, re.MULTILINE):
        hints.append("definitions must be strict JSON: remove comments (# or // lines)")
    if re.search(r",\s*[}\]]", text):
        hints.append("remove trailing commas before a closing } or ]")
    if exc.msg.startswith("Expecting ',' delimiter"):
        hints.append("a comma is probably missing at the end of the previous line or item")
    if exc.msg.startswith("Expecting property name") and "'" in text:
        hints.append("JSON needs \"double quotes\" around names and text, not 'single quotes'")
    lines = text.splitlines()
    shown = lines[exc.lineno - 1].strip() if 0 < exc.lineno <= len(lines) else ""
    message = (f"{filename} line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}"
               + (f" (at: {shown[:80]})" if shown else ""))
    if hints:
        message += "; " + "; ".join(hints)
    return InvalidInput(message, file=filename, line=exc.lineno, column=exc.colno)


def _load(text: str, filename: str) -> Any:
    if not text.strip():
        raise InvalidInput(f"{filename} is empty; a workflow definition is a JSON object with "
                           "workflow_name and analyses", file=filename)
    return load_json(text, where=filename,
                     on_syntax_error=lambda text, exc: _syntax_error(text, filename, exc))


def parse_definition(text: str, *, filename: str, available_fields: Iterable[str]
                     ) -> WorkflowDefinition:
    """Parse and validate a workflow definition; raises InvalidInput listing every problem."""
    data = _load(text, filename)
    parser = Parser(filename, available_fields)
    name, analyses = parser.definition(data)
    parser.problems.raise_if_any()
    assert name is not None
    return WorkflowDefinition(name=name, analyses=tuple(analyses), raw=data)


def render_job(analysis: Analysis, values: Mapping[str, str]) -> RenderedJob:
    """Fill one analysis's templates for one sample."""
    try:
        outputs = tuple([render(t, values) for t in analysis.outputs])
        parameters = {k: render(v, values) for k, v in analysis.parameters.items()}
        command = (tuple([render(a, values) for a in analysis.command])
                   if analysis.command is not None else None)
        environment = ({k: render(v, values) for k, v in analysis.environment.items()}
                       if analysis.environment else {})
    except TemplateError as exc:
        raise InvalidInput(f"sample {values.get('sample_name')!r}, step {analysis.step}: "
                           f"{exc.message}", sample=values.get("sample_name"),
                           step=analysis.step) from None
    sample = values.get("sample_name")
    for i, output in enumerate(outputs):
        if not output or output.isspace():
            raise InvalidInput(
                f"sample {sample!r}: analyses[{analysis.step}].outputs[{i}] "
                f"({clip(analysis.outputs[i])}) is empty for this sample; fill in the metadata "
                "columns it uses", sample=sample, step=analysis.step)
    # Cheap bound first: JSON escaping grows a character to at most 12 bytes and each entry
    # adds under 64 bytes of syntax, so most jobs never pay for the exact measurement.
    entries = len(parameters) + len(environment) + (len(command) if command else 0) + 1
    rough = (sum(map(len, parameters)) + sum(map(len, parameters.values()))
             + (sum(map(len, environment)) + sum(map(len, environment.values()))
                if environment else 0)
             + (sum(map(len, command)) if command else 0))
    if rough * 12 + 64 * entries > SUBMIT_PAYLOAD_LIMIT:
        size = payload_size(parameters, command, environment)
        if size > SUBMIT_PAYLOAD_LIMIT:
            raise InvalidInput(
                f"sample {sample!r}, analyses[{analysis.step}]: the filled-in parameters, "
                f"command and environment take {size} bytes; AWS accepts at most "
                f"{SUBMIT_PAYLOAD_LIMIT} bytes per job; shorten the values this sample's "
                "metadata puts into them", sample=sample, step=analysis.step, size=size)
    return RenderedJob(outputs=outputs, parameters=parameters, command=command,
                       environment=environment)
