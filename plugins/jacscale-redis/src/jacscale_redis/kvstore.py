"""The kvstore driver for db_type 'redis' (redis-py, sync: it runs inside walkers).

Keys live at `{db_name}:{col_name}:{key}`; values are stored as JSON. One
client (and connection pool) per process and URL, created on first use with
bounded timeouts and checked with PING, so an unreachable server fails within
seconds with the URL (password masked) in the message. Connection failures
during use raise `KVStoreUnavailable`; the pool reconnects once the server is back.
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jacscale_ext.kvstore import (
    ClientCache,
    KVStore,
    KVStoreUnavailable,
    guarded,
    mask_uri,
    scrub,
)

# Used unless the URL sets its own (`?socket_timeout=0.5` ...).
DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    "socket_timeout": 10.0,
    "health_check_interval": 30,
}

_DELETE_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")



def _failure(uri: str, exc: Exception) -> KVStoreUnavailable:
    masked = mask_uri(uri)
    text = scrub(str(exc), uri)
    if isinstance(exc, AuthenticationError):
        return KVStoreUnavailable(f"Redis at {masked} refused the credentials: {text}")
    return KVStoreUnavailable(f"Redis at {masked} is unreachable: {text}")


def _connect(uri: str) -> redis.Redis:
    try:
        client = redis.Redis.from_url(uri, **DEFAULT_OPTIONS)
    except (RedisError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid Redis URL {mask_uri(uri)}: {scrub(str(exc), uri)}") from None
    try:
        client.ping()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        client.close()
        raise _failure(uri, exc) from None
    except RedisError as exc:
        client.close()
        raise KVStoreUnavailable(
            f"Redis at {mask_uri(uri)} refused PING: {scrub(str(exc), uri)}"
        ) from None
    return client


_clients: ClientCache[redis.Redis] = ClientCache(_connect, lambda client: client.close())


def get_client(uri: str) -> redis.Redis:
    """The process's client for `uri`, connected and pinged on first use."""
    return _clients.get(uri)


def close_clients() -> None:
    """Close every client this process opened (shutdown, tests)."""
    _clients.close_all()


_guarded = guarded((RedisConnectionError, RedisTimeoutError), _failure)


def _encode(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Redis kvstore values must be JSON-serialisable: {exc}") from None


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # written by another client: hand back the text
        return raw.decode("utf-8", errors="replace")


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("kvstore key must be a non-empty string")
    return key


def _check_seconds(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive whole number of seconds, got {value!r}")
    return value


class RedisKVStore(KVStore):
    """A Redis namespace (`db_name`) as a kvstore: JSON values, TTLs, counters."""

    db_type = "redis"

    def __init__(self, client: redis.Redis, db_name: str, uri: str) -> None:
        """Use keys under `db_name:` through the shared `client` connected to `uri`."""
        super().__init__(db_name)
        self._client = client
        self._uri = uri

    def _key(self, col_name: str, key: str) -> str:
        if not isinstance(col_name, str) or not col_name:
            raise ValueError("kvstore col_name must be a non-empty string")
        return f"{self.db_name}:{col_name}:{key}"

    # ----- common -------------------------------------------------------------

    @_guarded
    def get(self, key: str, col_name: str = "default") -> Any:
        """The value stored under `key`, or None."""
        raw = self._client.get(self._key(col_name, _check_key(key)))
        return None if raw is None else _decode(raw)  # type: ignore[arg-type]

    @_guarded
    def set(self, key: str, value: Any, col_name: str = "default") -> str:
        """Store `value` (JSON) under `key` without expiry; returns `key`."""
        self._client.set(self._key(col_name, _check_key(key)), _encode(value))
        return key

    @_guarded
    def delete(self, key: str, col_name: str = "default") -> int:
        """Delete `key`; returns 0 or 1."""
        return int(self._client.delete(self._key(col_name, _check_key(key))))  # type: ignore[arg-type]

    @_guarded
    def exists(self, key: str, col_name: str = "default") -> bool:
        """True when `key` is stored."""
        return bool(self._client.exists(self._key(col_name, _check_key(key))))

    # ----- Redis --------------------------------------------------------------

    @_guarded
    def set_with_ttl(self, key: str, value: Any, ttl: int, col_name: str = "default") -> bool:
        """Store `value` under `key` for `ttl` seconds."""
        seconds = _check_seconds(ttl, "ttl")
        full = self._key(col_name, _check_key(key))
        return bool(self._client.set(full, _encode(value), ex=seconds))

    @_guarded
    def set_nx_with_ttl(self, key: str, value: Any, ttl: int, col_name: str = "default") -> bool:
        """Store `value` for `ttl` seconds only if `key` is absent; True if stored."""
        seconds = _check_seconds(ttl, "ttl")
        full = self._key(col_name, _check_key(key))
        return bool(self._client.set(full, _encode(value), ex=seconds, nx=True))

    @_guarded
    def expire(self, key: str, seconds: int, col_name: str = "default") -> bool:
        """Let `key` expire in `seconds`; False if it does not exist."""
        secs = _check_seconds(seconds, "seconds")
        return bool(self._client.expire(self._key(col_name, _check_key(key)), secs))

    @_guarded
    def incr(self, key: str, col_name: str = "default") -> int:
        """Atomically add 1 to the integer at `key` (starting from 0); returns the new value."""
        return int(self._client.incr(self._key(col_name, _check_key(key))))  # type: ignore[arg-type]

    @_guarded
    def scan_keys(self, pattern: str, col_name: str = "default") -> list[str]:
        """The keys of `col_name` matching the glob `pattern`, without their prefix."""
        if not isinstance(pattern, str) or not pattern:
            raise ValueError("scan_keys pattern must be a non-empty glob such as 'session:*'")
        prefix = self._key(col_name, "")
        match = _GLOB_SPECIAL.sub(r"\\\1", prefix) + pattern
        keys = []
        for raw in self._client.scan_iter(match=match, count=500):
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            keys.append(text[len(prefix) :])
        return sorted(keys)

    @_guarded
    def delete_if_equals(self, key: str, expected_value: Any, col_name: str = "default") -> bool:
        """Atomically delete `key` only if it still holds `expected_value` (a lock release)."""
        full = self._key(col_name, _check_key(key))
        result = self._client.eval(_DELETE_IF_EQUALS, 1, full, _encode(expected_value))
        return int(result) == 1  # type: ignore[arg-type]


def open_kvstore(db_name: str, uri: str | None) -> RedisKVStore:
    """The kvstore `db_name` on the Redis server at `uri` (its hook: jacscale_redis.hooks.kvstore)."""
    if not uri:
        raise ValueError("kvstore(db_type='redis') needs a URL")
    return RedisKVStore(get_client(uri), db_name, uri)
