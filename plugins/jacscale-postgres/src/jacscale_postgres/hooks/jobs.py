"""The `postgres_jobs` entry point: the scheduler's job store when the graph store is PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_postgres.hooks.graph_store import postgres_store

if TYPE_CHECKING:
    from jacscale_postgres.jobs import PostgresJobStore


@hookimpl
def jacscale_job_store(app: AppContext) -> PostgresJobStore | None:
    """The PostgreSQL job store when the graph store is PostgreSQL; otherwise pass."""
    store = postgres_store(app)
    if store is None:
        return None
    from jacscale_postgres.jobs import PostgresJobStore

    return PostgresJobStore(store)
