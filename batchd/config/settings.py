"""The one frozen settings object, built from defaults < TOML file < BATCHD_* env < flags.

Every loop, the API and the backends receive this object explicitly; nothing reads the
environment or the config file anywhere else. A bad value in any layer is an InvalidInput
naming the layer (file, variable or flag) and the key, so a typo in /etc/batchd/batchd.toml
stops the daemon at start-up with a readable message instead of a surprise hours later.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchd.config import converters as conv
from batchd.config.converters import LIVE, RESTART, Converter, Field, convert
from batchd.errors import InvalidInput
from batchd.failures import MAX_ATTEMPTS, MAX_FACTOR, MAX_MEMORY, MAX_SPOT_ATTEMPTS, RetryPolicy

SYSTEM_CONFIG = Path("/etc/batchd/batchd.toml")
SYSTEM_SOCKET = Path("/run/batchd/batchd.sock")


def default_socket() -> Path:
    """Root (the systemd service) uses /run/batchd; a user gets a private runtime dir."""
    if os.geteuid() == 0:
        return SYSTEM_SOCKET
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "batchd" / "batchd.sock"
    return Path(f"/tmp/batchd-{os.getuid()}") / "batchd.sock"


def default_state_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/batchd")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "batchd"


def _total_memory_mib() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):  # pragma: no cover - exotic platforms
        return 4096


# The daemon-wide retry defaults are the same shape as a step's policy (failures.py).
RetryDefaults = RetryPolicy


@dataclass(frozen=True)
class Settings:
    socket: Path = field(default_factory=default_socket)
    state_dir: Path = field(default_factory=default_state_dir)
    backend: str = "local"
    # Seconds between status polls of one active job; None = 30 on aws, 1 on local.
    poll_interval: float | None = None
    # Seconds between output checks that could not be answered (S3 errors) for one job.
    check_retry_interval: float = 30.0
    log_format: str = "auto"          # auto | json | console
    log_level: str = "info"
    # Account-wide ceiling for all AWS Batch API calls per second (AWS allows ~50 in total).
    rate_limit: float = 40.0
    # Jobs in flight (submitted, not finished) per job queue unless the queue has its own cap.
    max_in_flight: int = 1000
    queue_caps: Mapping[str, int] = field(default_factory=dict)
    # Which queued jobs go first: "breadth" = earlier steps (the shortest makespan when
    # capacity is the limit: no tail of samples still needing several steps at the end),
    # "depth" = later steps (samples finish early, one by one).
    submit_order: str = "breadth"
    submit_concurrency: int = 16
    describe_concurrency: int = 4
    aws_region: str | None = None
    aws_profile: str | None = None
    local_vcpus: float = float(os.cpu_count() or 1)
    local_memory: int = field(default_factory=_total_memory_mib)
    retry: RetryDefaults = field(default_factory=RetryDefaults)
    # Cancel jobs RUNNABLE that no compute environment of their queue can ever place.
    cancel_unplaceable: bool = False
    # A job RUNNABLE this many times longer than the median of its queue's peers is flagged.
    stuck_factor: float = 5.0
    stuck_interval: float = 60.0      # seconds between stuck-job checks
    # [access]: this group, root and the daemon's user may act on every project, stop the
    # daemon and register job definitions; "" = root and the daemon's user only.
    admin_group: str = "batchd-admin"
    max_request_bytes: int = 512 * 1024 * 1024
    # [limits]: per-route body caps (bytes), so one request cannot stall the daemon for others
    limit_metadata_bytes: int = 64 * 1024 * 1024
    limit_definition_bytes: int = 1024 * 1024
    limit_jobdef_bytes: int = 256 * 1024
    limit_body_bytes: int = 64 * 1024
    shutdown_timeout: float = 20.0
    config_file: Path | None = None
    # Removed settings found in the file or the environment, as (name, where given): accepted
    # so that an old config still starts, named in a `setting_ignored` warning.
    ignored: tuple[tuple[str, str], ...] = ()

    @property
    def database(self) -> Path:
        return self.state_dir / "batchd.sqlite3"

    @property
    def effective_poll_interval(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return 30.0 if self.backend == "aws" else 1.0

    def cap_for(self, queue: str) -> int:
        return int(self.queue_caps.get(queue, self.max_in_flight))


# us-east-1, eu-central-2, us-gov-west-1, cn-northwest-1, us-isob-east-1, ...
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")

# A group name as /etc/group, LDAP or SSSD may spell it ("batchd-admin", "lab admins@ad"):
# no ':' or ',' (the group file's separators), no control characters, no blanks at the ends;
# "" = no admin group.
_GROUP = re.compile(r"(?:[^\s:,\x00-\x1f\x7f](?:[^:,\x00-\x1f\x7f]{0,254}"
                    r"[^\s:,\x00-\x1f\x7f])?)?")

DAY = 86400.0


def _flat(name: str, convert: Converter, toml: str | None = None,
          reload: str = LIVE) -> Field:
    """A setting of its own: top-level key `name` (every one, the older spelling for those now
    in a section) or `toml`, variable BATCHD_<NAME>, flag --<name>."""
    return Field(name, convert, toml or name, f"BATCHD_{name.upper()}", reload)


def _retry(key: str, convert: Converter) -> Field:
    return Field(f"retry.{key}", convert, f"[retry] {key}", None, LIVE)


# Every setting, once: its converter (with the range, choices or pattern), where the file holds
# it, its variable and whether a reload applies it. The TOML sections, the variables, the flags
# the daemon accepts and reload.RESTART_ONLY are derived from this; tests/unit/
# test_settings_table.py checks it against Settings, the README table and batchd.toml.example.
# Ranges: a zero poll interval or rate would spin or never call AWS, and absurd values (a
# 30-year poll, 10000 describers, 1000 attempts) are typos, not intentions.
FIELDS: tuple[Field, ...] = (
    _flat("socket", conv.path, reload=RESTART),
    _flat("state_dir", conv.path, reload=RESTART),
    _flat("backend", conv.choice("local", "aws"), reload=RESTART),
    _flat("poll_interval", conv.optional(conv.number(0.01, DAY)), "[poll] interval"),
    _flat("check_retry_interval", conv.number(0.01, DAY)),
    _flat("log_format", conv.choice("auto", "json", "console"), "[log] format", RESTART),
    _flat("log_level", conv.choice("debug", "info", "warning", "error"), "[log] level"),
    _flat("rate_limit", conv.number(0.1, 10000.0), "[aws] rate_limit"),
    _flat("max_in_flight", conv.whole(1, 10_000_000), "[submit] max_in_flight"),
    Field("queue_caps", conv.whole(1, 10_000_000), '[queues."NAME"] max_in_flight', None),
    _flat("submit_order", conv.choice("breadth", "depth"), "[submit] order"),
    _flat("submit_concurrency", conv.whole(1, 1024), "[submit] concurrency", RESTART),
    _flat("describe_concurrency", conv.whole(1, 256), "[poll] concurrency", RESTART),
    _flat("aws_region", conv.optional(conv.aws_name(
        _REGION, "not an AWS region name such as us-east-1 or eu-west-2")), "[aws] region",
        RESTART),
    _flat("aws_profile", conv.optional(conv.aws_name()), "[aws] profile", RESTART),
    _flat("local_vcpus", conv.number(0.01, 100_000.0), "[local] vcpus", RESTART),
    _flat("local_memory", conv.whole(1, 1 << 40), "[local] memory", RESTART),
    # The same bounds as a step's "retry" in a workflow definition (definition_parser.py).
    _retry("max_attempts", conv.whole(1, MAX_ATTEMPTS)),
    _retry("spot_attempts", conv.whole(1, MAX_SPOT_ATTEMPTS)),
    _retry("memory_factor", conv.number(1.0, MAX_FACTOR)),     # < 1 would shrink after OOM
    _retry("max_memory", conv.whole(1, MAX_MEMORY)),
    _retry("timeout_factor", conv.number(1.0, MAX_FACTOR)),
    _flat("cancel_unplaceable", conv.boolean, "[stuck] cancel_unplaceable"),
    _flat("stuck_factor", conv.number(1.0, 1e6), "[stuck] factor"),
    _flat("stuck_interval", conv.number(0.01, DAY), "[stuck] interval"),
    _flat("admin_group", conv.pattern(
        _GROUP, 'expected a group name (no ":", "," or blanks at either end, at most 256 '
                'characters) or "" for none'), "[access] admin_group"),
    _flat("max_request_bytes", conv.whole(1024, 1 << 40), reload=RESTART),
    _flat("limit_metadata_bytes", conv.whole(0), "[limits] metadata_bytes"),
    _flat("limit_definition_bytes", conv.whole(0), "[limits] definition_bytes"),
    _flat("limit_jobdef_bytes", conv.whole(0), "[limits] jobdef_bytes"),
    _flat("limit_body_bytes", conv.whole(0), "[limits] body_bytes"),
    _flat("shutdown_timeout", conv.number(0.0, 3600.0), reload=RESTART),
    # Chooses the file the other rows are read from: load_settings takes it from --config or
    # this variable itself, as given (a missing file is then named as the user wrote it).
    Field("config_file", conv.optional(conv.path), None, "BATCHD_CONFIG", RESTART),
)

# Settings with a key and a variable of their own (also the flags load_settings takes), the
# [retry] keys, and [section] key -> setting.
_FIELDS = {f.name: f for f in FIELDS if f.toml and f.env}
_RETRY_FIELDS = {f.name.removeprefix("retry."): f for f in FIELDS if f.name.startswith("retry.")}


def _sections() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    for row in _FIELDS.values():
        section, key = row.section_key or (None, "")
        if section is not None:
            sections.setdefault(section, {})[key] = row.name
    return sections


_TOML_SECTIONS = _sections()
_CAPS = next(f for f in FIELDS if f.name == "queue_caps")
_CONFIG = next(f for f in FIELDS if f.name == "config_file")
RESTART_ONLY = tuple(f.name for f in FIELDS if f.reload == RESTART)

# Settings that no longer do anything, still accepted (any value) from the TOML file and the
# environment so that an old config starts: name -> (its [section] key, why it is gone).
REMOVED = {"aws_direct_calls": (("aws", "direct_calls"),
                                "every AWS call now goes through aiobotocore's client")}
_REMOVED_KEYS = {key: name for name, (key, _) in REMOVED.items()}


def _unknown(path: Path, label: str, key: str, known) -> InvalidInput:
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(known))}"
    what = f"key {label}{key}" if label else f"setting {key!r}"
    return InvalidInput(f"{path}: unknown {what}; {hint}")


def _from_toml(path: Path) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"config file {path} does not exist") from None
    except PermissionError:
        raise InvalidInput(f"config file {path} is not readable by this user") from None
    except OSError as exc:   # a directory, a FIFO gone wrong, an I/O error
        raise InvalidInput(f"config file {path} cannot be read ({exc.strerror or exc}); "
                           "point --config or BATCHD_CONFIG at a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"config file {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"config file {path} is not UTF-8 text ({exc.reason} at byte "
                           f"{exc.start}); save it as UTF-8") from None
    except ValueError as exc:   # an integer longer than Python converts (4300 digits)
        raise InvalidInput(f"config file {path}: {exc}; use a number of sensible size") from None
    flat: dict[str, Any] = {}
    caps: dict[str, int] = {}
    retry: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{path}: {key}"
        if key in _TOML_SECTIONS and isinstance(value, dict):
            for sub, subvalue in value.items():
                if (key, sub) in _REMOVED_KEYS:
                    flat.setdefault("ignored", []).append(
                        (_REMOVED_KEYS[key, sub], f"{path}: [{key}] {sub}"))
                    continue
                if sub not in _TOML_SECTIONS[key]:
                    raise _unknown(path, f"[{key}] ", sub, _TOML_SECTIONS[key])
                name = _TOML_SECTIONS[key][sub]
                flat[name] = convert(_FIELDS[name], subvalue, f"{path}: [{key}] {sub}")
        elif key == "retry" and isinstance(value, dict):
            for sub, subvalue in value.items():
                if sub not in _RETRY_FIELDS:
                    raise _unknown(path, "[retry] ", sub, _RETRY_FIELDS)
                retry[sub] = convert(_RETRY_FIELDS[sub], subvalue, f"{path}: [retry] {sub}")
        elif key == "queues" and isinstance(value, dict):
            for queue, table in value.items():
                if not isinstance(table, dict) or set(table) - {"max_in_flight"}:
                    raise InvalidInput(f'{path}: [queues."{queue}"] accepts only max_in_flight')
                if "max_in_flight" in table:
                    caps[queue] = convert(_CAPS, table["max_in_flight"],
                                          f'{path}: [queues."{queue}"] max_in_flight',
                                          "max_in_flight")
        elif key in _FIELDS:
            flat[key] = convert(_FIELDS[key], value, where)
        elif key in REMOVED:
            flat.setdefault("ignored", []).append((key, f"{path}: {key}"))
        else:
            raise _unknown(path, "", key, [*_FIELDS, *_TOML_SECTIONS, "retry", "queues"])
    return flat, caps, retry


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, row in _FIELDS.items():
        var = row.env
        if var is not None and var in env and env[var] != "":
            flat[name] = convert(row, env[var], f"environment variable {var}")
    ignored = [(name, f"environment variable BATCHD_{name.upper()}") for name in REMOVED
               if f"BATCHD_{name.upper()}" in env]
    if ignored:
        flat["ignored"] = ignored
    return flat


def load_settings(flags: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings. `flags` holds only the flags the user actually gave (None = not given)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    config = flags.get("config_file") or env.get(_CONFIG.env or "") or None
    config_path = Path(config) if config else (SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None)
    values: dict[str, Any] = {}
    caps: dict[str, int] = {}
    retry: dict[str, Any] = {}
    if config_path is not None:
        values, caps, retry = _from_toml(config_path)
    ignored = values.pop("ignored", [])
    values.update(_from_env(env))
    ignored += values.pop("ignored", [])
    for name, value in flags.items():
        if name == "config_file":
            continue
        if name not in _FIELDS:
            raise InvalidInput(f"unknown setting {name!r}")
        values[name] = convert(_FIELDS[name], value, f"--{name.replace('_', '-')}")
    settings = Settings(**values, queue_caps=caps, retry=RetryDefaults(**retry),
                        config_file=config_path, ignored=tuple(ignored))
    return settings


def reload_settings(current: Settings) -> Settings:
    """Re-read the same layers (SIGHUP); flags given at start-up are kept by the caller."""
    return load_settings({"config_file": current.config_file} if current.config_file else {})


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


def log_ignored(settings: Settings, log: Any) -> None:
    """One `setting_ignored` warning per removed setting still given (start-up, reload)."""
    for name, where in settings.ignored:
        log.warning("setting_ignored", setting=name, where=where, reason=REMOVED[name][1],
                    hint="remove it from the configuration; it has no effect")
