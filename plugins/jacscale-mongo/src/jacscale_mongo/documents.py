"""DocumentStore on MongoDB collections: users, identities, API keys, ... (extension data).

Each DocumentStore collection is a MongoDB collection of the same name in the
app's database (`users`, `api_keys`, ...), so an operator finds them where
they expect. Names the graph store uses (`jacscale_*`) and MongoDB's own
(`system.*`) are refused. `find` matches by equality only: every value is
wrapped in `$eq`, so a value such as `{"$ne": null}` is compared, never run as
an operator; field names with `$` or `.` are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from jacscale_core.store import DuplicateKey
from jacscale_mongo.client import translate

T = TypeVar("T")
RESERVED_PREFIXES = ("jacscale_", "system.")


def _check_field(name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith("$") or "." in name:
        raise ValueError(f"invalid document field name {name!r}")
    return name


class MongoDocuments:
    """`jacscale_core.store.DocumentStore` over collections of one MongoDB database."""

    def __init__(self, database: Database[dict[str, Any]], uri: str) -> None:
        """Use `database`; `uri` is only used to scrub error messages."""
        self._db = database
        self._uri = uri

    def _col(self, collection: str) -> Collection[dict[str, Any]]:
        if (
            not isinstance(collection, str)
            or not collection
            or "$" in collection
            or collection.startswith(RESERVED_PREFIXES)
        ):
            raise ValueError(f"invalid document collection name {collection!r}")
        return self._db[collection]

    def _run(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            raise translate(exc, self._uri, action) from None

    def insert(self, collection: str, doc: dict[str, Any]) -> None:
        """Insert `doc`; raise DuplicateKey if its `_id` exists."""
        col = self._col(collection)
        body = {_check_field(k): v for k, v in doc.items() if k != "_id"}
        body = {"_id": str(doc["_id"]), **body}
        try:
            self._run(f"inserting into {collection}", lambda: col.insert_one(body))
        except DuplicateKeyError:
            raise DuplicateKey(f"{collection}/{body['_id']} exists") from None

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return the document with this `_id`, or None."""
        col = self._col(collection)
        return self._run(f"reading {collection}", lambda: col.find_one({"_id": str(doc_id)}))

    def find(self, collection: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        """Documents whose top-level fields equal every item of `where` (by `_id` order)."""
        col = self._col(collection)
        query = {_check_field(k): {"$eq": v} for k, v in where.items()}
        return self._run(f"searching {collection}", lambda: list(col.find(query).sort("_id", 1)))

    def update(self, collection: str, doc_id: str, fields: dict[str, Any]) -> bool:
        """Set top-level `fields`; False if the document does not exist."""
        col = self._col(collection)
        changes = {_check_field(k): v for k, v in fields.items() if k != "_id"}
        if not changes:
            return self.get(collection, doc_id) is not None
        result = self._run(
            f"updating {collection}",
            lambda: col.update_one({"_id": str(doc_id)}, {"$set": changes}),
        )
        return result.matched_count > 0

    def delete(self, collection: str, doc_id: str) -> bool:
        """Delete a document; False if it did not exist."""
        col = self._col(collection)
        result = self._run(
            f"deleting from {collection}", lambda: col.delete_one({"_id": str(doc_id)})
        )
        return result.deleted_count > 0
