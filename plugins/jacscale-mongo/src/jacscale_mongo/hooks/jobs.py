"""The `mongo_jobs` entry point: the scheduler's job store when the graph store is MongoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_mongo.hooks.graph_store import mongo_store

if TYPE_CHECKING:
    from jacscale_mongo.jobs import MongoJobStore


@hookimpl
def jacscale_job_store(app: AppContext) -> MongoJobStore | None:
    """The Mongo job store when the graph store is MongoDB; otherwise pass."""
    store = mongo_store(app)
    if store is None:
        return None
    from jacscale_mongo.jobs import MongoJobStore

    return MongoJobStore(store)
