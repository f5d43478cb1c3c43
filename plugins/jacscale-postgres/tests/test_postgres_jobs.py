"""PostgresJobStore (scheduler lease + jobs in PostgreSQL) passes the JobStore contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jacscale_postgres.graph_store import PostgresGraphStore
from jacscale_postgres.jobs import PostgresJobStore
from jacscale_postgres.testing import PostgresServer

from jacscale_ext.scheduler.testing import *  # noqa: F403 - the contract's tests run here
from jacscale_ext.scheduler.testing import JobStoreFactory


@pytest.fixture
def job_store_factory(postgres_server: PostgresServer) -> Iterator[JobStoreFactory]:
    """Each call opens its own store on one fresh database (two servers sharing it)."""
    url = postgres_server.fresh_database("jobs")
    opened: list[PostgresGraphStore] = []

    def factory() -> PostgresJobStore:
        graph = PostgresGraphStore(url, pool_size=4)
        graph.prepare()
        opened.append(graph)
        return PostgresJobStore(graph)

    yield factory
    for graph in opened:
        graph.close()
