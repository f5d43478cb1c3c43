"""The `postgres_kvstore` entry point: kvstore(db_type='postgres')."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from jacscale_core.plugins import hookimpl

if TYPE_CHECKING:
    from jacscale_postgres.kvstore import PostgresKVStore

DRIVER = "jacscale_postgres.kvstore"


@hookimpl
def jacscale_kvstore_driver(db_type: str, db_name: str, uri: str | None) -> PostgresKVStore | None:
    """Answer for db_type 'postgres'."""
    if db_type != "postgres":
        return None
    from jacscale_postgres.kvstore import open_kvstore

    return open_kvstore(db_name, uri)


@hookimpl
def jacscale_shutdown() -> None:
    """Close the kvstore pools of this worker (none unless the driver was imported)."""
    if DRIVER in sys.modules:
        from jacscale_postgres.kvstore import close_pools

        close_pools()
