"""The `postgres_broadcast` entry point: WebSocket broadcasts over LISTEN/NOTIFY."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_ext.broadcast import channel_for
from jacscale_postgres.settings import database_url

if TYPE_CHECKING:
    from jacscale_postgres.broadcast import PostgresBroadcastBus


@hookimpl
def jacscale_broadcast_bus(app: AppContext) -> PostgresBroadcastBus | None:
    """The LISTEN/NOTIFY bus when DATABASE_URL is PostgreSQL and REDIS_URL is not set."""
    if os.environ.get("REDIS_URL", "").strip():
        return None  # the Redis plugin's pub/sub answers
    url = database_url(app)
    if url is None:
        return None
    from jacscale_postgres.broadcast import PostgresBroadcastBus

    return PostgresBroadcastBus(url, channel_for(app))
