"""Redis as the shared record cache (L2) in front of the durable store, active when
REDIS_URL (or `[plugins.scale.database] redis_url`) is set.

Keys, under a prefix per durable store (`jacscale:l2:<hash of the store's location>`):
- `<p>:epoch`: a counter; every cached record lives under the current epoch, so
  bumping it drops the whole cache at once (after an outage or a failed
  invalidation);
- `<p>:r:<epoch>:<id hex>`: one record, msgpack, expiring after `ttl` seconds;
- `<p>:g:<id hex>`: the id's invalidation generation (a lease): a reader that
  missed remembers it and may fill the cache only if no invalidation happened
  since, so a slow reader never puts back a record older than a write;
- channel `<p>:inv`: invalidations, `i` + sender token + 16-byte ids, or
  `a` + sender token for "drop everything".
Each operation is one Lua script: one round trip, atomic on the server.

Failure is a miss, never an error: every Redis error makes reads miss, writes
skip and invalidations mark the cache "dirty"; a rate-limited warning is
logged. A background thread holds the subscription, pings through it, and
reconnects with backoff; after any outage (or a failed invalidation) it bumps
the epoch before the cache is used again, and `poll_invalidations` returns None
(drop the whole in-process cache) while the subscription is down and once
after, so nothing stale survives. `poll_invalidations` itself never touches the
network: it runs at the start of every request.

Not supported: Redis Cluster (the scripts build keys from the epoch). A standalone
Redis (or one behind Sentinel) is what this is for.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import msgspec
import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.retry import Retry

from jacscale_core.config import ConfigError
from jacscale_core.store import AnchorRecord
from jacscale_ext.kvstore import mask_uri, scrub

log = logging.getLogger("jacscale.redis.cache")

DEFAULT_TTL_SECONDS = 300
LEASE_TTL_SECONDS = 120  # how long an invalidation generation is remembered
OP_TIMEOUT_SECONDS = 1.0  # every cache command (the store is the fallback)
START_TIMEOUT_SECONDS = 5.0
PING_EVERY_SECONDS = 1.0
DEAD_AFTER_SECONDS = 3.0  # no answer on the subscription for this long: reconnect
MIN_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
WARN_EVERY_SECONDS = 30.0
CHUNK = 500  # ids per script call

_GET = """
local e = redis.call('GET', KEYS[1]) or '0'
local p = ARGV[1]
local vals, gens = {}, {}
for i = 2, #ARGV do
  local v = redis.call('GET', p .. ':r:' .. e .. ':' .. ARGV[i])
  vals[i - 1] = v
  if v then gens[i - 1] = false else gens[i - 1] = redis.call('GET', p .. ':g:' .. ARGV[i]) end
end
return {e, vals, gens}
"""

_PUT = """
local e = redis.call('GET', KEYS[1]) or '0'
if e ~= ARGV[3] then return 0 end
local p = ARGV[1]
local n = 0
for i = 4, #ARGV, 3 do
  local g = redis.call('GET', p .. ':g:' .. ARGV[i]) or ''
  if g == ARGV[i + 1] then
    redis.call('SET', p .. ':r:' .. e .. ':' .. ARGV[i], ARGV[i + 2], 'EX', ARGV[2])
    n = n + 1
  end
end
return n
"""

_INVALIDATE = """
local e = redis.call('GET', KEYS[1]) or '0'
local p = ARGV[1]
for i = 5, #ARGV do
  redis.call('DEL', p .. ':r:' .. e .. ':' .. ARGV[i])
  redis.call('INCR', p .. ':g:' .. ARGV[i])
  redis.call('EXPIRE', p .. ':g:' .. ARGV[i], ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""

_BUMP = """
local e = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return e
"""


class _Wire(msgspec.Struct, array_like=True):
    """A record as cached: compact msgpack (the id is the key)."""

    kind: str
    version: int
    root: bytes | None
    is_root: bool
    state: bytes
    edges: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Wire)


def encode_record(rec: AnchorRecord) -> bytes:
    """A record as the bytes stored in Redis."""
    wire = _Wire(
        rec.kind,
        rec.version,
        rec.root.bytes if rec.root else None,
        rec.is_root,
        rec.state,
        b"".join(e.bytes for e in rec.edges),
    )
    return _encoder.encode(wire)


def decode_record(anchor_id: UUID, data: bytes) -> AnchorRecord:
    """The inverse of encode_record."""
    w = _decoder.decode(data)
    edges = tuple(UUID(bytes=w.edges[i : i + 16]) for i in range(0, len(w.edges), 16))
    root = UUID(bytes=w.root) if w.root else None
    return AnchorRecord(anchor_id, w.kind, w.version, root, w.is_root, w.state, edges)  # type: ignore[arg-type]


class RedisCacheTier:
    """`jacscale_core.store.CacheTier` on Redis (thread-safe; one per worker process)."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        ttl: int = DEFAULT_TTL_SECONDS,
        op_timeout: float = OP_TIMEOUT_SECONDS,
    ) -> None:
        """Prepare a client for `url` (nothing connects before `start`)."""
        self.url = url
        self.location = mask_uri(url)
        self.prefix = f"jacscale:l2:{namespace}"
        self.channel = f"{self.prefix}:inv"
        self.ttl = ttl
        self._epoch_key = f"{self.prefix}:epoch"
        self._token = secrets.token_bytes(16)
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=op_timeout,
            socket_connect_timeout=op_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._get = self.client.register_script(_GET)
        self._put = self.client.register_script(_PUT)
        self._invalidate = self.client.register_script(_INVALIDATE)
        self._bump = self.client.register_script(_BUMP)
        self._lock = threading.Lock()
        self._pending: set[UUID] = set()
        self._drop_all = True
        self._live = False  # subscribed (and the epoch bumped after an outage)
        self._healthy = True  # the last cache command worked
        self._dirty = False  # an invalidation was lost: bump the epoch before reading
        self._check = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leases = threading.local()
        self._last_warning: dict[str, float] = {}
        self._down_since: float | None = None
        self.error: str | None = None
        self.stats = {
            "hits": 0,
            "misses": 0,
            "puts": 0,
            "invalidated": 0,
            "received": 0,
            "errors": 0,
        }

    # -- life cycle ------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Check Redis answers, then subscribe in a background thread (waits at most `timeout`).

        Raises RuntimeError naming the masked URL when Redis does not answer.
        """
        try:
            self.client.ping()
        except AuthenticationError as exc:
            raise RuntimeError(
                f"Redis cache at {self.location} refused the credentials: {self._reason(exc)}"
            ) from None
        except (RedisError, OSError) as exc:
            raise RuntimeError(
                f"Redis cache at {self.location} is unreachable: {self._reason(exc)}"
            ) from None
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._listen_forever, name="jacscale-redis-cache", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._live:
            time.sleep(0.01)
        if not self._live:
            self.close()
            raise RuntimeError(
                f"Redis cache at {self.location}: could not subscribe to {self.channel}"
            )

    def close(self) -> None:
        """Stop the subscriber and close the connection pool."""
        self._stop.set()
        self._check.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=DEAD_AFTER_SECONDS + 2)
        with self._lock:
            self._live = False
        self.client.close()

    @property
    def subscribed(self) -> bool:
        """True while the subscriber thread holds a live subscription."""
        return self._live

    def status(self) -> tuple[bool, str]:
        """(usable, detail) for /readyz."""
        if self._usable():
            return True, f"{self.location} ({self.prefix})"
        return False, f"{self.location}: {self.error or 'not connected'} (serving from the store)"

    # -- CacheTier ---------------------------------------------------------------
    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Cached records among `ids` (a miss on any Redis error)."""
        wanted = list(ids)
        self._leases.value = None
        if not wanted or not self._usable():
            return {}
        found: dict[UUID, AnchorRecord] = {}
        leases: dict[UUID, bytes] = {}
        epoch = b"0"
        try:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                epoch, values, gens = self._get(
                    keys=[self._epoch_key], args=[self.prefix, *(i.hex for i in chunk)]
                )
                for anchor_id, value, gen in zip(chunk, values, gens, strict=True):
                    if value is None:
                        leases[anchor_id] = gen or b""
                        continue
                    try:
                        found[anchor_id] = decode_record(anchor_id, value)
                    except (msgspec.DecodeError, ValueError, TypeError) as exc:
                        self._warn(
                            "decode",
                            "Redis cache: ignoring an unreadable entry for %s: %s",
                            anchor_id.hex,
                            exc,
                        )
        except (RedisError, OSError, ValueError) as exc:
            self._failed("read", exc)
            return {}
        self.stats["hits"] += len(found)
        self.stats["misses"] += len(leases)
        self._leases.value = (epoch, leases)
        return found

    def put_many(self, records: Iterable[AnchorRecord]) -> None:
        """Cache records this thread just missed and loaded (never over a newer write)."""
        lease = getattr(self._leases, "value", None)
        self._leases.value = None
        if lease is None or not self._usable():
            return
        epoch, leases = lease
        args: list[Any] = []
        for rec in records:
            token = leases.get(rec.id)
            if token is not None:
                args.extend((rec.id.hex, token, encode_record(rec)))
        if not args:
            return
        try:
            for start in range(0, len(args), CHUNK * 3):
                chunk = args[start : start + CHUNK * 3]
                self.stats["puts"] += int(
                    self._put(keys=[self._epoch_key], args=[self.prefix, self.ttl, epoch, *chunk])
                )
        except (RedisError, OSError, ValueError) as exc:
            self._failed("write", exc)

    def invalidate(self, ids: Iterable[UUID]) -> None:
        """Drop `ids` from Redis and tell every other process (a lost one dirties the cache)."""
        wanted = list(ids)
        if not wanted:
            return
        if not self._healthy:
            self._mark_dirty()
            return
        try:
            for start in range(0, len(wanted), CHUNK):
                chunk = wanted[start : start + CHUNK]
                message = b"i" + self._token + b"".join(i.bytes for i in chunk)
                self._invalidate(
                    keys=[self._epoch_key],
                    args=[
                        self.prefix,
                        LEASE_TTL_SECONDS,
                        self.channel,
                        message,
                        *(i.hex for i in chunk),
                    ],
                )
        except (RedisError, OSError, ValueError) as exc:
            self._mark_dirty()
            self._failed("invalidate", exc)
            return
        self.stats["invalidated"] += len(wanted)

    def poll_invalidations(self) -> list[UUID] | None:
        """Ids other processes invalidated since the last call; None: drop everything.

        No network: the subscriber thread collected them.
        """
        with self._lock:
            if not self._live:
                self._drop_all = True
                return None
            if self._drop_all:
                self._drop_all = False
                self._pending.clear()
                return None
            if not self._pending:
                return []
            out = list(self._pending)
            self._pending.clear()
            return out

    # -- state ---------------------------------------------------------------------
    def _usable(self) -> bool:
        return self._live and self._healthy and not self._dirty

    def _mark_dirty(self) -> None:
        with self._lock:
            self._dirty = True
        self._check.set()

    def _failed(self, action: str, exc: BaseException) -> None:
        self.stats["errors"] += 1
        with self._lock:
            self._healthy = False
            self._drop_all = True
            self.error = f"{action} failed: {self._reason(exc)}"
            if self._down_since is None:
                self._down_since = time.monotonic()
        self._warn(
            action,
            "Redis cache at %s: %s failed (serving from the store): %s",
            self.location,
            action,
            self._reason(exc),
        )
        self._check.set()

    def _reason(self, exc: BaseException) -> str:
        return scrub(str(exc), self.url)[:200] or type(exc).__name__

    def _warn(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last_warning.get(key)
        if last is not None and now - last < WARN_EVERY_SECONDS:
            return
        self._last_warning[key] = now
        log.warning(message, *args)

    # -- the subscriber thread -----------------------------------------------------
    def _listen_forever(self) -> None:
        backoff = MIN_BACKOFF_SECONDS
        bump = False  # the first subscription needs no bump: nothing was missed yet
        while not self._stop.is_set():
            pubsub = self.client.pubsub()
            try:
                self._subscribe(pubsub)
                if bump or self._dirty:
                    self._bump_epoch()
                    bump = False
                with self._lock:
                    self._live = True
                    self._healthy = True
                    self._dirty = False
                    self._drop_all = True  # messages sent while we were away are lost
                    self.error = None
                    if self._down_since is not None:
                        log.info(
                            "Redis cache at %s: back after %.1fs",
                            self.location,
                            time.monotonic() - self._down_since,
                        )
                        self._down_since = None
                backoff = MIN_BACKOFF_SECONDS
                self._receive(pubsub)
            except (RedisError, OSError, ValueError) as exc:
                bump = True
                self.stats["errors"] += 1
                with self._lock:
                    self._live = False
                    self._drop_all = True
                    self.error = f"subscription lost: {self._reason(exc)}"
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                self._warn(
                    "subscribe", "Redis cache at %s: %s; reconnecting", self.location, self.error
                )
            finally:
                try:
                    pubsub.close()
                except (RedisError, OSError) as exc:
                    log.debug("Redis cache: closing the old subscription failed: %s", exc)
            self._stop.wait(backoff)
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _subscribe(self, pubsub: Any) -> None:
        pubsub.subscribe(self.channel)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.2)
            if message is not None and message.get("type") == "subscribe":
                return
        raise ConnectionError(f"no subscribe confirmation within {START_TIMEOUT_SECONDS}s")

    def _bump_epoch(self) -> None:
        epoch = self._bump(keys=[self._epoch_key], args=[self.channel, b"a" + self._token])
        log.info(
            "Redis cache at %s: epoch %s (everything cached before is dropped)",
            self.location,
            epoch,
        )

    def _receive(self, pubsub: Any) -> None:
        last_seen = next_ping = time.monotonic()
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            now = time.monotonic()
            if message is not None:
                last_seen = now
                if message.get("type") == "message":
                    self._handle(message["data"])
            if self._check.is_set():
                self._check.clear()
                self._recheck()
            if now >= next_ping:
                pubsub.ping()
                next_ping = now + PING_EVERY_SECONDS
            if now - last_seen > DEAD_AFTER_SECONDS:
                raise ConnectionError(f"no answer on the subscription for {DEAD_AFTER_SECONDS}s")

    def _recheck(self) -> None:
        """After a failed command: ping (and bump if an invalidation was lost), then trust Redis again."""
        if self._healthy and not self._dirty:
            return
        self.client.ping()
        if self._dirty:
            self._bump_epoch()
        with self._lock:
            self._healthy = True
            self._dirty = False
            self._drop_all = True
            self.error = None

    def _handle(self, data: bytes) -> None:
        if len(data) < 17 or data[1:17] == self._token:
            return
        kind, body = data[:1], data[17:]
        with self._lock:
            if kind == b"a":
                self._drop_all = True
                return
            if kind != b"i" or len(body) % 16:
                return
            for start in range(0, len(body), 16):
                self._pending.add(UUID(bytes=body[start : start + 16]))
            self.stats["received"] += len(body) // 16


# --------------------------------------------------------------------------
# Opening (the hooks are in jacscale_redis.hooks.cache_tier)
# --------------------------------------------------------------------------


def namespace_for(location: str) -> str:
    """A key prefix per durable store: processes sharing a store share cache entries.

    A store without a URI is a local file (SQLite): each host has its own, so the
    host name is part of the namespace.
    """
    where = location if "://" in location else f"{socket.gethostname()}:{location}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def open_tier(url: str, store_location: str) -> RedisCacheTier:
    """The cache at `url` for the store at `store_location`; a bad URL is a ConfigError."""
    try:
        return RedisCacheTier(url, namespace_for(store_location))
    except (RedisError, ValueError) as exc:
        raise ConfigError(
            f"REDIS_URL {mask_uri(url)} is not a valid Redis URL: {scrub(str(exc), url)}"
        ) from None
