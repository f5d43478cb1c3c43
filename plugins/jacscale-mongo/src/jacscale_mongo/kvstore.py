"""The kvstore driver for db_type 'mongodb' (PyMongo, sync: it runs inside walkers).

One `MongoClient` per process and URI, created on first use with bounded
timeouts and checked with a ping, so an unreachable server fails within
seconds with the URI (password masked) in the message. Connection failures
during use raise `KVStoreUnavailable`; PyMongo reconnects by itself once the
server is back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from bson import ObjectId
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.errors import ConnectionFailure, PyMongoError
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from jacscale_ext.kvstore import (
    ClientCache,
    KVStore,
    KVStoreUnavailable,
    guarded,
    mask_uri,
    scrub,
)

# Used unless the URI sets its own (`?serverSelectionTimeoutMS=500` ...).
DEFAULT_OPTIONS_MS: dict[str, int] = {
    "serverSelectionTimeoutMS": 5_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 30_000,
}



def _short(text: str) -> str:
    text = text.split(", Timeout:", 1)[0].split("Topology Description", 1)[0]
    return text[:300].rstrip(", ")


def _failure(uri: str, exc: Exception) -> KVStoreUnavailable:
    return KVStoreUnavailable(
        f"MongoDB at {mask_uri(uri)} is unreachable: {_short(scrub(str(exc), uri))}"
    )


def _options(uri: str) -> dict[str, Any]:
    present = {key.lower() for key, _ in parse_qsl(uri.partition("?")[2])}
    opts: dict[str, Any] = {k: v for k, v in DEFAULT_OPTIONS_MS.items() if k.lower() not in present}
    if "appname" not in present:
        opts["appname"] = "jacscale-kvstore"
    return opts


def _connect(uri: str) -> MongoClient[dict[str, Any]]:
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, **_options(uri))
    except (PyMongoError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid MongoDB URI {mask_uri(uri)}: {scrub(str(exc), uri)}") from None
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        client.close()
        raise _failure(uri, exc) from None
    return client


_clients: ClientCache[MongoClient[dict[str, Any]]] = ClientCache(_connect, lambda client: client.close())


def get_client(uri: str) -> MongoClient[dict[str, Any]]:
    """The process's client for `uri`, connected and pinged on first use."""
    return _clients.get(uri)


def close_clients() -> None:
    """Close every client this process opened (shutdown, tests)."""
    _clients.close_all()


_guarded = guarded((ConnectionFailure,), _failure)


def _object_id(value: Any) -> ObjectId | None:
    if isinstance(value, ObjectId):
        return value
    if isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    return None


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("kvstore key must be a non-empty string")
    return key


class MongoKVStore(KVStore):
    """A MongoDB database as a kvstore: documents by `_id` plus the collection methods."""

    db_type = "mongodb"

    def __init__(self, client: MongoClient[dict[str, Any]], db_name: str, uri: str) -> None:
        """Use database `db_name` through the shared `client` connected to `uri`."""
        super().__init__(db_name)
        self._client = client
        self._uri = uri

    def _col(self, col_name: str) -> Collection[dict[str, Any]]:
        if not isinstance(col_name, str) or not col_name:
            raise ValueError("kvstore col_name must be a non-empty string")
        return self._client[self.db_name][col_name]

    # ----- common -------------------------------------------------------------

    @_guarded
    def get(self, key: str, col_name: str = "default") -> dict[str, Any] | None:
        """The document whose `_id` is `key` (or the ObjectId `key` spells), or None."""
        col = self._col(col_name)
        doc = col.find_one({"_id": _check_key(key)})
        if doc is None and (oid := _object_id(key)) is not None:
            doc = col.find_one({"_id": oid})
        return doc

    @_guarded
    def set(self, key: str, value: Any, col_name: str = "default") -> str:
        """Store the dict `value` as the document with `_id` = `key`; returns `key`."""
        if not isinstance(value, Mapping):
            raise TypeError(f"MongoDB kvstore value must be a dict, got {type(value).__name__}")
        doc = dict(value)
        doc["_id"] = _check_key(key)
        self._col(col_name).replace_one({"_id": key}, doc, upsert=True)
        return key

    @_guarded
    def delete(self, key: str, col_name: str = "default") -> int:
        """Delete the document with `_id` = `key`; returns 0 or 1."""
        col = self._col(col_name)
        deleted = col.delete_one({"_id": _check_key(key)}).deleted_count
        if not deleted and (oid := _object_id(key)) is not None:
            deleted = col.delete_one({"_id": oid}).deleted_count
        return deleted

    @_guarded
    def exists(self, key: str, col_name: str = "default") -> bool:
        """True when a document with `_id` = `key` exists."""
        col = self._col(col_name)
        if col.find_one({"_id": _check_key(key)}, {"_id": 1}) is not None:
            return True
        oid = _object_id(key)
        return oid is not None and col.find_one({"_id": oid}, {"_id": 1}) is not None

    # ----- documents ----------------------------------------------------------

    @_guarded
    def find_one(
        self, col_name: str, filter: dict, projection: dict | None = None
    ) -> dict[str, Any] | None:
        """The first document matching `filter`, or None."""
        return self._col(col_name).find_one(filter, projection)

    @_guarded
    def find(
        self, col_name: str, filter: dict, projection: dict | None = None
    ) -> Cursor[dict[str, Any]]:
        """A PyMongo cursor over the matches (iterate it, or chain .sort() / .limit())."""
        return self._col(col_name).find(filter, projection)

    @_guarded
    def count_documents(self, col_name: str, filter: dict) -> int:
        """How many documents match `filter`."""
        return self._col(col_name).count_documents(filter)

    @_guarded
    def create_index(
        self, col_name: str, keys: dict, unique: bool = False, name: str | None = None
    ) -> str:
        """Create (or find) an index on `keys` ({field: 1 | -1}); returns its name."""
        if not isinstance(keys, Mapping) or not keys:
            raise ValueError("create_index keys must be a non-empty dict {field: 1 | -1}")
        spec = list(keys.items())
        if name is not None:
            return self._col(col_name).create_index(spec, unique=unique, name=name)
        return self._col(col_name).create_index(spec, unique=unique)

    @_guarded
    def insert_one(self, col_name: str, document: dict) -> InsertOneResult:
        """Insert `document`; `.inserted_id` is its `_id`."""
        return self._col(col_name).insert_one(document)

    @_guarded
    def insert_many(self, col_name: str, documents: list) -> InsertManyResult:
        """Insert `documents` in order; `.inserted_ids` lists their `_id`s."""
        if not isinstance(documents, list | tuple) or not documents:
            raise ValueError("insert_many documents must be a non-empty list of dicts")
        return self._col(col_name).insert_many(list(documents))

    @_guarded
    def update_one(
        self, col_name: str, filter: dict, update_data: dict, upsert_mode: bool = False
    ) -> UpdateResult:
        """Apply `update_data` (operators such as `$set`) to the first match."""
        return self._col(col_name).update_one(filter, update_data, upsert=upsert_mode)

    @_guarded
    def update_many(
        self, col_name: str, filter: dict, update_data: dict, upsert_mode: bool = False
    ) -> UpdateResult:
        """Apply `update_data` to every match."""
        return self._col(col_name).update_many(filter, update_data, upsert=upsert_mode)

    @_guarded
    def delete_one(self, col_name: str, filter: dict) -> DeleteResult:
        """Delete the first match."""
        return self._col(col_name).delete_one(filter)

    @_guarded
    def delete_many(self, col_name: str, filter: dict) -> DeleteResult:
        """Delete every match."""
        return self._col(col_name).delete_many(filter)

    @_guarded
    def find_by_id(self, col_name: str, id: str) -> dict[str, Any] | None:
        """The document with ObjectId `id` (24 hex digits); None if absent or not an id."""
        oid = _object_id(id)
        return None if oid is None else self._col(col_name).find_one({"_id": oid})

    @_guarded
    def update_by_id(
        self, col_name: str, id: str, update_data: dict, upsert_mode: bool = False
    ) -> UpdateResult:
        """Apply `update_data` to the document with ObjectId `id` (matches nothing if invalid)."""
        oid = _object_id(id)
        if oid is None:
            return UpdateResult({"n": 0, "nModified": 0}, acknowledged=True)
        return self._col(col_name).update_one({"_id": oid}, update_data, upsert=upsert_mode)

    @_guarded
    def delete_by_id(self, col_name: str, id: str) -> DeleteResult:
        """Delete the document with ObjectId `id` (deletes nothing if invalid)."""
        oid = _object_id(id)
        if oid is None:
            return DeleteResult({"n": 0}, acknowledged=True)
        return self._col(col_name).delete_one({"_id": oid})


def open_kvstore(db_name: str, uri: str | None) -> MongoKVStore:
    """The kvstore `db_name` on the MongoDB at `uri` (its hook: jacscale_mongo.hooks.kvstore)."""
    if not uri:
        raise ValueError("kvstore(db_type='mongodb') needs a URI")
    return MongoKVStore(get_client(uri), db_name, uri)
