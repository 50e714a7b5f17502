"""A plain `sqlite3` connection on its own thread, awaited from the event loop.

SQLite calls block, so each connection lives on a single-thread executor: every call on it
runs there, in the order it was made, and the connection is opened in that thread too (so
sqlite3's `check_same_thread` holds). The store owns these threads instead of going through an
async wrapper library, because its hot path needs to run a whole function of the connection
(a batch of statements, or a loop's reads in one transaction) in one round trip, which such a
library offers only through its private methods.

A round trip costs ~150 µs of CPU (the executor's queue, a thread wake-up and the event loop's
self-pipe); `trips` counts them so tests can hold the hot paths to one each.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Done:
    """What a write statement reports (its cursor is closed in the database thread)."""
    rowcount: int
    lastrowid: int | None


class Database:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batchd-db-{name}")
        self._conn: sqlite3.Connection | None = None
        self.trips = 0              # round trips to the database thread so far

    @classmethod
    async def connect(cls, path: Path, name: str, **kwargs: Any) -> Database:
        """`sqlite3.connect(path, **kwargs)` in a new thread named batchd-db-<name>, with rows
        as `sqlite3.Row`. The thread is stopped again if the connection cannot be opened."""
        db = cls(name)
        try:
            db._conn = await db._submit(_open, path, kwargs)
        except BaseException:
            db._executor.shutdown(wait=True)        # idle by now: the join is immediate
            raise
        return db

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` in the database thread, in one round trip. Cancelling the
        caller does not stop it: a call handed to the thread runs to its end, queued or not,
        so the order of calls on the connection is never broken."""
        conn = self._conn
        if conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        self.trips += 1
        return await self._submit(fn, conn, *args)

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> Done:
        return await self.run(_execute, sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> Done:
        return await self.run(_executemany, sql, list(rows))

    async def executescript(self, script: str) -> None:
        await self.run(_executescript, script)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return await self.run(_fetchall, sql, tuple(params))

    async def close(self) -> None:
        """Close the connection in its thread (after the calls queued before), then stop the
        thread, so a closed store leaves no thread behind."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await self._submit(_close, conn)
        finally:
            # The queue is empty by now, so joining the idle thread does not block the loop.
            self._executor.shutdown(wait=True)

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        # Not `loop.run_in_executor`: chaining its two futures cost ~40 µs of CPU per empty
        # call in a tight loop, against ~30 µs for one future answered with
        # `call_soon_threadsafe` (aiosqlite's private `_execute`: ~26 µs). And the
        # asyncio future is not linked to the executor's, so a cancelled awaiter cannot
        # withdraw a call still queued: what the store sent is applied in the order sent.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._executor.submit(_answer, loop, future, fn, args)
        return future


def _answer(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
            fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """In the database thread: run the call, then hand its outcome to the event loop."""
    try:
        result, error = fn(*args), None
    except BaseException as exc:            # delivered to the awaiter, never lost here
        result, error = None, exc
    loop.call_soon_threadsafe(_deliver, future, result, error)


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():                  # the awaiter gave up; the call ran all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _open(path: Path, kwargs: dict[str, Any]) -> sqlite3.Connection:
    conn: sqlite3.Connection = sqlite3.connect(path, **kwargs)
    conn.row_factory = sqlite3.Row
    return conn


def _execute(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Done:
    cur = conn.execute(sql, params)
    try:
        return Done(cur.rowcount, cur.lastrowid)
    finally:
        cur.close()


def _executemany(conn: sqlite3.Connection, sql: str, rows: list[Any]) -> Done:
    cur = conn.executemany(sql, rows)
    try:
        return Done(cur.rowcount, cur.lastrowid)
    finally:
        cur.close()


def _executescript(conn: sqlite3.Connection, script: str) -> None:
    conn.executescript(script).close()


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
    cur = conn.execute(sql, params)
    try:
        return cur.fetchall()
    finally:
        cur.close()


def _close(conn: sqlite3.Connection) -> None:
    conn.close()
