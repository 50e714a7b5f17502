"""structlog set-up: JSON lines for journald/files, a readable console on a terminal.

Event names are part of batchd's interface (operators grep for them, tests assert on them):
`daemon_started`, `daemon_stopping`, `job_submitted`, `job_state_changed`, `job_completed`,
`job_failed`, `job_skipped`, `loop_crashed`, `submit_reconciled`, `job_lost`, ...
Always log with bound context (project, workflow, sample, step, attempt, job_id) rather than
formatting values into the event name.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
# The threshold lives here, not in the bound-logger class: loggers are bound once at import,
# and a SIGHUP must be able to change the level of every one of them (see set_level).
_threshold = logging.INFO
_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "msg": logging.INFO,
                  "warning": logging.WARNING, "warn": logging.WARNING,
                  "error": logging.ERROR, "exception": logging.ERROR,
                  "critical": logging.CRITICAL, "fatal": logging.CRITICAL}


def set_level(level: str) -> None:
    """Change the level of every logger at runtime (configuration reload)."""
    global _threshold
    _threshold = _LEVELS.get(level, logging.INFO)


def _filter_by_level(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    if _METHOD_LEVELS.get(method_name, logging.INFO) < _threshold:
        raise structlog.DropEvent
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto",
                      stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = (structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
                else structlog.processors.JSONRenderer())
    set_level(level)
    structlog.configure(
        processors=[
            _filter_by_level,  # first: a dropped debug line costs one dict lookup
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("batchd").bind(**context)
