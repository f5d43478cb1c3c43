"""The kvstore driver for db_type 'postgres' (psycopg, sync: it runs inside walkers).

`kvstore(db_name='app', db_type='postgres')` keeps entries in `jacscale_kv`
(db_name, collection, key, jsonb value, optional expiry) of the database
DATABASE_URL (or `uri=`) names; the schema is migrated on first use. Values
are any JSON value. Besides get / set / delete / exists it offers the
key-value methods Redis programs use: set_with_ttl, set_nx_with_ttl, expire,
incr, scan_keys and delete_if_equals, each one atomic statement. An expired
entry is absent to every method (and removed by the next write to it).

One pool per process and URL (up to 8 connections, 5 s wait), created on first
use and checked by connecting, so an unreachable server fails within seconds
naming the URL with its password masked. Connection failures during use raise
`KVStoreUnavailable` (503 when a walker lets it escape).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from jacscale_ext.kvstore import ClientCache, KVStore, KVStoreUnavailable, mask_uri
from jacscale_postgres.connection import connect_kwargs, open_pool, reason
from jacscale_postgres.schema import migrate
from jacscale_postgres.settings import is_postgres_url

POOL_SIZE = 8
LIVE = "(expires_at IS NULL OR expires_at > now())"


def _connect(uri: str) -> ConnectionPool:
    if not is_postgres_url(uri):
        raise ValueError(
            f"kvstore(db_type='postgres') needs a postgresql:// URL, got {mask_uri(uri)}"
        )
    try:
        with psycopg.connect(
            uri, autocommit=True, **connect_kwargs(uri, "jacscale-kvstore")
        ) as conn:
            migrate(conn)
    except psycopg.Error as exc:
        raise KVStoreUnavailable(
            f"PostgreSQL at {mask_uri(uri)} is unreachable: {reason(exc, uri)}"
        ) from None
    pool = open_pool(uri, name="jacscale-kvstore", max_size=POOL_SIZE)
    pool.open(wait=False)
    return pool


_pools: ClientCache[ConnectionPool] = ClientCache(_connect, lambda pool: pool.close())


def close_pools() -> None:
    """Close every pool this process opened (shutdown, tests)."""
    _pools.close_all()


def _guarded[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost connection, a full pool or a timeout into KVStoreUnavailable."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (psycopg.OperationalError, PoolTimeout, psycopg.errors.QueryCanceled) as exc:
            store = args[0]
            assert isinstance(store, PostgresKVStore)
            raise KVStoreUnavailable(
                f"PostgreSQL at {mask_uri(store._uri)} is unavailable: {reason(exc, store._uri)}"
            ) from None

    return wrapper


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("kvstore key must be a non-empty string")
    return key


def _col(col_name: Any) -> str:
    if not isinstance(col_name, str) or not col_name:
        raise ValueError("kvstore col_name must be a non-empty string")
    return col_name


def _ttl(seconds: Any) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise ValueError("kvstore ttl must be a positive whole number of seconds")
    return seconds


def glob_to_like(pattern: str) -> str:
    """A Redis glob (`*`, `?`, `[...]` is refused) as a LIKE pattern with `\\` escapes."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("scan_keys pattern must be a non-empty string")
    if "[" in pattern:
        raise ValueError("scan_keys on db_type='postgres' supports * and ? only")
    escaped = re.sub(r"([%_\\])", r"\\\1", pattern)
    return escaped.replace("*", "%").replace("?", "_")


class PostgresKVStore(KVStore):
    """A PostgreSQL table as a kvstore: JSON values by key, with Redis-style key methods."""

    db_type = "postgres"

    def __init__(self, pool: ConnectionPool, db_name: str, uri: str) -> None:
        """Use namespace `db_name` through the shared `pool` connected to `uri`."""
        super().__init__(db_name)
        self._pool = pool
        self._uri = uri

    def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._pool.connection() as conn:
            return conn.execute(sql.encode(), params).fetchone()

    def _count(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._pool.connection() as conn:
            return conn.execute(sql.encode(), params).rowcount

    # ----- common -------------------------------------------------------------

    @_guarded
    def get(self, key: str, col_name: str = "default") -> Any:
        """The value stored under `key`, or None."""
        row = self._one(
            f"SELECT value FROM jacscale_kv WHERE db_name = %s AND col = %s AND key = %s AND {LIVE}",
            (self.db_name, _col(col_name), _key(key)),
        )
        return row[0] if row else None

    @_guarded
    def set(self, key: str, value: Any, col_name: str = "default") -> str:
        """Store the JSON `value` under `key` (no expiry); returns `key`."""
        self._count(
            "INSERT INTO jacscale_kv (db_name, col, key, value) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (db_name, col, key) DO UPDATE SET value = EXCLUDED.value, expires_at = NULL",
            (self.db_name, _col(col_name), _key(key), Jsonb(value)),
        )
        return key

    @_guarded
    def delete(self, key: str, col_name: str = "default") -> int:
        """Delete `key`; returns 0 or 1."""
        return self._count(
            f"DELETE FROM jacscale_kv WHERE db_name = %s AND col = %s AND key = %s AND {LIVE}",
            (self.db_name, _col(col_name), _key(key)),
        )

    @_guarded
    def exists(self, key: str, col_name: str = "default") -> bool:
        """True when `key` holds a value that has not expired."""
        return (
            self._one(
                f"SELECT 1 FROM jacscale_kv WHERE db_name = %s AND col = %s AND key = %s AND {LIVE}",
                (self.db_name, _col(col_name), _key(key)),
            )
            is not None
        )

    # ----- key-value ----------------------------------------------------------

    @_guarded
    def set_with_ttl(self, key: str, value: Any, ttl: int, col_name: str = "default") -> bool:
        """Store `value` under `key` for `ttl` seconds."""
        self._count(
            "INSERT INTO jacscale_kv (db_name, col, key, value, expires_at)"
            " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))"
            " ON CONFLICT (db_name, col, key) DO UPDATE"
            " SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
            (self.db_name, _col(col_name), _key(key), Jsonb(value), _ttl(ttl)),
        )
        return True

    @_guarded
    def set_nx_with_ttl(self, key: str, value: Any, ttl: int, col_name: str = "default") -> bool:
        """Store `value` only if `key` is absent (or expired), for `ttl` seconds; True if stored."""
        return (
            self._count(
                "INSERT INTO jacscale_kv (db_name, col, key, value, expires_at)"
                " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))"
                " ON CONFLICT (db_name, col, key) DO UPDATE"
                " SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
                " WHERE jacscale_kv.expires_at IS NOT NULL AND jacscale_kv.expires_at <= now()",
                (self.db_name, _col(col_name), _key(key), Jsonb(value), _ttl(ttl)),
            )
            == 1
        )

    @_guarded
    def expire(self, key: str, seconds: int, col_name: str = "default") -> bool:
        """Let `key` expire after `seconds`; False if it does not exist."""
        return (
            self._count(
                "UPDATE jacscale_kv SET expires_at = now() + make_interval(secs => %s)"
                f" WHERE db_name = %s AND col = %s AND key = %s AND {LIVE}",
                (_ttl(seconds), self.db_name, _col(col_name), _key(key)),
            )
            == 1
        )

    @_guarded
    def incr(self, key: str, col_name: str = "default") -> int:
        """Atomically add 1 to the integer at `key` (0 if absent or expired); the new value.

        A value that is not an integer raises ValueError and is left alone.
        """
        row = self._one(
            "INSERT INTO jacscale_kv (db_name, col, key, value) VALUES (%s, %s, %s, '1')"
            " ON CONFLICT (db_name, col, key) DO UPDATE SET"
            " value = CASE WHEN jacscale_kv.expires_at IS NOT NULL AND jacscale_kv.expires_at <= now()"
            "   THEN '1'::jsonb"
            "   WHEN jsonb_typeof(jacscale_kv.value) = 'number'"
            "     AND (jacscale_kv.value #>> '{}') ~ '^-?[0-9]+$'"
            "   THEN to_jsonb((jacscale_kv.value #>> '{}')::bigint + 1)"
            "   ELSE jacscale_kv.value END,"
            " expires_at = CASE WHEN jacscale_kv.expires_at <= now() THEN NULL"
            "   ELSE jacscale_kv.expires_at END"
            " RETURNING value",
            (self.db_name, _col(col_name), _key(key)),
        )
        value = row[0] if row else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"kvstore.incr: the value at {key!r} is not an integer")
        return value

    @_guarded
    def scan_keys(self, pattern: str, col_name: str = "default") -> list[str]:
        """The live keys matching the glob `pattern` (`*` and `?`), sorted."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT key FROM jacscale_kv WHERE db_name = %s AND col = %s"
                f" AND key LIKE %s ESCAPE '\\' AND {LIVE} ORDER BY key",
                (self.db_name, _col(col_name), glob_to_like(pattern)),
            ).fetchall()
        return [r[0] for r in rows]

    @_guarded
    def delete_if_equals(self, key: str, expected_value: Any, col_name: str = "default") -> bool:
        """Atomically delete `key` only if it holds `expected_value` (a lock's owner token)."""
        return (
            self._count(
                "DELETE FROM jacscale_kv WHERE db_name = %s AND col = %s AND key = %s"
                f" AND value = %s AND {LIVE}",
                (self.db_name, _col(col_name), _key(key), Jsonb(expected_value)),
            )
            == 1
        )


def open_kvstore(db_name: str, uri: str | None) -> PostgresKVStore:
    """The kvstore `db_name` in the database at `uri` (its hook: jacscale_postgres.hooks.kvstore)."""
    if not uri:
        raise ValueError("kvstore(db_type='postgres') needs a URL")
    return PostgresKVStore(_pools.get(uri), db_name, uri)
