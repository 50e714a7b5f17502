"""The store's database threads (batchd/store/db.py) on a real SQLite file: order, cancellation,
closing, and a store that cannot open."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from batchd.errors import Unavailable
from batchd.store import Store
from batchd.store.db import Database


def _db_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("batchd-db-")]


async def _blocked(db: Database) -> tuple[threading.Event, asyncio.Future]:
    """Occupy the database thread until the event is set, so later calls wait in its queue."""
    started, release = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(30)

    holder = asyncio.ensure_future(db.run(hold))
    while not started.is_set():
        await asyncio.sleep(0.001)
    return release, holder


async def _queued(db: Database, trips: int) -> None:
    while db.trips < trips:
        await asyncio.sleep(0)


async def test_each_connection_has_its_own_thread_and_closing_stops_them(tmp_path):
    before = set(_db_threads())
    store = await Store.open(tmp_path / "s.sqlite3")
    names = sorted(t.name for t in set(_db_threads()) - before)
    assert [n.rsplit("_", 1)[0] for n in names] == ["batchd-db-reader", "batchd-db-writer"]
    threads = set(_db_threads()) - before
    await store.close()
    assert not any(t.is_alive() for t in threads)
    await store.close()                 # closing twice is harmless


async def test_a_store_that_cannot_open_says_so_and_leaves_no_thread(tmp_path):
    before = set(_db_threads())
    with pytest.raises(Unavailable, match="cannot write its state database"):
        await Store.open(tmp_path)      # a directory: "unable to open database file"
    assert not any(t.is_alive() for t in set(_db_threads()) - before)


async def test_a_cancelled_call_still_runs_in_order(tmp_path):
    """A call handed to the thread is applied even if its caller is cancelled meanwhile, and
    before the calls made after it (the store's ROLLBACK after a cancelled batch relies on
    this order)."""
    db = await Database.connect(tmp_path / "d.sqlite3", "test", isolation_level=None)
    await db.execute("CREATE TABLE t (x)")
    release, holder = await _blocked(db)
    task = asyncio.ensure_future(db.execute("INSERT INTO t VALUES (1)"))
    await _queued(db, 3)
    task.cancel()
    later = asyncio.ensure_future(db.fetchall("SELECT x FROM t"))
    release.set()
    await holder
    assert [tuple(r) for r in await later] == [(1,)]
    assert task.cancelled()
    await db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        await db.execute("SELECT 1")


async def test_a_batch_cancelled_while_queued_is_atomic_and_the_writer_usable(tmp_path):
    store = await Store.open(tmp_path / "s.sqlite3")
    await store.create_project(name="p", columns=["s", "f"], sample_col="s", file_col="f",
                               metadata_filename="m.csv", samples=[("a", "a.fq", 2, {})])
    release, holder = await _blocked(store._writer)

    async def rename() -> None:
        async with store.batch() as batch:
            batch.defer("UPDATE projects SET name = 'renamed'")

    task = asyncio.ensure_future(rename())
    await _queued(store._writer, store._writer.trips + 1)
    task.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await task
    names = [r["name"] for r in await store.read("SELECT name FROM projects")]
    assert names in (["p"], ["renamed"])          # all or nothing
    async with store.transaction() as conn:
        await conn.execute("UPDATE projects SET name = 'again'")
    assert [r["name"] for r in await store.read("SELECT name FROM projects")] == ["again"]
    await store.close()


async def test_a_transaction_cancelled_at_its_begin_leaves_the_writer_usable(tmp_path):
    store = await Store.open(tmp_path / "s.sqlite3")
    release, holder = await _blocked(store._writer)

    async def write() -> None:
        async with store.transaction() as conn:
            await conn.execute("CREATE TABLE never (x)")

    task = asyncio.ensure_future(write())
    await _queued(store._writer, store._writer.trips + 1)       # BEGIN IMMEDIATE is queued
    task.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.transaction() as conn:
        await conn.execute("CREATE TABLE t (x)")
    assert await store.read("SELECT name FROM sqlite_master WHERE name = 'never'") == []
    await store.close()
