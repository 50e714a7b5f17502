"""The value checks a workflow definition's walk is built from.

Each check looks at one JSON value (an object, a string, a template, a bounded number) and,
when it is wrong, records a problem at its JSON path in `problems` instead of raising, so one
pass reports every mistake. The walk itself (which key holds what, per section) is
`definition_parser.Parser`, a subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from batchd.inputs.templates import TemplateError, template_fields, validate_template
from batchd.inputs.validation import (
    MAX_PROBLEMS,
    Problems,
    is_number,
    number_text,
    show,
    text_to_float,
)
from batchd.text import shorten


def _is_whole(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


def _quoted_number_hint(value: Any) -> str:
    if isinstance(value, str) and text_to_float(value) is not None:
        return "; write the number without quotes"
    return ""


class FieldChecks:
    """Checks of single values in one definition file, collecting problems in `problems`."""

    def __init__(self, filename: str, fields: Iterable[str]) -> None:
        self.filename = filename
        self.fields = frozenset(fields)
        self.problems = Problems(filename)

    def keys(self, obj: dict, allowed: Iterable[str], path: str,
             moved: Mapping[str, str] | None = None) -> None:
        self.problems.unknown_keys(obj, allowed, path, moved=moved, list_allowed=True)

    def object(self, value: Any, path: str, what: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.problems.add(path, f"expected {what}, got {show(value)}")
        return None

    def text(self, value: Any, path: str, *, required: bool = True) -> str | None:
        if isinstance(value, str) and (value.strip() or not required):
            return value
        got = "an empty string" if value == "" else show(value)
        self.problems.add(path, f"expected a non-empty string, got {got}")
        return None

    def template(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.problems.add(path, f"expected a string (a template such as "
                                    f"\"{{sample_name}}\"), got {show(value)}")
            return None
        try:
            if len(self.problems.shown) >= MAX_PROBLEMS:
                # counted, not shown: skip the message (a sort of every column, a did-you-mean)
                if not self.fields.issuperset(template_fields(value)):
                    self.problems.count += 1
                    return None
                return value
            validate_template(value, self.fields, where=f"{self.filename}: {shorten(path)}")
        except TemplateError as exc:
            self.problems.note(exc.message)
            return None
        return value

    def value(self, raw: Any, path: str) -> str | None:
        """A parameter or environment value: a template, or a number turned into text."""
        return number_text(raw) if is_number(raw) else self.template(raw, path)

    def whole(self, value: Any, path: str, *, minimum: int, unit: str, example: int,
              maximum: int, why: str) -> int | None:
        if _is_whole(value) and minimum <= value <= maximum:
            return int(value)
        if _is_whole(value) and value > maximum:
            self.problems.add(path, f"must be at most {maximum:,} {unit} ({why}), got "
                                    f"{show(value)}")
        elif _is_whole(value):
            self.problems.add(path, f"must be at least {minimum} {unit}, got {show(value)}")
        else:
            self.problems.add(path, f"expected a whole number of {unit} (e.g. {example}), got "
                                    f"{show(value)}{_quoted_number_hint(value)}")
        return None

    def number(self, value: Any, path: str, *, minimum: float, strict: bool, what: str,
               example: str, maximum: float, why: str) -> float | None:
        if is_number(value) and value > maximum:
            self.problems.add(path, f"expected {what} of at most {maximum:g} ({why}), got "
                                    f"{show(value)}")
            return None
        if is_number(value) and (value > minimum if strict else value >= minimum):
            return float(value)
        bound = f"greater than {minimum:g}" if strict else f"at least {minimum:g}"
        self.problems.add(path, f"expected {what} {bound} (e.g. {example}), got "
                                f"{show(value)}{_quoted_number_hint(value)}")
        return None
