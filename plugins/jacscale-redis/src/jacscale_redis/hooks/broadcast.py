"""The `redis_broadcast` entry point: WebSocket broadcasts over Redis pub/sub."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_ext.broadcast import channel_for

if TYPE_CHECKING:
    from jacscale_redis.broadcast import RedisBroadcastBus


@hookimpl
def jacscale_broadcast_bus(app: AppContext) -> RedisBroadcastBus | None:
    """The Redis bus when REDIS_URL is set; otherwise pass (the embedded bus answers)."""
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        return None
    from jacscale_redis.broadcast import RedisBroadcastBus

    return RedisBroadcastBus(url, channel_for(app))
