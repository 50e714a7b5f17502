"""The SQLite connection, numbered migrations and transactions behind `Store`.

One writer connection, serialised by an asyncio lock so a transaction is never interleaved with
another coroutine's statements, and one reader connection for the API: in WAL mode readers see
the last committed state and never wait behind the loops' write transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from batchd.errors import Unavailable
from batchd.store.db import Database

T = TypeVar("T")

_UNAVAILABLE_MARKERS = ("disk is full", "readonly database", "disk i/o error",
                        "unable to open database")


def _unavailable(exc: sqlite3.Error, path: Path) -> Unavailable | None:
    text = str(exc).lower()
    if any(marker in text for marker in _UNAVAILABLE_MARKERS):
        return Unavailable(
            f"batchd cannot write its state database {path} ({exc}); it refuses new work until "
            "an administrator frees disk space or makes the state directory writable. Nothing "
            "already recorded was lost.")
    return None


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("batchd.store").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class StoreBase:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Database | None = None
        self._reader: Database | None = None
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> StoreBase:
        store = cls(path)
        await store._connect()
        return store

    async def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await Database.connect(self.path, "writer", isolation_level=None)
            await self._pragmas(self._writer)
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._migrate()
            self._reader = await Database.connect(self.path, "reader", isolation_level=None)
            await self._pragmas(self._reader)
        except BaseException as exc:
            await self.close()          # no database thread outlives a store that failed to open
            if isinstance(exc, sqlite3.Error) and (err := _unavailable(exc, self.path)):
                raise err from exc
            raise

    @staticmethod
    async def _pragmas(conn: Database) -> None:
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=10000")
        # NORMAL is durable across process crashes in WAL mode (only an OS crash or power cut
        # can lose the last transactions), and it avoids an fsync per commit.
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA cache_size=-65536")
        await conn.execute("PRAGMA temp_store=MEMORY")

    async def _migrate(self) -> None:
        conn = self._writer
        assert conn is not None
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL)")
        rows = await conn.fetchall("SELECT version FROM schema_migrations")
        applied = {row[0] for row in rows}
        for version, name, sql in _migrations():
            if version in applied:
                continue
            # executescript commits first; wrap the file and its bookkeeping in one transaction
            # so a crash mid-migration leaves the schema at the previous version.
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations VALUES "
                f"({version}, '{name}', {time.time()});\nCOMMIT;")

    async def close(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        try:
            if reader is not None:
                await reader.close()
        finally:
            if writer is not None:
                await writer.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception (including cancellation)."""
        async with self._lock:
            conn = self._writer
            assert conn is not None, "store is closed"
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                if err := _unavailable(exc, self.path):
                    raise err from exc
                raise
            except BaseException:
                # Cancelled while the BEGIN was on its way: it still runs in the database
                # thread, and left open it would make every later BEGIN fail.
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                raise
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and (err := _unavailable(exc, self.path)):
                    raise err from exc
                raise

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[WriteBatch]:
        """A write transaction whose statements travel to the database thread together: BEGIN,
        everything deferred, and COMMIT in one round trip, plus one per `fetch` in between.
        For the loops' hot transactions; `transaction()` sends each statement on its own.
        Rolled back on any exception. Cancelled while its last trip is under way, the whole
        batch (COMMIT included) may still be applied: it is atomic either way."""
        async with self._lock:
            conn = self._writer
            assert conn is not None, "store is closed"
            batch = WriteBatch(conn)
            try:
                yield batch
                batch.defer("COMMIT")
                await batch.flush()
            except BaseException as exc:
                if batch.sent:
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and (err := _unavailable(exc, self.path)):
                    raise err from exc
                raise

    async def read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        conn = self._reader
        assert conn is not None, "store is closed"
        return await conn.fetchall(sql, params)     # one round trip to the database thread

    async def read_with(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` in the reader's thread, inside one read transaction: the
        queries of a loop's cycle for one round trip (~150 µs of CPU each, see WriteBatch),
        and all of them see the same snapshot."""
        conn = self._reader
        assert conn is not None, "store is closed"
        return await conn.run(_in_read_transaction, fn, args)

    async def read_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        rows = await self.read(sql, params)
        return rows[0] if rows else None

    async def writable_check(self) -> None:
        """Raise Unavailable if the database cannot take a write (used before accepting work)."""
        async with self.transaction() as conn:
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _probe (x)")


def _in_read_transaction(conn: sqlite3.Connection, fn: Callable[..., T],
                         args: tuple[Any, ...]) -> T:
    conn.execute("BEGIN")
    try:
        return fn(conn, *args)
    finally:
        conn.execute("COMMIT")          # reads only: nothing to undo


def _run_statements(conn: sqlite3.Connection, statements: list[tuple[str, Any, bool]],
                    query: tuple[str, tuple[Any, ...]] | None) -> list[sqlite3.Row] | None:
    """In the database thread: the deferred statements in order, then the query, if any."""
    for sql, params, many in statements:
        if many:
            conn.executemany(sql, params)
        else:
            conn.execute(sql, params)
    return conn.execute(*query).fetchall() if query is not None else None


class WriteBatch:
    """The statements of one `StoreBase.batch()` transaction. Each call on a `Database` is a
    round trip to its thread costing ~150 µs of CPU (a queue, a thread wake-up and the event
    loop's self-pipe), more than most statements: the pipeline benchmark made ~50,000 of
    them per 6,000 jobs. `defer`red statements wait for the next `fetch` or the COMMIT."""

    def __init__(self, conn: Database) -> None:
        self._conn = conn
        self._pending: list[tuple[str, Any, bool]] = [("BEGIN IMMEDIATE", (), False)]
        self.sent = False           # BEGIN has gone to the database thread

    def defer(self, sql: str, params: Iterable[Any] = ()) -> None:
        self._pending.append((sql, tuple(params), False))

    def defer_many(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        rows = list(rows)
        if rows:
            self._pending.append((sql, rows, True))

    async def fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """The deferred statements, then this query's rows: one round trip."""
        rows = await self.flush((sql, tuple(params)))
        return rows or []

    async def flush(self, query: tuple[str, tuple[Any, ...]] | None = None
                    ) -> list[sqlite3.Row] | None:
        statements, self._pending = self._pending, []
        if not statements and query is None:
            return None
        self.sent = True
        return await self._conn.run(_run_statements, statements, query)
