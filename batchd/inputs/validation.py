"""Pieces shared by the input validators (workflow definitions, job definitions, samples tables).

All of them report every problem they find in one InvalidInput instead of stopping at the
first, so a user fixes a file in one round trip; `Problems` is that collector. The value
helpers make the validators quote a user's value the way it was written in the JSON.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from batchd.errors import InvalidInput

# The retry bounds and MAX_MEMORY live with RetryPolicy, so the settings reach them without
# importing this module.
from batchd.failures import MAX_ATTEMPTS, MAX_FACTOR, MAX_MEMORY, MAX_SPOT_ATTEMPTS  # noqa: F401
from batchd.text import clip, shorten

# Enough to show the pattern of a mistake; a million-row file with the same mistake on every
# row must not produce a million-line message.
MAX_PROBLEMS = 20
MIN_TIMEOUT = 60  # AWS's minimum attemptDurationSeconds
# Upper bounds: beyond them a number is a typo (an extra zero, MB for MiB), and a job asking
# for more than any instance has waits RUNNABLE forever. The largest EC2 instance type
# (u-24tb1.112xlarge) has 448 vCPUs and 24 TiB of memory.
MAX_VCPUS = 448
MAX_TIMEOUT = 30 * 24 * 3600     # seconds: a month
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def show(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it in JSON, shortened."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def is_number(value: Any) -> bool:
    # bool is an int subclass, but `true` in JSON is never meant as 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_text(value: int | float) -> str:
    # 16.0 in JSON most likely means "16" to the program that reads the value.
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def text_to_float(text: Any) -> float | None:
    """The number in a string such as "4" or "0.5"; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def env_name_problem(name: Any, seen: Collection[str], *,
                     rules: str = "letters, digits and '_'") -> str | None:
    """What is wrong with an environment variable name, or None if it can be used."""
    if not isinstance(name, str) or not ENV_NAME_RE.fullmatch(name):
        return f"{show(name)} is not a valid environment variable name; use {rules}"
    if name.startswith("AWS_BATCH"):
        return (f"{shorten(name)}: names starting with AWS_BATCH are reserved by AWS Batch; "
                "rename the variable")
    if name in seen:
        return f"{shorten(name)} is set twice; set it once"
    return None


class Problems:
    """Counts every problem in one file but keeps only the first MAX_PROBLEMS.

    `lead` goes in front of each kept problem when reporting and `advice` after the count in
    the summary line; they let the samples table keep its problems as bare "line N: ..." texts
    (which the API returns as details) while still naming the file in the message.
    """

    def __init__(self, filename: str, *, lead: str = "", advice: str = "") -> None:
        self.filename = filename
        self.lead = lead
        self.advice = advice
        self.shown: list[str] = []
        self.count = 0

    def add(self, path: str, message: str) -> None:
        """A problem at a JSON path ("" for the file as a whole)."""
        path = shorten(path)  # a path is made of the file's own keys, of any length
        self.note(f"{self.filename}: {path}: {message}" if path else
                  f"{self.filename}: {message}")

    def note(self, message: str) -> None:
        """A problem whose message is already complete."""
        self.count += 1
        if len(self.shown) < MAX_PROBLEMS:
            self.shown.append(message)

    def unknown_keys(self, obj: Mapping[str, Any], allowed: Iterable[str], path: str, *,
                     moved: Mapping[str, str] | None = None, list_allowed: bool = False
                     ) -> None:
        """Reports keys not in `allowed`, suggesting where a misplaced or misspelt key goes."""
        allowed = tuple(allowed)
        for key in obj:
            if key in allowed:
                continue
            if len(self.shown) >= MAX_PROBLEMS:
                self.count += 1  # counted, not shown: no suggestion to compute (100,000 keys)
                continue
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if moved and key in moved:
                hint = f"did you mean {moved[key]}?"
            elif close:
                hint = f"did you mean {close[0]!r}?"
            else:
                hint = "remove it"
            listed = f" (allowed here: {', '.join(allowed)})" if list_allowed else ""
            self.add(f"{path}.{key}" if path else key, f"unknown key; {hint}{listed}")

    def raise_if_any(self) -> None:
        if not self.count:
            return
        if self.count == 1:
            raise InvalidInput(self.lead + self.shown[0], file=self.filename,
                               problems=self.shown)
        more = (f" (showing the first {len(self.shown)})" if self.count > len(self.shown)
                else "")
        lines = "\n".join(f"  {self.lead}{p}" for p in self.shown)
        raise InvalidInput(f"{self.filename} has {self.count} problems{more}{self.advice}:\n"
                           f"{lines}", file=self.filename, problems=self.shown,
                           count=self.count)


# -- JSON that a user or a client sent ----------------------------------------------------------
# Deeper than any real definition or request (a job definition's eksProperties is ~8 levels);
# a deeper document is refused before a recursive helper (deepcopy, show) meets it.
MAX_JSON_DEPTH = 64
# Beyond this a JSON number is a typo, and SQLite stores at most a signed 64-bit integer.
MAX_JSON_INT = 2 ** 63 - 1


class JsonProblem(ValueError):
    """Raised inside the decoder's hooks; turned into InvalidInput by load_json."""


def _depth(data: Any) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items
                         if isinstance(item, (dict, list)))
    return deepest


def _big_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(int(text)) > MAX_JSON_INT:
        shown = text if len(text) <= 30 else f"{text[:20]}... ({len(text):,} digits)"
        raise JsonProblem(f"the number {shown} is too large (at most {MAX_JSON_INT:,}); write "
                          "the value you mean")
    return int(text)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonProblem(f"the number {text[:30]} is too large; write the value you mean")
    return value


def _constant(name: str) -> Any:
    raise JsonProblem(f"{name} is not allowed in JSON; write a number")


def load_json(data: str | bytes, *, where: str, on_syntax_error: Any = None) -> Any:
    """Strict JSON from a user or client: UTF-8, no duplicate keys, no NaN/Infinity, no
    numbers out of range, at most MAX_JSON_DEPTH levels. Every refusal is an InvalidInput
    that starts with `where` (a file name, "the request body")."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raw = exc.object    # the bytes given (`data` is typed as the decoded text here)
            line = raw.count(b"\n", 0, exc.start) + 1
            raise InvalidInput(f"{where} line {line}: byte 0x{raw[exc.start]:02x} at byte "
                               f"offset {exc.start} is not valid UTF-8; send the text encoded "
                               "as UTF-8", line=line, byte_offset=exc.start) from None
    text = data[1:] if data.startswith("\ufeff") else data
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_int=_big_int,
                           parse_float=_finite, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        if on_syntax_error is not None:
            raise on_syntax_error(text, exc) from None
        raise InvalidInput(f"{where} line {exc.lineno} column {exc.colno}: invalid JSON: "
                           f"{exc.msg}; send one JSON value, with nothing after it",
                           line=exc.lineno, column=exc.colno) from None
    except JsonProblem as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; "
                           "flatten the document") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidInput(f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; "
                           "flatten the document")
    if duplicates:
        repeated = list(dict.fromkeys(duplicates))[:10]
        names = ", ".join(clip(k, 60) for k in repeated)
        raise InvalidInput(f"{where}: the key {names} appears more than once in the same "
                           "object; keep only one (JSON readers disagree on which one wins)",
                           keys=[clip(k, 60) for k in repeated])
    return value


def check_fields(body: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]], *,
                 where: str = "request field") -> None:
    """Unknown fields (with the nearest known one) and wrong types in a request body; null is
    accepted for every field (it means "not given")."""
    for key, value in body.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
            raise InvalidInput(f"unknown {where} {show(key, 40)}; {hint} (fields: "
                               f"{', '.join(fields)})", field=key[:100])
        types = fields[key]
        if value is None or (isinstance(value, types) and not
                             (isinstance(value, bool) and bool not in types)):
            continue
        want = " or ".join(_TYPE_NAMES[t] for t in types)
        raise InvalidInput(f"{where} {key!r} must be {want}, got {show(value, 40)}", field=key)


_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
               dict: "a JSON object", list: "a list"}


# The fields each API route's body may have (by handler name), and their types.
BODY_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "import_project": {"name": (str,), "metadata": (str,), "metadata_filename": (str,),
                       "sample_col": (str,), "file_col": (str,)},
    "create_workflow": {"definition": (str,), "definition_filename": (str,),
                        "base_dir": (str,)},
    "register_jobdef": {"spec": (dict,), "filename": (str,)},
    "cancel_jobs": {"reason": (str,), "status": (str,), "sample": (str,), "step": (int,)},
    "resubmit_jobs": {"status": (str,), "sample": (str,), "step": (int,), "memory": (int,),
                      "vcpus": (int, float), "queue": (str,), "timeout": (int,),
                      "force": (bool,)},
}
