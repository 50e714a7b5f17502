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

from .errors import InvalidInput
from .limits import shorten

# Enough to show the pattern of a mistake; a million-row file with the same mistake on every
# row must not produce a million-line message.
MAX_PROBLEMS = 20
MIN_TIMEOUT = 60  # AWS's minimum attemptDurationSeconds
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
