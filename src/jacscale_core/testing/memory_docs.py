"""TEST DOUBLE: an in-memory DocumentStore for unit tests that need no real store."""

from __future__ import annotations

import copy
import threading
from typing import Any

from jacscale_core.store import DuplicateKey


class MemoryDocs:
    """Implements jacscale_core.store.DocumentStore with dicts and one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, dict[str, Any]]] = {}

    def insert(self, collection: str, doc: dict[str, Any]) -> None:
        with self._lock:
            coll = self._data.setdefault(collection, {})
            if doc["_id"] in coll:
                raise DuplicateKey(doc["_id"])
            coll[doc["_id"]] = copy.deepcopy(doc)

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._data.get(collection, {}).get(doc_id)
            return copy.deepcopy(doc) if doc is not None else None

    def find(self, collection: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(d)
                for d in self._data.get(collection, {}).values()
                if all(d.get(k) == v for k, v in where.items())
            ]

    def update(self, collection: str, doc_id: str, fields: dict[str, Any]) -> bool:
        with self._lock:
            doc = self._data.get(collection, {}).get(doc_id)
            if doc is None:
                return False
            doc.update(copy.deepcopy(fields))
            return True

    def delete(self, collection: str, doc_id: str) -> bool:
        with self._lock:
            return self._data.get(collection, {}).pop(doc_id, None) is not None
