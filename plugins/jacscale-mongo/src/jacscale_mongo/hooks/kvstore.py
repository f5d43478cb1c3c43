"""The `mongo_kvstore` entry point: kvstore(db_type='mongodb')."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from jacscale_core.plugins import hookimpl

if TYPE_CHECKING:
    from jacscale_mongo.kvstore import MongoKVStore

DRIVER = "jacscale_mongo.kvstore"


@hookimpl
def jacscale_kvstore_driver(db_type: str, db_name: str, uri: str | None) -> MongoKVStore | None:
    """Answer for db_type 'mongodb'."""
    if db_type != "mongodb":
        return None
    from jacscale_mongo.kvstore import open_kvstore

    return open_kvstore(db_name, uri)


@hookimpl
def jacscale_shutdown() -> None:
    """Close the kvstore clients of this worker (none unless the driver was imported)."""
    if DRIVER in sys.modules:
        from jacscale_mongo.kvstore import close_clients

        close_clients()
