"""The `redis_kvstore` entry point: kvstore(db_type='redis')."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from jacscale_core.plugins import hookimpl

if TYPE_CHECKING:
    from jacscale_redis.kvstore import RedisKVStore

DRIVER = "jacscale_redis.kvstore"


@hookimpl
def jacscale_kvstore_driver(db_type: str, db_name: str, uri: str | None) -> RedisKVStore | None:
    """Answer for db_type 'redis'."""
    if db_type != "redis":
        return None
    from jacscale_redis.kvstore import open_kvstore

    return open_kvstore(db_name, uri)


@hookimpl
def jacscale_shutdown() -> None:
    """Close the kvstore clients of this worker (none unless the driver was imported)."""
    if DRIVER in sys.modules:
        from jacscale_redis.kvstore import close_clients

        close_clients()
