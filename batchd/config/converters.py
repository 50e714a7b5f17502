"""The converters of batchd's settings, and the row type of settings.py's field table.

A converter takes one raw value as a layer gives it (a str from an environment variable or a
flag; a str, number, bool, list or table from TOML) and returns the setting's value, or raises
ValueError with the reason alone ("must be between 1 and 20"). `convert` adds the layer, the
key and the value, so every layer reports a mistake in the same words. Each setting names its
converter explicitly: nothing is inferred from type annotations.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchd.errors import InvalidInput

Converter = Callable[[Any], Any]

LIVE = "live"          # a reload (SIGHUP) applies it at once
RESTART = "restart"    # built into something at start-up: a reload logs that it waits


@dataclass(frozen=True)
class Field:
    """One setting. `name` is the Settings attribute ("retry.X" for the retry defaults);
    `toml` is where the file holds it, spelt as the README does ("[aws] rate_limit", or the
    bare key at the top level); `env` the variable, if any."""

    name: str
    convert: Converter
    toml: str | None
    env: str | None
    reload: str = LIVE

    @property
    def section_key(self) -> tuple[str | None, str] | None:
        """("aws", "rate_limit") for "[aws] rate_limit", (None, "backend") for "backend"."""
        if self.toml is None:
            return None
        if self.toml.startswith("["):
            section, _, key = self.toml[1:].partition("] ")
            return section, key
        return None, self.toml


def convert(row: Field, raw: Any, where: str, name: str | None = None) -> Any:
    try:
        return row.convert(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: invalid value {raw!r} for {name or row.name}: "
                           f"{exc}") from None


def plain_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _in_range(number: float, low: float, high: float) -> None:
    if not low <= number <= high:
        raise ValueError(f"must be between {plain_number(low)} and {plain_number(high)}")


def path(raw: Any) -> Path:
    if not isinstance(raw, (str, os.PathLike)):
        raise ValueError("expected a path")
    if not str(raw).strip():   # "" would mean the current directory
        raise ValueError("expected a path, not an empty string")
    return Path(os.path.expanduser(str(raw)))


def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def number(low: float, high: float = math.inf) -> Converter:
    """A finite float in [low, high]; TOML's true is not 1."""
    def to_number(raw: Any) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError("expected a number")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        except OverflowError:   # a TOML integer of hundreds of digits
            raise ValueError("must be a finite number") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        _in_range(value, low, high)
        return value
    return to_number


def whole(low: int, high: float = math.inf) -> Converter:
    """An int in [low, high]; 4.0 from TOML is 4, 1.5 is refused."""
    def to_whole(raw: Any) -> int:
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError("expected a whole number")
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ValueError("expected a whole number")
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        _in_range(value, low, high)
        return value
    return to_whole


def text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("expected a string")
    return raw


def choice(*options: str) -> Converter:
    def to_choice(raw: Any) -> str:
        if text(raw) not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return raw
    return to_choice


def pattern(regex: re.Pattern[str], message: str) -> Converter:
    """A string the whole of which matches `regex`; `message` is the reason otherwise."""
    def to_match(raw: Any) -> str:
        if not isinstance(raw, str) or not regex.fullmatch(raw):
            raise ValueError(message)
        return raw
    return to_match


def aws_name(regex: re.Pattern[str] | None = None, message: str = "") -> Converter:
    """An AWS region or profile name: "" is a mistake (leaving it out means AWS's chain)."""
    def to_name(raw: Any) -> str:
        if not text(raw).strip():
            raise ValueError("expected a name, not an empty string; leave it out to use "
                             "AWS's own chain")
        if regex is not None and not regex.fullmatch(raw):
            raise ValueError(message)
        return raw
    return to_name


def optional(inner: Converter) -> Converter:
    """None stays None (a default that is decided later, e.g. the poll interval per backend)."""
    def to_optional(raw: Any) -> Any:
        return None if raw is None else inner(raw)
    return to_optional
