"""Workflow definitions: strict JSON parsing and validation, and rendering one job.

The format is the original tool's (workflow_name + a list of analyses) but read as strict
JSON: its README example has `#` comments and a missing comma, so syntax errors come with a
hint for exactly those. Everything is validated before a single job exists: every template
against the project's fields, every number's type and range, every key's spelling (typos get
a did-you-mean), because a mistake found after 100,000 jobs were submitted costs real money.

Problems are collected (up to MAX_PROBLEMS) and reported together, each as
`FILE: JSON.path: what is wrong; how to fix it`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .naming import NAME_RE, NAME_RULES
from .templates import TemplateError, render, validate_template

MAX_PROBLEMS = 20
# AWS SubmitJob rejects requests whose parameters and overrides exceed 30 KiB.
SUBMIT_PAYLOAD_LIMIT = 30 * 1024
MIN_TIMEOUT = 60  # AWS's minimum attemptDurationSeconds

JOBDEF_RE = re.compile(r"arn:\S+|[A-Za-z0-9][A-Za-z0-9_-]{0,127}(:[1-9][0-9]*)?")
QUEUE_RE = re.compile(r"arn:\S+|[A-Za-z0-9_-]{1,128}")
PARAM_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TOP_KEYS = ("workflow_name", "analyses", "description")
ANALYSIS_KEYS = ("job_definition", "queue", "outputs", "parameters", "containerOverrides",
                 "description", "timeout", "retry")
OVERRIDE_KEYS = ("vcpus", "memory", "command", "environment", "resourceRequirements")
RETRY_KEYS = ("max_attempts", "spot_attempts", "memory_factor", "timeout_factor", "max_memory")
# Keys people plausibly put in the wrong place, with where they belong.
MOVED = {
    "vcpus": "containerOverrides.vcpus", "memory": "containerOverrides.memory",
    "command": "containerOverrides.command", "environment": "containerOverrides.environment",
    "resourceRequirements": "containerOverrides.resourceRequirements",
    "retryStrategy": "retry (batchd's own retry policy)", "name": "workflow_name",
    "jobDefinition": "job_definition", "jobQueue": "queue",
    "attemptDurationSeconds": "timeout",
}


@dataclass(frozen=True)
class Analysis:
    step: int
    job_definition: str
    queue: str
    outputs: tuple[str, ...]
    parameters: dict[str, str]
    vcpus: float | None
    memory: int | None
    command: tuple[str, ...] | None
    environment: dict[str, str]
    timeout: int | None
    description: str
    retry: dict | None


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


def _show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it in JSON, shortened."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _quoted_number_hint(value: Any) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return "; write the number without quotes"
    return ""


class _Problems:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.shown: list[str] = []
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.raw(f"{self.filename}: {path}: {message}" if path else
                 f"{self.filename}: {message}")

    def raw(self, message: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_PROBLEMS:
            self.shown.append(message)

    def raise_if_any(self) -> None:
        if self.count == 1:
            raise InvalidInput(self.shown[0], file=self.filename, problems=self.shown)
        if self.count:
            more = (f" (showing the first {len(self.shown)})" if self.count > len(self.shown)
                    else "")
            lines = "\n".join(f"  {p}" for p in self.shown)
            raise InvalidInput(f"{self.filename} has {self.count} problems{more}:\n{lines}",
                               file=self.filename, problems=self.shown, count=self.count)


def _syntax_error(text: str, filename: str, exc: json.JSONDecodeError) -> InvalidInput:
    hints = []
    if re.search(r"^\s*(#|//)", text, re.MULTILINE):
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
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise InvalidInput(f"{filename}: {name} is not allowed in JSON; write a number",
                           file=filename)

    if not text.strip():
        raise InvalidInput(f"{filename} is empty; a workflow definition is a JSON object with "
                           "workflow_name and analyses", file=filename)
    try:
        data = json.loads(text.lstrip("\ufeff"), object_pairs_hook=pairs,
                          parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise _syntax_error(text.lstrip("\ufeff"), filename, exc) from None
    if duplicates:
        names = ", ".join(repr(k) for k in dict.fromkeys(duplicates))
        raise InvalidInput(f"{filename}: the key {names} appears more than once in the same "
                           "object; keep only one (JSON readers disagree on which one wins)",
                           file=filename, keys=sorted(set(duplicates)))
    return data


class _Parser:
    def __init__(self, filename: str, fields: Iterable[str]) -> None:
        self.filename = filename
        self.fields = sorted(set(fields))
        self.problems = _Problems(filename)

    # ------------------------------------------------------------------ small checks
    def keys(self, obj: dict, allowed: Iterable[str], path: str,
             moved: Mapping[str, str] | None = None) -> None:
        allowed = tuple(allowed)
        for key in obj:
            if key in allowed:
                continue
            where = f"{path}.{key}" if path else key
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if moved and key in moved:
                hint = f"did you mean {moved[key]}?"
            elif close:
                hint = f"did you mean {close[0]!r}?"
            else:
                hint = "remove it"
            self.problems.add(where, f"unknown key; {hint} (allowed here: "
                                     f"{', '.join(allowed)})")

    def object(self, value: Any, path: str, what: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.problems.add(path, f"expected {what}, got {_show(value)}")
        return None

    def text(self, value: Any, path: str, *, required: bool = True) -> str | None:
        if isinstance(value, str) and (value.strip() or not required):
            return value
        got = "an empty string" if value == "" else _show(value)
        self.problems.add(path, f"expected a non-empty string, got {got}")
        return None

    def template(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.problems.add(path, f"expected a string (a template such as "
                                    f"\"{{sample_name}}\"), got {_show(value)}")
            return None
        try:
            validate_template(value, self.fields, where=f"{self.filename}: {path}")
        except TemplateError as exc:
            self.problems.raw(exc.message)
            return None
        return value

    def whole(self, value: Any, path: str, *, minimum: int, unit: str, example: int
              ) -> int | None:
        if _is_whole(value) and value >= minimum:
            return int(value)
        if _is_whole(value):
            self.problems.add(path, f"must be at least {minimum} {unit}, got {_show(value)}")
        else:
            self.problems.add(path, f"expected a whole number of {unit} (e.g. {example}), got "
                                    f"{_show(value)}{_quoted_number_hint(value)}")
        return None

    def number(self, value: Any, path: str, *, minimum: float, strict: bool, what: str,
               example: str) -> float | None:
        if _is_number(value) and (value > minimum if strict else value >= minimum):
            return float(value)
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        self.problems.add(path, f"expected {what} {bound} (e.g. {example}), got "
                                f"{_show(value)}{_quoted_number_hint(value)}")
        return None

    # ------------------------------------------------------------------ sections
    def definition(self, data: Any) -> tuple[str | None, list[Analysis]]:
        if not isinstance(data, dict):
            self.problems.add("", f"the top level must be a JSON object with workflow_name and "
                                  f"analyses, got {_show(data, 30)}")
            return None, []
        self.keys(data, TOP_KEYS, "", MOVED)
        name = data.get("workflow_name")
        if "workflow_name" not in data:
            self.problems.add("workflow_name", "missing; name the workflow, e.g. "
                                               "\"workflow_name\": \"famli\"")
        elif not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
            self.problems.add("workflow_name", f"{_show(name)} is not a valid workflow name; "
                                               f"use {NAME_RULES}")
            name = None
        if "description" in data:
            self.text(data["description"], "description", required=False)
        analyses: list[Analysis] = []
        items = data.get("analyses")
        if "analyses" not in data:
            self.problems.add("analyses", "missing; list the steps to run on every sample")
        elif not isinstance(items, list) or not items:
            self.problems.add("analyses", f"expected a non-empty list of analyses, got "
                                          f"{_show(items)}")
        else:
            for step, item in enumerate(items):
                analysis = self.analysis(step, item)
                if analysis is not None:
                    analyses.append(analysis)
        return name, analyses

    def analysis(self, step: int, item: Any) -> Analysis | None:
        path = f"analyses[{step}]"
        item = self.object(item, path, "an object describing one analysis")
        if item is None:
            return None
        before = self.problems.count
        self.keys(item, ANALYSIS_KEYS, path, MOVED)
        for key in ("job_definition", "queue", "outputs"):
            if key not in item:
                self.problems.add(f"{path}.{key}", "missing; every analysis needs "
                                                   "job_definition, queue and outputs")
        job_definition = item.get("job_definition")
        if "job_definition" in item and self.text(job_definition, f"{path}.job_definition"):
            if not JOBDEF_RE.fullmatch(job_definition):
                self.problems.add(f"{path}.job_definition",
                                  f"{_show(job_definition)} is not a job definition name; use "
                                  "NAME or NAME:REVISION (letters, digits, '-', '_') or an ARN")
        queue = item.get("queue")
        if "queue" in item and self.text(queue, f"{path}.queue"):
            if not QUEUE_RE.fullmatch(queue):
                self.problems.add(f"{path}.queue", f"{_show(queue)} is not a job queue name; "
                                                   "use letters, digits, '-', '_' or an ARN")
        outputs = self.outputs(item.get("outputs"), f"{path}.outputs") \
            if "outputs" in item else ()
        parameters = self.parameters(item.get("parameters", {}), f"{path}.parameters")
        vcpus, memory, command, environment = self.overrides(
            item.get("containerOverrides", {}), f"{path}.containerOverrides")
        description = ""
        if "description" in item:
            description = self.text(item["description"], f"{path}.description",
                                    required=False) or ""
        timeout = self.timeout(item["timeout"], f"{path}.timeout") if "timeout" in item else None
        retry = self.retry(item["retry"], f"{path}.retry") if "retry" in item else None
        if self.problems.count > before:
            return None
        size = _payload_size(parameters, command, environment)
        if size > SUBMIT_PAYLOAD_LIMIT:
            self.problems.add(path, f"parameters, command and environment take {size} bytes "
                                    f"before filling in any sample; AWS accepts at most "
                                    f"{SUBMIT_PAYLOAD_LIMIT} bytes per job; move large values "
                                    "into a file the job reads")
            return None
        return Analysis(step=step, job_definition=job_definition, queue=queue, outputs=outputs,
                        parameters=parameters, vcpus=vcpus, memory=memory, command=command,
                        environment=environment, timeout=timeout, description=description,
                        retry=retry)

    def outputs(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.problems.add(path, f"expected a non-empty list of output paths (they decide "
                                    f"when a job is complete), got {_show(value)}")
            return ()
        seen: dict[str, int] = {}
        for i, template in enumerate(value):
            where = f"{path}[{i}]"
            if isinstance(template, str) and not template.strip():
                self.problems.add(where, "is empty; give the path of a file the job writes")
            elif self.template(template, where) is not None:
                if template in seen:
                    self.problems.add(where, f"repeats {path}[{seen[template]}] "
                                             f"({_show(template)}); list each output once")
                seen.setdefault(template, i)
        return tuple(value)

    def parameters(self, value: Any, path: str) -> dict[str, str]:
        value = self.object(value, path, "an object mapping parameter names to values")
        out: dict[str, str] = {}
        for key, raw in (value or {}).items():
            where = f"{path}.{key}"
            if not PARAM_NAME_RE.fullmatch(key):
                self.problems.add(where, "parameter names may only use letters, digits, '_' "
                                         "and '-' (they match Ref::NAME in the job definition)")
            if _is_number(raw):
                out[key] = _number_text(raw)
            elif self.template(raw, where) is not None:
                out[key] = raw
        return out

    def overrides(self, value: Any, path: str
                  ) -> tuple[float | None, int | None, tuple[str, ...] | None, dict[str, str]]:
        value = self.object(value, path, "an object (vcpus, memory, command, environment)")
        if not value:
            return None, None, None, {}
        self.keys(value, OVERRIDE_KEYS, path)
        vcpus = memory = None
        if "vcpus" in value:
            vcpus = self.number(value["vcpus"], f"{path}.vcpus", minimum=0, strict=True,
                                what="a number of vCPUs", example="16")
        if "memory" in value:
            memory = self.whole(value["memory"], f"{path}.memory", minimum=1, unit="MiB",
                                example=8000)
        if "resourceRequirements" in value:
            vcpus, memory = self.requirements(value["resourceRequirements"],
                                              f"{path}.resourceRequirements", value, vcpus,
                                              memory)
        command = None
        if "command" in value:
            raw = value["command"]
            if not isinstance(raw, list) or not raw:
                self.problems.add(f"{path}.command", f"expected a non-empty list of strings "
                                                     f"(or leave it out to use the job "
                                                     f"definition's command), got {_show(raw)}")
            else:
                items = [self.template(arg, f"{path}.command[{i}]") for i, arg in enumerate(raw)]
                command = tuple(a for a in items if a is not None)
        environment = self.environment(value["environment"], f"{path}.environment") \
            if "environment" in value else {}
        return vcpus, memory, command, environment

    def requirements(self, raw: Any, path: str, overrides: dict, vcpus: float | None,
                     memory: int | None) -> tuple[float | None, int | None]:
        if not isinstance(raw, list):
            self.problems.add(path, f"expected a list like [{{\"type\": \"VCPU\", \"value\": "
                                    f"\"4\"}}, {{\"type\": \"MEMORY\", \"value\": \"8000\"}}], "
                                    f"got {_show(raw)}")
            return vcpus, memory
        for i, req in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(req, dict) or set(req) != {"type", "value"}:
                self.problems.add(where, f"expected {{\"type\": \"VCPU\" or \"MEMORY\", "
                                         f"\"value\": \"...\"}}, got {_show(req)}")
                continue
            kind, amount = req["type"], req["value"]
            if _is_number(amount):
                amount = _number_text(amount)
            if kind not in ("VCPU", "MEMORY"):
                self.problems.add(f"{where}.type", f"batchd supports \"VCPU\" and \"MEMORY\", "
                                                   f"got {_show(kind)}")
                continue
            key = "vcpus" if kind == "VCPU" else "memory"
            if key in overrides:
                self.problems.add(where, f"{kind} is also given as {path.rsplit('.', 1)[0]}."
                                         f"{key}; give it only once")
                continue
            try:
                number = float(amount) if isinstance(amount, str) else None
            except ValueError:
                number = None
            if kind == "VCPU":
                if number is None or not number > 0:
                    self.problems.add(f"{where}.value", f"expected a number of vCPUs greater "
                                                        f"than 0 (e.g. \"4\"), got {_show(amount)}")
                else:
                    vcpus = number
            elif number is None or not number.is_integer() or number < 1:
                self.problems.add(f"{where}.value", f"expected a whole number of MiB (e.g. "
                                                    f"\"8000\"), got {_show(amount)}")
            else:
                memory = int(number)
        return vcpus, memory

    def environment(self, raw: Any, path: str) -> dict[str, str]:
        pairs: list[tuple[str, Any, str]] = []
        if isinstance(raw, dict):
            pairs = [(k, v, f"{path}.{k}") for k, v in raw.items()]
        elif isinstance(raw, list):
            for i, entry in enumerate(raw):
                if isinstance(entry, dict) and set(entry) == {"name", "value"} and \
                        isinstance(entry["name"], str):
                    pairs.append((entry["name"], entry["value"], f"{path}[{i}].value"))
                else:
                    self.problems.add(f"{path}[{i}]", f"expected {{\"name\": ..., \"value\": "
                                                      f"...}}, got {_show(entry)}")
        else:
            self.problems.add(path, f"expected an object {{\"NAME\": \"value\"}} or a list of "
                                    f"{{\"name\", \"value\"}} objects, got {_show(raw)}")
        out: dict[str, str] = {}
        for name, value, where in pairs:
            if not ENV_NAME_RE.fullmatch(name):
                self.problems.add(where, f"{_show(name)} is not a valid environment variable "
                                         "name; use letters, digits and '_', not starting "
                                         "with a digit")
                continue
            if name.startswith("AWS_BATCH"):
                self.problems.add(where, f"{name}: names starting with AWS_BATCH are reserved "
                                         "by AWS Batch; rename the variable")
                continue
            if name in out:
                self.problems.add(where, f"{name} is set twice; set it once")
                continue
            if _is_number(value):
                out[name] = _number_text(value)
            elif self.template(value, where) is not None:
                out[name] = value
        return out

    def timeout(self, raw: Any, path: str) -> int | None:
        if isinstance(raw, dict):
            if set(raw) != {"attemptDurationSeconds"}:
                self.problems.add(path, f"expected a number of seconds or "
                                        f"{{\"attemptDurationSeconds\": N}}, got {_show(raw)}")
                return None
            raw, path = raw["attemptDurationSeconds"], f"{path}.attemptDurationSeconds"
        return self.whole(raw, path, minimum=MIN_TIMEOUT, unit="seconds", example=3600)

    def retry(self, raw: Any, path: str) -> dict | None:
        raw = self.object(raw, path, "an object such as {\"max_attempts\": 3}")
        if raw is None:
            return None
        self.keys(raw, RETRY_KEYS, path)
        out: dict[str, Any] = {}
        for key in ("max_attempts", "spot_attempts"):
            if key in raw:
                out[key] = self.whole(raw[key], f"{path}.{key}", minimum=1, unit="attempts",
                                      example=3)
        for key in ("memory_factor", "timeout_factor"):
            if key in raw:
                out[key] = self.number(raw[key], f"{path}.{key}", minimum=1, strict=False,
                                       what="a factor", example="2")
        if "max_memory" in raw:
            out["max_memory"] = self.whole(raw["max_memory"], f"{path}.max_memory", minimum=1,
                                           unit="MiB", example=256000)
        return out


def _number_text(value: int | float) -> str:
    # 16.0 in JSON most likely means "16" to the program that reads the parameter.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _payload_size(parameters: Mapping[str, str], command: Iterable[str] | None,
                  environment: Mapping[str, str]) -> int:
    body = {"parameters": parameters, "command": list(command or ()),
            "environment": [{"name": k, "value": v} for k, v in environment.items()]}
    return len(json.dumps(body, separators=(",", ":")).encode())


def parse_definition(text: str, *, filename: str, available_fields: Iterable[str]
                     ) -> WorkflowDefinition:
    """Parse and validate a workflow definition; raises InvalidInput listing every problem."""
    data = _load(text, filename)
    parser = _Parser(filename, available_fields)
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
                f"({analysis.outputs[i]!r}) is empty for this sample; fill in the metadata "
                "columns it uses", sample=sample, step=analysis.step)
    # Cheap bound first: JSON escaping grows a character to at most 12 bytes and each entry
    # adds under 64 bytes of syntax, so most jobs never pay for the exact measurement.
    entries = len(parameters) + len(environment) + (len(command) if command else 0) + 1
    rough = (sum(map(len, parameters)) + sum(map(len, parameters.values()))
             + (sum(map(len, environment)) + sum(map(len, environment.values()))
                if environment else 0)
             + (sum(map(len, command)) if command else 0))
    if rough * 12 + 64 * entries > SUBMIT_PAYLOAD_LIMIT:
        size = _payload_size(parameters, command, environment)
        if size > SUBMIT_PAYLOAD_LIMIT:
            raise InvalidInput(
                f"sample {sample!r}, analyses[{analysis.step}]: the filled-in parameters, "
                f"command and environment take {size} bytes; AWS accepts at most "
                f"{SUBMIT_PAYLOAD_LIMIT} bytes per job; shorten the values this sample's "
                "metadata puts into them", sample=sample, step=analysis.step, size=size)
    return RenderedJob(outputs=outputs, parameters=parameters, command=command,
                       environment=environment)
