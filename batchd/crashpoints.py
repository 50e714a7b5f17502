"""TEST-ONLY crash points: die abruptly at the n-th pass of a named point.

`BATCHD_CRASH_AT=<point>:<n>` makes the daemon call `os._exit(137)` (no cleanup, no flush,
no rollback: what a SIGKILL or a power cut leaves) the n-th time it passes `<point>`.
`BATCHD_CRASH_LOG=<file>` appends one line `<point> <n>` per pass, so a test learns which
points a scenario reaches and how often. Both are read once, when the daemon builds its store
and backend; when neither is set nothing is wrapped at all (zero overhead in production).

The points are enumerated from the classes themselves, so a new store transaction or a new
backend call gets its crash points without anyone typing them into a test:

  store.<method>:before / :after     every public coroutine method of `Store`
  backend.<method>:before / :after   every public coroutine method of `Backend`
                                     (submit, describe, find_by_name, cancel = Cancel/
                                     TerminateJob, ...)
  outputs.<method>:before / :after   every public coroutine method of `OutputStore`
                                     (exists_many = S3 HEAD/LIST output checks)

`python -m batchd.crashpoints --list` prints them.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Any

from batchd.backends.base import Backend, OutputStore
from batchd.store import Store

EXIT_CODE = 137
# Lifecycle methods, not transactions or calls whose interruption the loops must survive.
_SKIP = frozenset({"open", "close", "start", "run"})
_CLASSES: tuple[tuple[str, type], ...] = (("store", Store), ("backend", Backend),
                                          ("outputs", OutputStore))


def methods(cls: type) -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction)
                  if not name.startswith("_") and name not in _SKIP)


def all_points() -> list[str]:
    return [f"{prefix}.{name}:{when}" for prefix, cls in _CLASSES for name in methods(cls)
            for when in ("before", "after")]


class CrashSwitch:
    def __init__(self, at: str | None, log_path: str | None) -> None:
        self.point, self.n = None, 0
        if at:
            point, _, n = at.rpartition(":")
            if point not in all_points() or not n.isdigit() or int(n) < 1:
                raise SystemExit(f"BATCHD_CRASH_AT={at!r}: expected <point>:<n>, n >= 1, "
                                 "point one of `python -m batchd.crashpoints --list`")
            self.point, self.n = point, int(n)
        self.counts: dict[str, int] = {}
        self.fd = (os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                   if log_path else None)

    def passed(self, point: str) -> None:
        count = self.counts.get(point, 0) + 1
        self.counts[point] = count
        if self.fd is not None:
            os.write(self.fd, f"{point} {count}\n".encode())
        if point == self.point and count == self.n:
            os.write(2, f"batchd: crash point {point} pass {count}: exiting {EXIT_CODE}\n"
                     .encode())
            os._exit(EXIT_CODE)

    def wrap(self, prefix: str, obj: Any, cls: type) -> Any:
        for name in methods(cls):
            original = getattr(obj, name)
            setattr(obj, name, self._wrapped(f"{prefix}.{name}", original))
        return obj

    def _wrapped(self, point: str, fn: Any) -> Any:
        before, after = f"{point}:before", f"{point}:after"

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.passed(before)
            result = await fn(*args, **kwargs)
            self.passed(after)   # only on success: a raised call has no "after" to crash at
            return result

        return wrapper


def from_env(environ: dict[str, str] | None = None) -> CrashSwitch | None:
    env = os.environ if environ is None else environ
    at, log_path = env.get("BATCHD_CRASH_AT"), env.get("BATCHD_CRASH_LOG")
    if not at and not log_path:
        return None
    return CrashSwitch(at, log_path)


def install(store: Store, backend: Backend) -> None:
    """Wrap the daemon's store and backend in place when the test-only switch is set."""
    switch = from_env()
    if switch is None:
        return
    switch.wrap("store", store, Store)
    switch.wrap("backend", backend, Backend)
    outputs = getattr(backend, "outputs", None)
    if outputs is not None:
        switch.wrap("outputs", outputs, OutputStore)


if __name__ == "__main__":  # pragma: no cover - a listing for people and make targets
    if sys.argv[1:] != ["--list"]:
        raise SystemExit("usage: python -m batchd.crashpoints --list")
    print("\n".join(all_points()))
