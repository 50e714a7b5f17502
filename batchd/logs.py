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

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(level: str = "info", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer = (structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
                else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**context):
    return structlog.get_logger("batchd").bind(**context)
