"""The SQLite job store (scheduler lease + jobs in the embedded database) passes the contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jacscale_ext.scheduler.sqlite_jobs import SqliteJobStore
from jacscale_ext.scheduler.testing import *  # noqa: F403 - the contract's tests run here
from jacscale_ext.scheduler.testing import JobStoreFactory
from jacscale_ext.sqlite_store import SqliteGraphStore


@pytest.fixture
def job_store_factory(tmp_path: Path) -> Iterator[JobStoreFactory]:
    """Each call opens the same database file with its own connection (like a worker)."""
    opened: list[SqliteGraphStore] = []

    def factory() -> SqliteJobStore:
        graph = SqliteGraphStore(tmp_path / "jacscale.db")
        opened.append(graph)
        return SqliteJobStore(graph)

    yield factory
    for graph in opened:
        graph.close()
