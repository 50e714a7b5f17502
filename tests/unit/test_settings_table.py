"""The field table in batchd/settings.py is the one list of settings: every attribute of
Settings (and of the retry defaults) has exactly one row, and the README's configuration table
and systemd/batchd.toml.example name every key a row says the file holds, the example with the
row's reload class."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from batchd.config import reload
from batchd.config.converters import LIVE, RESTART
from batchd.config.settings import FIELDS, Settings
from batchd.failures import RetryPolicy
from tests.daemon_harness import REPO

TOML_ROWS = [f for f in FIELDS if f.toml is not None]


def test_every_field_has_exactly_one_row():
    counts = Counter(f.name for f in FIELDS)
    assert [name for name, n in counts.items() if n > 1] == []
    # `ignored` is not a setting: the removed ones an old config still gives (settings.REMOVED).
    wanted = {f.name for f in dataclasses.fields(Settings) if f.name not in ("retry", "ignored")}
    wanted |= {f"retry.{f.name}" for f in dataclasses.fields(RetryPolicy)}
    assert set(counts) == wanted
    assert {f.reload for f in FIELDS} == {LIVE, RESTART}
    assert set(reload.RESTART_ONLY) == {f.name for f in FIELDS if f.reload == RESTART}


def _readme_keys() -> set[str]:
    """TOML keys in the first column of the README's configuration table, each as "[section]
    key" or "key": a bare key after a sectioned one in the same cell is in that section
    ("`[retry] max_attempts`, `spot_attempts`")."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| setting (TOML) |"))
    keys: set[str] = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        section = None
        for token in re.findall(r"`([^`]+)`", line.split("|")[1]):
            found = re.fullmatch(r"(\[[^\]]+\]) (\S+)", token)
            if found:
                section = found.group(1)
                keys.add(token)
            else:
                keys.add(f"{section} {token}" if section else token)
    return keys


def test_the_readme_table_names_every_toml_key():
    named = _readme_keys()
    assert [f.toml for f in TOML_ROWS if f.toml not in named] == []


def _example_keys() -> dict[str, str]:
    """"[section] key" / "key" -> the reload class the comments above it give ([reload] or
    [restart], the last one seen)."""
    found: dict[str, str] = {}
    section, marker = None, None
    for line in (REPO / "systemd" / "batchd.toml.example").read_text().splitlines():
        if line.startswith("# "):   # prose; settings are commented out as "#key = value"
            for tag in re.findall(r"\[(reload|restart)\]", line):
                marker = {"reload": LIVE, "restart": RESTART}[tag]
            continue
        setting = line.removeprefix("#")
        header = re.fullmatch(r"\[([^\]]+)\]", setting.strip())
        if header:
            section = "[queues.\"NAME\"]" if header.group(1).startswith("queues.") else \
                f"[{header.group(1)}]"
        elif re.match(r"[A-Za-z_]+ = ", setting):
            key = setting.split(" = ", 1)[0]
            found[f"{section} {key}" if section else key] = marker
    return found


def test_the_toml_example_names_every_key_with_its_reload_class():
    example = _example_keys()
    assert [f.toml for f in TOML_ROWS if f.toml not in example] == []
    assert {f.toml: example[f.toml] for f in TOML_ROWS} == {f.toml: f.reload for f in TOML_ROWS}
