"""The embedded SQLite store passes the GraphStore contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jacscale_ext.sqlite_store import SqliteGraphStore
from tests.store_contract import *  # noqa: F403 - the contract's tests run here
from tests.store_contract import StoreFactory


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[SqliteGraphStore] = []

    def open_store() -> SqliteGraphStore:
        store = SqliteGraphStore(tmp_path / "contract.db")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def test_database_file_is_private(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "private.db")
    assert (tmp_path / "private.db").stat().st_mode & 0o077 == 0
    store.close()
