"""DocumentStore on one PostgreSQL table: users, identities, API keys, webhook deliveries, ...

Every collection lives in `jacscale_docs (collection, id, doc jsonb)`. `find`
compares each top-level field with `=` on jsonb, the field name and the value
both bound as parameters, so user input is never SQL; a missing field equals
None (as in the SQLite and MongoDB stores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from jacscale_core.store import DuplicateKey

if TYPE_CHECKING:
    from jacscale_postgres.graph_store import PostgresGraphStore

T = TypeVar("T")


def _field(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid document field name {name!r}")
    return name


def _collection(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid document collection name {name!r}")
    return name


class PostgresDocuments:
    """`jacscale_core.store.DocumentStore` over the `jacscale_docs` table."""

    def __init__(self, store: PostgresGraphStore) -> None:
        """Share `store`'s connection pool and error handling."""
        self._store = store

    def _run(self, action: str, fn: Callable[[psycopg.Connection], T]) -> T:
        return self._store.run(action, fn)

    def insert(self, collection: str, doc: dict[str, Any]) -> None:
        """Insert `doc`; raise DuplicateKey if its `_id` exists."""
        col = _collection(collection)
        doc_id = str(doc["_id"])
        body = {_field(k): v for k, v in doc.items()} | {"_id": doc_id}

        def insert(conn: psycopg.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO jacscale_docs (collection, id, doc) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (col, doc_id, Jsonb(body)),
            )
            return cur.rowcount

        if self._run(f"inserting into {col}", insert) == 0:
            raise DuplicateKey(f"{col}/{doc_id} exists")

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return the document with this `_id`, or None."""
        col = _collection(collection)

        def get(conn: psycopg.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT doc FROM jacscale_docs WHERE collection = %s AND id = %s",
                (col, str(doc_id)),
            ).fetchone()
            return dict(row[0]) if row else None

        return self._run(f"reading {col}", get)

    def find(self, collection: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        """Documents whose top-level fields equal every item of `where` (by `_id` order)."""
        col = _collection(collection)
        sql = "SELECT doc FROM jacscale_docs WHERE collection = %s"
        params: list[Any] = [col]
        for key, value in where.items():
            sql += " AND COALESCE(doc -> %s, 'null'::jsonb) = %s"
            params += [_field(key), Jsonb(value)]
        sql += " ORDER BY id"

        def find(conn: psycopg.Connection) -> list[dict[str, Any]]:
            return [dict(r[0]) for r in conn.execute(sql.encode(), params).fetchall()]

        return self._run(f"searching {col}", find)

    def update(self, collection: str, doc_id: str, fields: dict[str, Any]) -> bool:
        """Set top-level `fields`; False if the document does not exist."""
        col = _collection(collection)
        changes = {_field(k): v for k, v in fields.items() if k != "_id"}

        def update(conn: psycopg.Connection) -> int:
            cur = conn.execute(
                "UPDATE jacscale_docs SET doc = doc || %s WHERE collection = %s AND id = %s",
                (Jsonb(changes), col, str(doc_id)),
            )
            return cur.rowcount

        return self._run(f"updating {col}", update) > 0

    def delete(self, collection: str, doc_id: str) -> bool:
        """Delete a document; False if it did not exist."""
        col = _collection(collection)

        def delete(conn: psycopg.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM jacscale_docs WHERE collection = %s AND id = %s", (col, str(doc_id))
            )
            return cur.rowcount

        return self._run(f"deleting from {col}", delete) > 0
