"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from batchd.store import Store


@pytest.fixture
async def store(tmp_path):
    """A real store on a fresh SQLite file."""
    store = await Store.open(tmp_path / "state.sqlite3")
    yield store
    await store.close()
