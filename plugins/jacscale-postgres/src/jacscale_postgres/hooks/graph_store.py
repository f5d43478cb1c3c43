"""The `postgres_graph_store` entry point: PostgreSQL as the durable graph store (L3)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from jacscale_core.config import ConfigError
from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_postgres.settings import CONFIG_SECTION, PostgresConfig, database_url

if TYPE_CHECKING:
    from jacscale_postgres.graph_store import PostgresGraphStore

STORE_MODULE = "jacscale_postgres.graph_store"


def postgres_store(app: AppContext) -> PostgresGraphStore | None:
    """The app's store when it is the PostgreSQL one (found without importing psycopg)."""
    if STORE_MODULE not in sys.modules:
        return None  # no PostgresGraphStore was ever made in this process
    from jacscale_postgres.graph_store import PostgresGraphStore

    store = app.store
    return store if isinstance(store, PostgresGraphStore) else None


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """`[plugins.scale.postgres]`: pool_size, pool_timeout_seconds, statement_timeout_ms."""
    return {CONFIG_SECTION: PostgresConfig}


@hookimpl(tryfirst=True)  # first, so DATABASE_URL together with MONGODB_URI is always refused
def jacscale_graph_store(app: AppContext) -> PostgresGraphStore | None:
    """The PostgreSQL store when DATABASE_URL is set; otherwise pass."""
    url = database_url(app)
    if url is None:
        return None
    env = getattr(app.settings, "env", None)
    if (os.environ if env is None else env).get("MONGODB_URI", "").strip():
        raise ConfigError("both DATABASE_URL and MONGODB_URI are set: choose one graph store")
    config = app.config_section(CONFIG_SECTION) or PostgresConfig()
    if config.pool_size < 1 or config.pool_timeout_seconds <= 0 or config.statement_timeout_ms < 1:
        raise ConfigError(
            f"[{CONFIG_SECTION}] pool_size, pool_timeout_seconds and statement_timeout_ms"
            " must be positive"
        )
    from jacscale_postgres.graph_store import PostgresGraphStore

    return PostgresGraphStore(
        url,
        pool_size=config.pool_size,
        pool_timeout=config.pool_timeout_seconds,
        statement_timeout_ms=config.statement_timeout_ms,
    )


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Connect and migrate (bounded by the connect timeout); fail start-up naming the URL."""
    store = postgres_store(app)
    if store is not None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(store.prepare)
