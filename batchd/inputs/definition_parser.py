"""The key-by-key validation walk over a workflow definition's JSON, one analysis at a time.

The walk checks every template against the project's fields, every number's type and range
and every key's spelling (typos get a did-you-mean, keys from the AWS SubmitJob shape point to
where batchd wants them), collecting each problem with its JSON path rather than stopping at
the first. Its result is one `Analysis` per step, ready to be rendered for each sample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchd.inputs.field_checks import FieldChecks
from batchd.inputs.validation import (
    MAX_ATTEMPTS,
    MAX_FACTOR,
    MAX_MEMORY,
    MAX_SPOT_ATTEMPTS,
    MAX_TIMEOUT,
    MAX_VCPUS,
    MIN_TIMEOUT,
    env_name_problem,
    is_number,
    number_text,
    show,
    text_to_float,
)
from batchd.naming import NAME_RE, NAME_RULES

# AWS SubmitJob rejects requests whose parameters and overrides exceed 30 KiB.
SUBMIT_PAYLOAD_LIMIT = 30 * 1024

JOBDEF_RE = re.compile(r"arn:\S+|[A-Za-z0-9][A-Za-z0-9_-]{0,127}(:[1-9][0-9]*)?")
QUEUE_RE = re.compile(r"arn:\S+|[A-Za-z0-9_-]{1,128}")
PARAM_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_LARGEST = "the largest EC2 instance has 448 vCPUs and 24 TiB; is a digit too many?"

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


def payload_size(parameters: Mapping[str, str], command: Iterable[str] | None,
                 environment: Mapping[str, str]) -> int:
    """Bytes the parameters and overrides take in a SubmitJob request, as AWS counts them."""
    body = {"parameters": parameters, "command": list(command or ()),
            "environment": [{"name": k, "value": v} for k, v in environment.items()]}
    return len(json.dumps(body, separators=(",", ":")).encode())


class Parser(FieldChecks):
    """Walks one definition, section by section, collecting problems in `problems`."""

    def definition(self, data: Any) -> tuple[str | None, list[Analysis]]:
        if not isinstance(data, dict):
            self.problems.add("", f"the top level must be a JSON object with workflow_name and "
                                  f"analyses, got {show(data, 30)}")
            return None, []
        self.keys(data, TOP_KEYS, "", MOVED)
        name = data.get("workflow_name")
        if "workflow_name" not in data:
            self.problems.add("workflow_name", "missing; name the workflow, e.g. "
                                               "\"workflow_name\": \"famli\"")
        elif not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
            self.problems.add("workflow_name", f"{show(name)} is not a valid workflow name; "
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
                                          f"{show(items)}")
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
                                  f"{show(job_definition)} is not a job definition name; use "
                                  "NAME or NAME:REVISION (letters, digits, '-', '_') or an ARN")
        queue = item.get("queue")
        if "queue" in item and self.text(queue, f"{path}.queue"):
            if not QUEUE_RE.fullmatch(queue):
                self.problems.add(f"{path}.queue", f"{show(queue)} is not a job queue name; "
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
        size = payload_size(parameters, command, environment)
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
                                    f"when a job is complete), got {show(value)}")
            return ()
        seen: dict[str, int] = {}
        for i, template in enumerate(value):
            where = f"{path}[{i}]"
            if isinstance(template, str) and not template.strip():
                self.problems.add(where, "is empty; give the path of a file the job writes")
            elif self.template(template, where) is not None:
                if template in seen:
                    self.problems.add(where, f"repeats {path}[{seen[template]}] "
                                             f"({show(template)}); list each output once")
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
            text = self.value(raw, where)
            if text is not None:
                out[key] = text
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
                                what="a number of vCPUs", example="16", maximum=MAX_VCPUS,
                                why=_LARGEST)
        if "memory" in value:
            memory = self.whole(value["memory"], f"{path}.memory", minimum=1, unit="MiB",
                                example=8000, maximum=MAX_MEMORY, why=_LARGEST)
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
                                                     f"definition's command), got {show(raw)}")
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
                                    f"got {show(raw)}")
            return vcpus, memory
        for i, req in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(req, dict) or set(req) != {"type", "value"}:
                self.problems.add(where, f"expected {{\"type\": \"VCPU\" or \"MEMORY\", "
                                         f"\"value\": \"...\"}}, got {show(req)}")
                continue
            kind, amount = req["type"], req["value"]
            if is_number(amount):
                amount = number_text(amount)
            if kind not in ("VCPU", "MEMORY"):
                self.problems.add(f"{where}.type", f"batchd supports \"VCPU\" and \"MEMORY\", "
                                                   f"got {show(kind)}")
                continue
            key = "vcpus" if kind == "VCPU" else "memory"
            if key in overrides:
                self.problems.add(where, f"{kind} is also given as {path.rsplit('.', 1)[0]}."
                                         f"{key}; give it only once")
                continue
            number = text_to_float(amount)
            if kind == "VCPU":
                if number is None or not 0 < number <= MAX_VCPUS:
                    self.problems.add(f"{where}.value", f"expected a number of vCPUs greater "
                                                        f"than 0 and at most {MAX_VCPUS} (e.g. "
                                                        f"\"4\"), got {show(amount)}")
                else:
                    vcpus = number
            elif number is None or not number.is_integer() or not 1 <= number <= MAX_MEMORY:
                self.problems.add(f"{where}.value", f"expected a whole number of MiB from 1 to "
                                                    f"{MAX_MEMORY:,} (e.g. \"8000\"), got "
                                                    f"{show(amount)}")
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
                                                      f"...}}, got {show(entry)}")
        else:
            self.problems.add(path, f"expected an object {{\"NAME\": \"value\"}} or a list of "
                                    f"{{\"name\", \"value\"}} objects, got {show(raw)}")
        out: dict[str, str] = {}
        for name, value, where in pairs:
            problem = env_name_problem(name, out, rules="letters, digits and '_', not "
                                                        "starting with a digit")
            if problem:
                self.problems.add(where, problem)
                continue
            text = self.value(value, where)
            if text is not None:
                out[name] = text
        return out

    def timeout(self, raw: Any, path: str) -> int | None:
        if isinstance(raw, dict):
            if set(raw) != {"attemptDurationSeconds"}:
                self.problems.add(path, f"expected a number of seconds or "
                                        f"{{\"attemptDurationSeconds\": N}}, got {show(raw)}")
                return None
            raw, path = raw["attemptDurationSeconds"], f"{path}.attemptDurationSeconds"
        return self.whole(raw, path, minimum=MIN_TIMEOUT, unit="seconds", example=3600,
                          maximum=MAX_TIMEOUT, why="a month; a longer run should checkpoint")

    def retry(self, raw: Any, path: str) -> dict | None:
        raw = self.object(raw, path, "an object such as {\"max_attempts\": 3}")
        if raw is None:
            return None
        self.keys(raw, RETRY_KEYS, path)
        out: dict[str, Any] = {}
        for key, most in (("max_attempts", MAX_ATTEMPTS), ("spot_attempts", MAX_SPOT_ATTEMPTS)):
            if key in raw:
                out[key] = self.whole(raw[key], f"{path}.{key}", minimum=1, unit="attempts",
                                      example=3, maximum=most,
                                      why="each attempt is paid for; fix what fails instead")
        for key in ("memory_factor", "timeout_factor"):
            if key in raw:
                out[key] = self.number(raw[key], f"{path}.{key}", minimum=1, strict=False,
                                       what="a factor", example="2", maximum=MAX_FACTOR,
                                       why="the cap max_memory bounds the growth anyway")
        if "max_memory" in raw:
            out["max_memory"] = self.whole(raw["max_memory"], f"{path}.max_memory", minimum=1,
                                           unit="MiB", example=256000, maximum=MAX_MEMORY,
                                           why=_LARGEST)
        return out
