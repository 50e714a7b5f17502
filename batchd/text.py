"""User input in messages and logs, and the lengths names and paths may have.

Pure and dependency-free, so the inputs, the loops, the backends and the core can use it
without importing the API (aiohttp). `clip` (or `shorten`) is the one way user input goes back
into an error message or the log: one value is never quoted beyond MAX_ECHO characters.
"""

from __future__ import annotations

from typing import Any, overload

from batchd.errors import InvalidInput

MAX_NAME = 256       # project, workflow, sample, step, queue... (names are 64; room for a hint)
MAX_PATH = 4096      # a file or directory name the client sends (PATH_MAX on Linux)
MAX_REASON = 1024    # a cancel reason, as stored and sent to AWS
TOO_LARGE_HINT = "split the file, or ask an admin to raise that setting"  # batchctl says it too
MAX_ECHO = 200       # characters of user input ever echoed back or logged


def clip(value: Any, limit: int = MAX_ECHO) -> str:
    """User input, quoted and shortened so an error line stays one readable line."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text)


@overload
def shorten(value: str, limit: int = ...) -> str: ...
@overload
def shorten(value: None, limit: int = ...) -> None: ...
@overload
def shorten(value: str | None, limit: int = ...) -> str | None: ...
def shorten(value: str | None, limit: int = MAX_ECHO) -> str | None:
    """Like clip, for log fields: short values stay exactly as they were."""
    if value is None or len(value) <= limit:
        return value
    return clip(value, limit)


def check_name(field: str, value: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_NAME:
        raise InvalidInput(f"{field} is {len(value):,} characters long; names are at most "
                           f"{MAX_NAME} characters", field=field)


def check_path(field: str, value: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_PATH:
        raise InvalidInput(f"{field} is {len(value):,} characters long; paths are at most "
                           f"{MAX_PATH:,} characters", field=field)
