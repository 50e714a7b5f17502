"""Job definitions in AWS RegisterJobDefinition format: validation and `Ref::` filling.

The same JSON file is registered with AWS or with the local backend, so validation accepts
what AWS accepts (other AWS fields pass through untouched) but insists on what batchd needs
to run the job anywhere: a command and vCPU/memory amounts. Problems name the JSON path and
are reported together.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Mapping
from typing import Any

from batchd.errors import InvalidInput
from batchd.inputs.validation import (
    MAX_MEMORY,
    MAX_TIMEOUT,
    MAX_VCPUS,
    MIN_TIMEOUT,
    Problems,
    env_name_problem,
    is_number,
    number_text,
    show,
    text_to_float,
)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

TOP_KEYS = ("jobDefinitionName", "type", "parameters", "schedulingPriority",
            "containerProperties", "nodeProperties", "retryStrategy", "propagateTags",
            "timeout", "tags", "platformCapabilities", "eksProperties", "ecsProperties",
            "consumableResourceProperties")
CONTAINER_KEYS = ("image", "vcpus", "memory", "command", "jobRoleArn", "executionRoleArn",
                  "volumes", "environment", "mountPoints", "readonlyRootFilesystem",
                  "privileged", "ulimits", "user", "instanceType", "resourceRequirements",
                  "linuxParameters", "logConfiguration", "secrets", "networkConfiguration",
                  "fargatePlatformConfiguration", "ephemeralStorage", "runtimePlatform",
                  "repositoryCredentials", "enableExecuteCommand")
RESOURCE_TYPES = ("VCPU", "MEMORY", "GPU")
_LARGEST = "the largest EC2 instance has 448 vCPUs and 24 TiB"
# AWS's rule for containerProperties.image (255 letters, digits, - _ : . / #) plus '@' for a
# digest (name@sha256:...).
IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#@-]{0,254}")


def _image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return f"expected an image name such as \"ubuntu:22.04\", got {show(image)}"
    if "://" in image:
        return (f"{show(image)} is a URL; an image is [REGISTRY/]REPOSITORY[:TAG], e.g. "
                f"\"{image.split('://', 1)[1] or 'ubuntu:22.04'}\"")
    if IMAGE_RE.fullmatch(image) and not image.endswith((":", "/", "@")):
        return None
    if len(image) > 255:
        return f"is {len(image):,} characters long; AWS accepts at most 255"
    bad = sorted({c for c in image if not re.fullmatch(r"[A-Za-z0-9._:/#@-]", c)})
    why = (f"contains {', '.join(repr(c) for c in bad[:5])}" if bad else
           "must start with a letter or digit and not end with ':', '/' or '@'")
    return (f"{show(image)} is not an image name: it {why}; write [REGISTRY/]REPOSITORY[:TAG], "
            "e.g. \"python:3.11-slim\"")


def validate_job_definition(spec: dict, *, filename: str) -> dict:
    """Validate a RegisterJobDefinition request; returns a normalised copy (same AWS shape)."""
    check = Problems(filename)
    if not isinstance(spec, dict):
        raise InvalidInput(f"{filename}: a job definition must be a JSON object, got "
                           f"{show(spec, 30)}", file=filename)
    out = copy.deepcopy(spec)
    check.unknown_keys(spec, TOP_KEYS, "")
    name = spec.get("jobDefinitionName")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        got = "missing" if name is None else f"got {show(name)}"
        check.add("jobDefinitionName", f"{got}; a job definition name is 1-128 letters, digits, "
                                       "'-' or '_', starting with a letter or digit")
    kind = out.setdefault("type", "container")
    if kind != "container":
        check.add("type", f"batchd runs \"container\" job definitions only, got {show(kind)}")
    if "parameters" in spec:
        out["parameters"] = _string_map(spec["parameters"], "parameters", "parameter names",
                                        check)
    if "tags" in spec:
        out["tags"] = _string_map(spec["tags"], "tags", "tag names", check)
    if "timeout" in spec:
        timeout = spec["timeout"]
        seconds = timeout.get("attemptDurationSeconds") if isinstance(timeout, dict) else None
        if not isinstance(timeout, dict) or set(timeout) != {"attemptDurationSeconds"} or \
                not isinstance(seconds, int) or isinstance(seconds, bool) or \
                not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            check.add("timeout", f"expected {{\"attemptDurationSeconds\": N}} with N a whole "
                                 f"number of seconds from {MIN_TIMEOUT} to {MAX_TIMEOUT:,} (a "
                                 f"month), got {show(timeout)}")
    if "retryStrategy" in spec:
        retry = spec["retryStrategy"]
        attempts = retry.get("attempts", 1) if isinstance(retry, dict) else None
        if not isinstance(retry, dict) or not isinstance(attempts, int) or \
                isinstance(attempts, bool) or not 1 <= attempts <= 10:
            check.add("retryStrategy", f"expected {{\"attempts\": N}} with N from 1 to 10, got "
                                       f"{show(retry)}")
    container = spec.get("containerProperties")
    if not isinstance(container, dict):
        got = "missing" if container is None else f"got {show(container)}"
        check.add("containerProperties", f"{got}; give an object with at least command, vcpus "
                                         "and memory")
    else:
        out["containerProperties"] = _container(container, check)
    check.raise_if_any()
    return out


def _container(spec: dict, check: Problems) -> dict:
    path = "containerProperties"
    out = copy.deepcopy(spec)
    check.unknown_keys(spec, CONTAINER_KEYS, path)
    command = spec.get("command")
    if not isinstance(command, list) or not command or \
            not all(isinstance(arg, str) for arg in command):
        check.add(f"{path}.command", f"expected a non-empty list of strings such as "
                                     f"[\"run.sh\", \"Ref::input\"], got {show(command)}")
    if "image" in spec:
        problem = _image_problem(spec["image"])
        if problem:
            check.add(f"{path}.image", problem)
    vcpus = memory = None
    if "vcpus" in spec:
        vcpus = spec["vcpus"]
        # The legacy field is an Integer in the AWS API; fractions need resourceRequirements.
        if not isinstance(vcpus, int) or isinstance(vcpus, bool) or not 1 <= vcpus <= MAX_VCPUS:
            check.add(f"{path}.vcpus", f"expected a whole number of vCPUs from 1 to "
                                       f"{MAX_VCPUS}, got {show(vcpus)} (fractional vCPUs go "
                                       f"in resourceRequirements; {_LARGEST})")
    if "memory" in spec:
        memory = spec["memory"]
        if not isinstance(memory, int) or isinstance(memory, bool) or \
                not 1 <= memory <= MAX_MEMORY:
            check.add(f"{path}.memory", f"expected a whole number of MiB from 1 to "
                                        f"{MAX_MEMORY:,} (e.g. 8000), got {show(memory)} "
                                        f"({_LARGEST})")
    if "resourceRequirements" in spec:
        reqs = spec["resourceRequirements"]
        if not isinstance(reqs, list):
            check.add(f"{path}.resourceRequirements", f"expected a list of {{\"type\", "
                                                      f"\"value\"}} objects, got {show(reqs)}")
            reqs = []
        normalised = []
        for i, req in enumerate(reqs):
            where = f"{path}.resourceRequirements[{i}]"
            if not isinstance(req, dict) or set(req) != {"type", "value"}:
                check.add(where, f"expected {{\"type\": \"VCPU\" | \"MEMORY\" | \"GPU\", "
                                 f"\"value\": \"...\"}}, got {show(req)}")
                continue
            kind, value = req["type"], req["value"]
            text = number_text(value) if is_number(value) else value
            if kind not in RESOURCE_TYPES:
                check.add(f"{where}.type", f"expected one of {', '.join(RESOURCE_TYPES)}, got "
                                           f"{show(kind)}")
                continue
            legacy = {"VCPU": "vcpus", "MEMORY": "memory"}.get(kind)
            if legacy and legacy in spec:
                check.add(where, f"{kind} is also given as {path}.{legacy}; give it once")
                continue
            number = text_to_float(text)
            whole = kind != "VCPU"
            most = {"VCPU": MAX_VCPUS, "MEMORY": MAX_MEMORY}.get(kind, 64)
            if number is None or not 0 < number <= most or (whole and not number.is_integer()):
                want = (f"a number greater than 0 and at most {most:,}" if not whole else
                        f"a whole number from 1 to {most:,}")
                check.add(f"{where}.value", f"expected {want} as a string (e.g. "
                                            f"\"{'4' if kind != 'MEMORY' else '8000'}\"), got "
                                            f"{show(value)}")
                continue
            if kind == "VCPU":
                vcpus = number
            elif kind == "MEMORY":
                memory = number
            normalised.append({"type": kind, "value": text})
        out["resourceRequirements"] = normalised
    if vcpus is None or memory is None:
        missing = " and ".join(n for n, v in (("vCPUs", vcpus), ("memory", memory)) if v is None)
        check.add(path, f"no {missing} given; set vcpus and memory, or resourceRequirements "
                        "[{\"type\": \"VCPU\", \"value\": \"1\"}, {\"type\": \"MEMORY\", "
                        "\"value\": \"2048\"}]")
    if "environment" in spec:
        out["environment"] = _environment(spec["environment"], f"{path}.environment", check)
    return out


def _string_map(value: Any, path: str, what: str, check: Problems) -> dict[str, str]:
    """An object of strings; numbers are accepted and turned into text as AWS requires."""
    if not isinstance(value, dict):
        check.add(path, f"expected an object mapping {what} to strings, got {show(value)}")
        return {}
    out = {}
    for key, item in value.items():
        if is_number(item):
            out[key] = number_text(item)
        elif isinstance(item, str):
            out[key] = item
        else:
            check.add(f"{path}.{key}", f"expected a string, got {show(item)}")
    return out


def _environment(value: Any, path: str, check: Problems) -> list[dict[str, str]]:
    if not isinstance(value, list):
        check.add(path, f"expected a list of {{\"name\", \"value\"}} objects, got {show(value)}")
        return []
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, entry in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "value"}:
            check.add(where, f"expected {{\"name\": ..., \"value\": ...}}, got {show(entry)}")
            continue
        name, item = entry["name"], entry["value"]
        problem = env_name_problem(name, seen)
        if problem:
            check.add(f"{where}.name", problem)
        if isinstance(name, str):  # a list or object as a name is reported above, not hashed
            seen.add(name)
        if is_number(item):
            item = number_text(item)
        elif not isinstance(item, str):
            check.add(f"{where}.value", f"expected a string, got {show(item)}")
        out.append({"name": name, "value": item})
    return out


@functools.lru_cache(maxsize=1024)
def _ref_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    # Longest names first so Ref::input_dir is never read as Ref::input + "_dir"; the
    # lookahead stops Ref::input from matching the start of an unknown Ref::input_dir.
    ordered = sorted(names, key=len, reverse=True)
    return re.compile("Ref::(" + "|".join(map(re.escape, ordered)) + ")(?![A-Za-z0-9_])")


def fill_command(command: list[str], parameters: Mapping[str, str]) -> list[str]:
    """Replace Ref::NAME placeholders with parameter values, in one pass (a value containing
    Ref:: is never filled again); placeholders without a value stay as they are, as on AWS."""
    if not parameters:
        return list(command)
    pattern = _ref_pattern(tuple(sorted(parameters)))

    def value(match: re.Match[str]) -> str:
        return parameters[match.group(1)]

    return [pattern.sub(value, arg) if "Ref::" in arg else arg for arg in command]


def resources(container_properties: dict) -> tuple[float | None, int | None]:
    """(vCPUs, memory MiB) from the legacy fields or resourceRequirements."""
    vcpus = container_properties.get("vcpus")
    memory = container_properties.get("memory")
    for req in container_properties.get("resourceRequirements") or ():
        if req.get("type") == "VCPU":
            vcpus = req.get("value")
        elif req.get("type") == "MEMORY":
            memory = req.get("value")
    return (float(vcpus) if vcpus is not None else None,
            int(float(memory)) if memory is not None else None)


def _find(ref: str, registered: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The registered definition a workflow's job_definition names, else (None, why)."""
    name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
    name, _, rev = name.partition(":")
    revisions: dict[Any, dict[str, Any]] = {jd.get("revision"): jd for jd in registered
                 if jd.get("jobDefinitionName") == name}
    if revisions and not rev:
        return revisions[max(revisions)], ""
    if rev.isdigit() and int(rev) in revisions:
        return revisions[int(rev)], ""
    if revisions:
        known = ", ".join(str(r) for r in sorted(revisions))
        return None, (f"{name} has no revision {rev} (revisions: {known}); use one of them or "
                      f"just {name!r} for the newest")
    names = sorted({str(jd.get("jobDefinitionName")) for jd in registered})
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") or "none yet"
    return None, (f"{show(ref)} is not registered; {hint}register it with `batchctl jobdef "
                  f"register FILE.json` (registered: {shown})")


def check_references(analyses: Any, registered: list[dict[str, Any]], *, filename: str) -> None:
    """Every step's job definition exists and every Ref:: in the command it runs gets a value.

    A placeholder left unfilled is passed to the program as the literal text "Ref::name" (AWS
    does the same), so the job fails, or worse runs on a wrong argument, once per sample.
    """
    check = Problems(filename)
    for analysis in analyses:
        path = f"analyses[{analysis.step}]"
        jd, why = _find(analysis.job_definition, registered)
        if jd is None:
            check.add(f"{path}.job_definition", why)
            continue
        command = analysis.command
        if command is None:
            command = (jd.get("containerProperties") or {}).get("command") or []
        given = {**(jd.get("parameters") or {}), **analysis.parameters}
        filled = fill_command([str(arg) for arg in command], {k: "" for k in given})
        missing = dict.fromkeys(m for arg in filled for m in _REF_NAME.findall(arg))
        for name in missing:
            check.add(f"{path}.parameters",
                      f"the command of job definition {jd.get('jobDefinitionName')} uses "
                      f"Ref::{name}, which has no default there and no value here; add "
                      f"\"{name}\": \"...\" to {path}.parameters (or a default to the job "
                      "definition's parameters)")
    check.raise_if_any()


_REF_NAME = re.compile(r"Ref::([A-Za-z0-9_-]*)")
