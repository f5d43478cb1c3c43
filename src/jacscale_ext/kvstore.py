"""kvstore(): direct MongoDB / Redis access for Jac programs.

A Jac program writes `import from jac_scale.lib { kvstore }` and then
`db = kvstore(db_name='my_app', db_type='mongodb')`. This module resolves the
URI, asks the `jacscale_kvstore_driver` hook for a driver (the jacscale-mongo
and jacscale-redis plugins answer) and returns it. Every driver subclasses
`KVStore`, whose methods raise NotImplementedError until a driver overrides
them, so a Redis method called on a MongoDB store (or the reverse) says so.

URI priority: the explicit `uri` argument, then MONGODB_URI / REDIS_URL, then
`[plugins.scale.database] mongodb_uri / redis_url` in the app's jac.toml.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable
from typing import Any

from jacscale_core.config import DATABASE_ENV, DATABASE_KEY, DATABASE_SECTION, database_uri
from jacscale_core.context import AppContext
from jacscale_core.current import current_app

# The database types this module knows how to find a URI for.
DB_TYPES: tuple[str, ...] = tuple(DATABASE_ENV)
PLUGIN_HINT: dict[str, str] = {
    "mongodb": "jacscale[mongo]",
    "redis": "jacscale[redis]",
    "postgres": "jacscale[postgres]",
}

# Methods that only one database type provides (the rest are common).
MONGODB_METHODS: frozenset[str] = frozenset(
    {
        "find_one",
        "find",
        "count_documents",
        "create_index",
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "delete_one",
        "delete_many",
        "find_by_id",
        "update_by_id",
        "delete_by_id",
    }
)
REDIS_METHODS: frozenset[str] = frozenset(
    {"set_with_ttl", "expire", "incr", "scan_keys", "set_nx_with_ttl", "delete_if_equals"}
)

_SECRET_PARAM = re.compile(r"([?&][^=&]*(?:pass|secret|token)[^=&]*=)[^&]*", re.IGNORECASE)


class KVStoreUnavailable(ConnectionError):
    """The database behind a kvstore cannot be reached (the message masks credentials)."""

    api_code = "UNAVAILABLE"  # a walker that lets this escape answers 503


def mask_uri(uri: str) -> str:
    """`uri` with its password (and password-like query values) replaced by `***`."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return _SECRET_PARAM.sub(r"\1***", uri)
    cut = len(rest)
    for stop in ("/", "?"):
        idx = rest.find(stop)
        if idx != -1:
            cut = min(cut, idx)
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if colon else f"{user}@{hosts}"
    tail = _SECRET_PARAM.sub(r"\1***", tail)
    return f"{scheme}://{netloc}{tail}"


def scrub(text: str, uri: str) -> str:
    """`text` with every secret of `uri` removed (for driver messages we pass on)."""
    masked = mask_uri(uri)
    text = text.replace(uri, masked)
    netloc = uri.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    if password:
        text = text.replace(password, "***")
    return text


class KVStore:
    """Base class of kvstore drivers: one database (`db_name`) of one `db_type`.

    Common methods: get, set, delete, exists. MongoDB drivers add the document
    methods (find_one, find, insert_one, ...), Redis drivers the key methods
    (set_with_ttl, expire, incr, scan_keys, ...). A method the driver does not
    provide raises NotImplementedError naming the database type it belongs to.
    """

    db_type: str = ""

    def __init__(self, db_name: str) -> None:
        """Bind the store to database `db_name` (a namespace for Redis)."""
        if not isinstance(db_name, str) or not db_name:
            raise ValueError("kvstore db_name must be a non-empty string")
        self.db_name = db_name

    def __repr__(self) -> str:
        """A short description without the URI."""
        return f"<{type(self).__name__} db_type={self.db_type!r} db_name={self.db_name!r}>"

    def _unsupported(self, method: str) -> NotImplementedError:
        if method in MONGODB_METHODS:
            owner = "MongoDB"
        elif method in REDIS_METHODS:
            owner = "Redis"
        else:
            owner = "another"
        return NotImplementedError(
            f"kvstore.{method}() is a {owner} method; this kvstore is "
            f"db_type={self.db_type!r} and does not provide it"
        )

    # ----- common -------------------------------------------------------------

    def get(self, key: str, col_name: str = "default") -> Any:
        """The value stored under `key` in collection `col_name`, or None."""
        raise self._unsupported("get")

    def set(self, key: str, value: Any, col_name: str = "default") -> str:
        """Store `value` under `key` (replacing any previous value); returns the key."""
        raise self._unsupported("set")

    def delete(self, key: str, col_name: str = "default") -> int:
        """Remove `key`; returns how many entries were deleted (0 or 1)."""
        raise self._unsupported("delete")

    def exists(self, key: str, col_name: str = "default") -> bool:
        """True when `key` is stored."""
        raise self._unsupported("exists")

    # ----- MongoDB ------------------------------------------------------------

    def find_one(self, col_name: str, filter: dict, projection: dict | None = None) -> Any:
        """The first document matching `filter`, or None (MongoDB)."""
        raise self._unsupported("find_one")

    def find(self, col_name: str, filter: dict, projection: dict | None = None) -> Any:
        """An iterable cursor over the documents matching `filter` (MongoDB)."""
        raise self._unsupported("find")

    def count_documents(self, col_name: str, filter: dict) -> int:
        """How many documents match `filter` (MongoDB)."""
        raise self._unsupported("count_documents")

    def create_index(
        self, col_name: str, keys: dict, unique: bool = False, name: str | None = None
    ) -> str:
        """Create an index on `keys` ({field: 1 | -1}); returns its name (MongoDB)."""
        raise self._unsupported("create_index")

    def insert_one(self, col_name: str, document: dict) -> Any:
        """Insert one document; the result has `inserted_id` (MongoDB)."""
        raise self._unsupported("insert_one")

    def insert_many(self, col_name: str, documents: list) -> Any:
        """Insert documents; the result has `inserted_ids` (MongoDB)."""
        raise self._unsupported("insert_many")

    def update_one(
        self, col_name: str, filter: dict, update_data: dict, upsert_mode: bool = False
    ) -> Any:
        """Apply `update_data` ({'$set': ...}) to the first match (MongoDB)."""
        raise self._unsupported("update_one")

    def update_many(
        self, col_name: str, filter: dict, update_data: dict, upsert_mode: bool = False
    ) -> Any:
        """Apply `update_data` to every match (MongoDB)."""
        raise self._unsupported("update_many")

    def delete_one(self, col_name: str, filter: dict) -> Any:
        """Delete the first match; the result has `deleted_count` (MongoDB)."""
        raise self._unsupported("delete_one")

    def delete_many(self, col_name: str, filter: dict) -> Any:
        """Delete every match; the result has `deleted_count` (MongoDB)."""
        raise self._unsupported("delete_many")

    def find_by_id(self, col_name: str, id: str) -> Any:
        """The document whose `_id` is the ObjectId hex `id`, or None (MongoDB)."""
        raise self._unsupported("find_by_id")

    def update_by_id(
        self, col_name: str, id: str, update_data: dict, upsert_mode: bool = False
    ) -> Any:
        """Apply `update_data` to the document with ObjectId hex `id` (MongoDB)."""
        raise self._unsupported("update_by_id")

    def delete_by_id(self, col_name: str, id: str) -> Any:
        """Delete the document with ObjectId hex `id` (MongoDB)."""
        raise self._unsupported("delete_by_id")

    # ----- Redis --------------------------------------------------------------

    def set_with_ttl(self, key: str, value: Any, ttl: int, col_name: str = "default") -> bool:
        """Store `value` under `key` for `ttl` seconds (Redis)."""
        raise self._unsupported("set_with_ttl")

    def set_nx_with_ttl(self, key: str, value: Any, ttl: int, col_name: str = "default") -> bool:
        """Store `value` only if `key` is absent, for `ttl` seconds; True if stored (Redis)."""
        raise self._unsupported("set_nx_with_ttl")

    def expire(self, key: str, seconds: int, col_name: str = "default") -> bool:
        """Let `key` expire after `seconds`; False if the key does not exist (Redis)."""
        raise self._unsupported("expire")

    def incr(self, key: str, col_name: str = "default") -> int:
        """Atomically add 1 to the integer at `key` (0 if absent); returns the new value (Redis)."""
        raise self._unsupported("incr")

    def scan_keys(self, pattern: str, col_name: str = "default") -> list[str]:
        """The keys matching the glob `pattern` (`*`, `?`, `[...]`) (Redis)."""
        raise self._unsupported("scan_keys")

    def delete_if_equals(self, key: str, expected_value: Any, col_name: str = "default") -> bool:
        """Atomically delete `key` only if it holds `expected_value` (Redis)."""
        raise self._unsupported("delete_if_equals")


# ----- URI resolution ---------------------------------------------------------


def resolve_uri(
    db_type: str,
    uri: str | None,
    app: AppContext | None = None,
) -> str | None:
    """The URI for `db_type`: explicit `uri`, then the environment, then jac.toml.

    The environment and jac.toml are those of `app` (the current one).

    Returns None only for database types this module does not know; raises
    ValueError naming all three places when a known type has no URI anywhere.
    """
    if uri is not None:
        if not isinstance(uri, str) or not uri:
            raise ValueError("kvstore uri must be a non-empty string or None")
        return uri
    if db_type not in DB_TYPES:
        return None
    app = current_app() if app is None else app
    found = database_uri(db_type, app.settings.env, app.read_toml())
    if found:
        return found
    raise ValueError(
        f"kvstore(db_type={db_type!r}) has no URI: pass uri=..., set {DATABASE_ENV[db_type]}, "
        f"or set {DATABASE_KEY[db_type]} under [{DATABASE_SECTION}] in jac.toml"
    )


# ----- kvstore() -----------------------------------------------------------------


def kvstore(db_name: str = "jac_db", db_type: str = "mongodb", uri: str | None = None) -> KVStore:
    """A kvstore client for database `db_name` on a MongoDB or Redis server.

    `db_type` is 'mongodb' or 'redis' (or a type a plugin adds). `uri` defaults
    to MONGODB_URI / REDIS_URL, then jac.toml. The connection pool behind it is
    shared per process and URI; the plugins asked are the current app's; the first use pings the server and fails within
    seconds, naming the URI with its password masked, if it cannot be reached.
    """
    if not isinstance(db_type, str):
        raise ValueError(f"kvstore db_type must be one of {', '.join(map(repr, DB_TYPES))}")
    if not isinstance(db_name, str) or not db_name:
        raise ValueError("kvstore db_name must be a non-empty string")
    app = current_app()
    resolved = resolve_uri(db_type, uri, app)
    driver = app.pm.hook.jacscale_kvstore_driver(
        db_type=db_type, db_name=db_name, uri=resolved
    )
    if driver is not None:
        return driver
    if db_type in DB_TYPES:
        raise ValueError(
            f"kvstore(db_type={db_type!r}) needs its plugin: pip install '{PLUGIN_HINT[db_type]}'"
        )
    raise ValueError(
        f"unknown kvstore db_type {db_type!r}: allowed are {', '.join(map(repr, DB_TYPES))}"
    )


class guarded:  # noqa: N801 - used as a decorator: `@guarded(...)`
    """Decorate a kvstore driver's methods: a lost connection (one of `errors`) becomes
    `failure(uri, exc)`, a KVStoreUnavailable naming the masked URI of the store
    (its `_uri`)."""

    def __init__(
        self,
        errors: tuple[type[Exception], ...],
        failure: Callable[[str, Exception], KVStoreUnavailable],
    ) -> None:
        self.errors = errors
        self.failure = failure

    def __call__[**P, R](self, method: Callable[P, R]) -> Callable[P, R]:
        """The guarded method."""
        errors, failure = self.errors, self.failure

        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except errors as exc:
                raise failure(args[0]._uri, exc) from None  # type: ignore[attr-defined]

        return wrapper


class ClientCache[C]:
    """One connected client per URI per process, made on first use.

    A client inherited across fork() is not reused: the child connects its own.
    """

    def __init__(self, connect: Callable[[str], C], close: Callable[[C], None]) -> None:
        self._connect = connect
        self._close = close
        self._clients: dict[str, tuple[int, C]] = {}
        self._lock = threading.Lock()

    def get(self, uri: str) -> C:
        """The process's client for `uri`."""
        pid = os.getpid()
        with self._lock:
            entry = self._clients.get(uri)
            if entry is not None and entry[0] == pid:
                return entry[1]
            client = self._connect(uri)
            self._clients[uri] = (pid, client)
            return client

    def __len__(self) -> int:
        return len(self._clients)

    def close_all(self) -> None:
        """Close every client this process opened (shutdown, tests)."""
        pid = os.getpid()
        with self._lock:
            entries = list(self._clients.values())
            self._clients.clear()
        for owner, client in entries:
            if owner == pid:
                self._close(client)

