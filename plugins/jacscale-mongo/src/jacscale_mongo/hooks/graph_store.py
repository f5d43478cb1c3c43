"""The `mongo_graph_store` entry point: MongoDB as the durable graph store (L3)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from jacscale_core.config import database_uri
from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl

if TYPE_CHECKING:
    from jacscale_mongo.graph_store import MongoGraphStore

STORE_MODULE = "jacscale_mongo.graph_store"


def mongodb_uri(app: AppContext) -> str | None:
    """MONGODB_URI, else `[plugins.scale.database] mongodb_uri`, else None."""
    return database_uri("mongodb", app.settings.env, app.settings.toml)


def mongo_store(app: AppContext) -> MongoGraphStore | None:
    """The app's store when it is the MongoDB one (found without importing PyMongo)."""
    if STORE_MODULE not in sys.modules:
        return None  # no MongoGraphStore was ever made in this process
    from jacscale_mongo.graph_store import MongoGraphStore

    store = app.store
    return store if isinstance(store, MongoGraphStore) else None


@hookimpl
def jacscale_graph_store(app: AppContext) -> MongoGraphStore | None:
    """The MongoDB store when a URI is configured; otherwise pass (SQLite answers)."""
    uri = mongodb_uri(app)
    if not uri:
        return None
    from jacscale_mongo.graph_store import MongoGraphStore

    return MongoGraphStore(uri)


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Check MongoDB answers (bounded by the client's timeouts); fail start-up naming the URI."""
    store = mongo_store(app)
    if store is not None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(store.prepare)


@hookimpl
def jacscale_readiness(app: AppContext) -> list[tuple[str, bool, str]] | None:
    """The change-log state (the kernel's `store` check already pings MongoDB)."""
    store = mongo_store(app)
    if store is None:
        return None
    ok, detail = store.health()
    return [("mongodb_changelog", ok, detail)]
