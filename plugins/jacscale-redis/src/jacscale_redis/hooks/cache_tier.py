"""The `redis_cache_tier` entry point: Redis as the shared record cache (L2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jacscale_core.config import database_uri
from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl

if TYPE_CHECKING:
    from jacscale_redis.cache_tier import RedisCacheTier

STATE_KEY = "redis.cache"


def redis_url(app: AppContext) -> str | None:
    """REDIS_URL, else `[plugins.scale.database] redis_url`, else None."""
    return database_uri("redis", app.settings.env, app.settings.toml)


@hookimpl
def jacscale_cache_tier(app: AppContext) -> RedisCacheTier | None:
    """The Redis cache when a URL is configured; otherwise pass (no L2)."""
    url = redis_url(app)
    if not url:
        return None
    from jacscale_redis.cache_tier import open_tier

    tier = open_tier(url, app.store.location)
    app.state[STATE_KEY] = tier
    return tier


@hookimpl
async def jacscale_startup(app: AppContext) -> None:
    """Check Redis answers and subscribe (at most a few seconds); fail start-up naming the URL."""
    tier: RedisCacheTier | None = app.state.get(STATE_KEY)
    if tier is not None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(tier.start)


@hookimpl
async def jacscale_shutdown(app: AppContext) -> None:
    """Stop the subscriber and close the pool."""
    tier: RedisCacheTier | None = app.state.pop(STATE_KEY, None)
    if tier is not None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(tier.close)


@hookimpl
def jacscale_readiness(app: AppContext) -> list[tuple[str, bool, str]] | None:
    """The cache's state (no I/O): false while Redis is away (requests still succeed)."""
    tier: RedisCacheTier | None = app.state.get(STATE_KEY)
    if tier is None:
        return None
    ok, detail = tier.status()
    return [("redis_cache", ok, detail)]
