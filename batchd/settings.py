"""The one frozen settings object, built from defaults < TOML file < BATCHD_* env < flags.

Every loop, the API and the backends receive this object explicitly; nothing reads the
environment or the config file anywhere else. A bad value in any layer is an InvalidInput
naming the layer (file, variable or flag) and the key, so a typo in /etc/batchd/batchd.toml
stops the daemon at start-up with a readable message instead of a surprise hours later.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import InvalidInput
from .failures import RetryPolicy

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


# TOML layout -> flat field names. Sections keep the file readable for admins.
_TOML_SECTIONS = {
    "aws": {"region": "aws_region", "profile": "aws_profile", "rate_limit": "rate_limit",
            "direct_calls": "aws_direct_calls"},    # removed: see REMOVED
    "local": {"vcpus": "local_vcpus", "memory": "local_memory"},
    "submit": {"max_in_flight": "max_in_flight", "concurrency": "submit_concurrency",
               "order": "submit_order"},
    "poll": {"interval": "poll_interval", "concurrency": "describe_concurrency"},
    "log": {"format": "log_format", "level": "log_level"},
    "stuck": {"factor": "stuck_factor", "cancel_unplaceable": "cancel_unplaceable",
              "interval": "stuck_interval"},
    "access": {"admin_group": "admin_group"},
    "limits": {"metadata_bytes": "limit_metadata_bytes",
               "definition_bytes": "limit_definition_bytes",
               "jobdef_bytes": "limit_jobdef_bytes", "body_bytes": "limit_body_bytes"},
}
_RETRY_FIELDS = {f.name: f for f in fields(RetryDefaults)}
_FIELDS = {f.name: f for f in fields(Settings)
           if f.name not in ("retry", "queue_caps", "config_file", "ignored")}
# Settings that no longer do anything, still accepted (any value) from the TOML file and the
# environment for old configs: name -> why it is gone.
REMOVED = {"aws_direct_calls": "every AWS call now goes through aiobotocore's client"}
_CHOICES = {"backend": ("local", "aws"), "log_format": ("auto", "json", "console"),
            "submit_order": ("breadth", "depth"),
            "log_level": ("debug", "info", "warning", "error")}


# (lowest, highest) accepted; a zero poll interval or rate would spin or never call AWS,
# and absurd values (a 30-year poll, 10000 describers) are typos, not intentions.
_RANGES: dict[str, tuple[float, float]] = {
    "poll_interval": (0.01, 86400.0), "check_retry_interval": (0.01, 86400.0),
    "rate_limit": (0.1, 10000.0), "max_in_flight": (1, 10_000_000),
    "submit_concurrency": (1, 1024), "describe_concurrency": (1, 256),
    "local_vcpus": (0.01, 100_000.0), "local_memory": (1, 1 << 40),
    "stuck_factor": (1.0, 1e6), "stuck_interval": (0.01, 86400.0),
    "max_request_bytes": (1024, 1 << 40), "shutdown_timeout": (0.0, 3600.0),
}


def _plain_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


# A group name as /etc/group, LDAP or SSSD may spell it ("batchd-admin", "lab admins@ad"):
# no ':' or ',' (the group file's separators), no control characters, no blanks at the ends;
# "" = no admin group.
_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "admin_group": (re.compile(r"(?:[^\s:,\x00-\x1f\x7f](?:[^:,\x00-\x1f\x7f]{0,254}"
                               r"[^\s:,\x00-\x1f\x7f])?)?"),
                    'expected a group name (no ":", "," or blanks at either end, at most 256 '
                    'characters) or "" for none'),
}


def _check_range(name: str, number: float) -> None:
    low, high = _RANGES.get(name, (0, math.inf))
    if not low <= number <= high:
        raise ValueError(f"must be between {_plain_number(low)} and {_plain_number(high)}")


# us-east-1, eu-central-2, us-gov-west-1, cn-northwest-1, us-isob-east-1, ...
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def _unknown(path: Path, label: str, key: str, known) -> InvalidInput:
    near = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(sorted(known))}"
    what = f"key {label}{key}" if label else f"setting {key!r}"
    return InvalidInput(f"{path}: unknown {what}; {hint}")


def _coerce(name: str, value: Any, where: str) -> Any:
    """Convert a raw value (str from env/flags, or a TOML value) to the field's type."""
    target = _FIELDS[name].type if name in _FIELDS else _RETRY_FIELDS[name].type
    target = str(target)
    try:
        if value is None:
            return None
        if "Path" in target:
            if not str(value).strip():   # "" would mean the current directory
                raise ValueError("expected a path, not an empty string")
            return Path(os.path.expanduser(str(value)))
        if "bool" in target:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if "float" in target:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError("expected a number")
            try:
                number = float(value)
            except ValueError:
                raise ValueError("expected a number") from None
            except OverflowError:   # a TOML integer of hundreds of digits
                raise ValueError("must be a finite number") from None
            if not math.isfinite(number):
                raise ValueError("must be a finite number")
            _check_range(name, number)
            return number
        if "int" in target:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected a whole number")
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError("expected a whole number")
            try:
                number = int(value)
            except ValueError:
                raise ValueError("expected a whole number") from None
            _check_range(name, number)
            return number
        if name in _PATTERNS and not isinstance(value, str):
            raise ValueError(_PATTERNS[name][1])
        if not isinstance(value, str):
            raise ValueError("expected a string")
        text = value
        if name in _PATTERNS and not _PATTERNS[name][0].fullmatch(text):
            raise ValueError(_PATTERNS[name][1])
        if name in _CHOICES and text not in _CHOICES[name]:
            raise ValueError(f"expected one of {', '.join(_CHOICES[name])}")
        if name in ("aws_region", "aws_profile") and not text.strip():
            raise ValueError("expected a name, not an empty string; leave it out to use "
                             "AWS's own chain")
        if name == "aws_region" and not _REGION.fullmatch(text):
            raise ValueError("not an AWS region name such as us-east-1 or eu-west-2")
        return text
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{where}: invalid value {value!r} for {name}: {exc}") from None


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
                if sub not in _TOML_SECTIONS[key]:
                    raise _unknown(path, f"[{key}] ", sub, _TOML_SECTIONS[key])
                name = _TOML_SECTIONS[key][sub]
                if name in REMOVED:
                    flat.setdefault("ignored", []).append((name, f"{path}: [{key}] {sub}"))
                    continue
                flat[name] = _coerce(name, subvalue, f"{path}: [{key}] {sub}")
        elif key == "retry" and isinstance(value, dict):
            for sub, subvalue in value.items():
                if sub not in _RETRY_FIELDS:
                    raise _unknown(path, "[retry] ", sub, _RETRY_FIELDS)
                retry[sub] = _coerce(sub, subvalue, f"{path}: [retry] {sub}")
        elif key == "queues" and isinstance(value, dict):
            for queue, table in value.items():
                if not isinstance(table, dict) or set(table) - {"max_in_flight"}:
                    raise InvalidInput(f'{path}: [queues."{queue}"] accepts only max_in_flight')
                if "max_in_flight" in table:
                    caps[queue] = _coerce("max_in_flight", table["max_in_flight"],
                                          f'{path}: [queues."{queue}"] max_in_flight')
        elif key in _FIELDS:
            flat[key] = _coerce(key, value, where)
        elif key in REMOVED:
            flat.setdefault("ignored", []).append((key, f"{path}: {key}"))
        else:
            raise _unknown(path, "", key, [*_FIELDS, *_TOML_SECTIONS, "retry", "queues"])
    return flat, caps, retry


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in _FIELDS:
        var = f"BATCHD_{name.upper()}"
        if var in env and env[var] != "":
            flat[name] = _coerce(name, env[var], f"environment variable {var}")
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
    config = flags.get("config_file") or env.get("BATCHD_CONFIG") or None
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
        values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    settings = Settings(**values, queue_caps=caps, retry=RetryDefaults(**retry),
                        config_file=config_path, ignored=tuple(ignored))
    return settings


def log_ignored(settings: Settings, log: Any) -> None:
    """One `setting_ignored` warning per removed setting still given (start-up, reload)."""
    for name, where in settings.ignored:
        log.warning("setting_ignored", setting=name, where=where, reason=REMOVED[name],
                    hint="remove it from the configuration; it has no effect")


def reload_settings(current: Settings) -> Settings:
    """Re-read the same layers (SIGHUP); flags given at start-up are kept by the caller."""
    return load_settings({"config_file": current.config_file} if current.config_file else {})


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
