"""RedisCacheTier (L2) against a real redis-server (tests/fixtures/redis_server.py).

Two tier objects on one Redis behave like two worker processes. The failure
tests use `fresh_redis` (a server of their own to kill, pause and restart);
the served tests run `jacscale serve` with two workers and REDIS_URL set.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from jacscale_redis import cache_tier
from jacscale_redis.cache_tier import RedisCacheTier, decode_record, encode_record
from jacscale_redis.testing import RedisServer

from jacscale_core.store import AnchorRecord
from jacscale_core.testing import free_port, running_server

# The repository's example programs (data for these tests, nothing imported).
REPO = Path(__file__).resolve().parents[3]
TEST_APPS = REPO / "tests" / "apps"


def record(version: int = 1, anchor_id: uuid.UUID | None = None) -> AnchorRecord:
    """A node record with two edges."""
    return AnchorRecord(
        anchor_id or uuid.uuid4(), "node", version, uuid.uuid4(), False,
        b"state-%d" % version, (uuid.uuid4(), uuid.uuid4()),
    )  # fmt: skip


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout}s")


@pytest.fixture
def tiers(redis_server: str) -> Iterator[Callable[[], RedisCacheTier]]:
    """Starts tiers sharing one fresh namespace (each one like a worker process)."""
    namespace = uuid.uuid4().hex[:12]
    started: list[RedisCacheTier] = []

    def start() -> RedisCacheTier:
        tier = RedisCacheTier(redis_server, namespace)
        tier.start()
        tier.poll_invalidations()  # the first poll after subscribing drops everything
        started.append(tier)
        return tier

    yield start
    for tier in started:
        tier.close()


def fill(tier: RedisCacheTier, rec: AnchorRecord) -> None:
    """What the kernel does on a miss: look, load from the store, put."""
    assert tier.get_many([rec.id]) == {}
    tier.put_many([rec])


# --------------------------------------------------------------------------
# The cache itself
# --------------------------------------------------------------------------


def test_records_round_trip_compactly_with_a_ttl(tiers: Callable[[], RedisCacheTier]) -> None:
    tier = tiers()
    rec = record()
    assert decode_record(rec.id, encode_record(rec)) == rec
    assert len(encode_record(rec)) < len(rec.state) + 2 * 16 + 16 + 20
    fill(tier, rec)
    assert tier.get_many([rec.id, uuid.uuid4()]) == {rec.id: rec}
    key = f"{tier.prefix}:r:0:{rec.id.hex}"
    assert 0 < tier.client.ttl(key) <= cache_tier.DEFAULT_TTL_SECONDS


def test_a_put_without_a_miss_first_is_not_cached(tiers: Callable[[], RedisCacheTier]) -> None:
    tier = tiers()
    rec = record()
    tier.put_many([rec])  # no lease: this thread never looked
    assert tier.get_many([rec.id]) == {}


def test_an_invalidation_reaches_other_processes_not_the_sender(
    tiers: Callable[[], RedisCacheTier],
) -> None:
    one, two = tiers(), tiers()
    rec = record()
    fill(one, rec)
    assert two.get_many([rec.id]) == {rec.id: rec}  # shared between workers
    one.invalidate([rec.id])
    assert two.get_many([rec.id]) == {}  # gone from Redis before invalidate() returned
    wait_for(lambda: two._pending == {rec.id})
    assert two.poll_invalidations() == [rec.id]
    assert two.poll_invalidations() == []
    assert one.poll_invalidations() == []  # its own message is not news to it


def test_a_slow_reader_never_puts_back_an_older_record(tiers: Callable[[], RedisCacheTier]) -> None:
    reader, writer = tiers(), tiers()
    old = record(version=1)
    assert reader.get_many([old.id]) == {}  # miss; the reader loads v1 from the store...
    writer.invalidate([old.id])  # ...while another worker commits v2
    reader.put_many([old])  # the late fill is refused
    assert writer.get_many([old.id]) == {}
    new = record(version=2, anchor_id=old.id)
    writer.put_many([new])
    assert reader.get_many([old.id]) == {old.id: new}


def test_polling_for_invalidations_never_touches_the_network(
    tiers: Callable[[], RedisCacheTier], monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = tiers()

    def no_io(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("poll_invalidations sent a Redis command")

    monkeypatch.setattr(tier.client, "execute_command", no_io)
    started = time.perf_counter()
    for _ in range(20_000):
        assert tier.poll_invalidations() == []
    assert time.perf_counter() - started < 1.0


def test_a_lost_invalidation_bumps_the_epoch_before_the_cache_is_used_again(
    tiers: Callable[[], RedisCacheTier], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, other = tiers(), tiers()
    rec = record()
    fill(other, rec)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("connection reset by peer")

    monkeypatch.setattr(writer, "_invalidate", broken)
    writer.invalidate([rec.id])  # the write is committed; the cache could not be told
    assert writer.get_many([rec.id]) == {}  # the writer does not trust the cache now
    assert writer.status()[0] is False
    monkeypatch.undo()
    wait_for(lambda: writer.status()[0])  # its subscriber pinged and bumped the epoch
    assert other.get_many([rec.id]) == {}  # the possibly stale entry is unreachable
    wait_for(lambda: other._drop_all)
    assert other.poll_invalidations() is None  # ...and every worker drops its own cache


def test_an_unreachable_redis_fails_start_up_with_the_password_masked() -> None:
    tier = RedisCacheTier(f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0", "x")
    started = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        tier.start()
    assert time.monotonic() - started < 5
    assert "redis://:***@127.0.0.1" in str(info.value) and "hunter2" not in str(info.value)
    tier.close()


def test_wrong_credentials_fail_start_up_saying_so(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, extra_args=["--requirepass", "right-pw"]).start()
    try:
        for url in (server.url, server.url.replace("redis://", "redis://:wrong-pw@")):
            tier = RedisCacheTier(url, "auth")
            with pytest.raises(RuntimeError, match="refused the credentials") as info:
                tier.start()
            assert "wrong-pw" not in str(info.value)
            tier.close()
        tier = RedisCacheTier(server.url.replace("redis://", "redis://:right-pw@"), "auth")
        tier.start()
        assert tier.status()[0] is True
        tier.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------
# Redis going away
# --------------------------------------------------------------------------


def test_redis_killed_then_restarted_degrades_to_misses_and_recovers(
    fresh_redis: RedisServer,
) -> None:
    tier = RedisCacheTier(fresh_redis.url, "kill")
    tier.start()
    try:
        rec = record()
        tier.poll_invalidations()
        fill(tier, rec)
        fresh_redis.kill()
        started = time.monotonic()
        assert tier.get_many([rec.id]) == {}
        tier.put_many([rec])
        tier.invalidate([rec.id])
        assert tier.get_many([rec.id]) == {}
        assert time.monotonic() - started < 2.5
        wait_for(lambda: not tier.subscribed, timeout=5)
        assert tier.poll_invalidations() is None  # while down, every request drops L1
        assert tier.poll_invalidations() is None
        assert tier.status()[0] is False
        fresh_redis.start()
        wait_for(lambda: tier.status()[0], timeout=10)
        assert tier.poll_invalidations() is None  # once more after the outage
        assert tier.poll_invalidations() == []
        fill(tier, rec)
        assert tier.get_many([rec.id]) == {rec.id: rec}  # used again
    finally:
        tier.close()


def test_a_frozen_redis_costs_at_most_the_timeout_then_is_skipped(fresh_redis: RedisServer) -> None:
    tier = RedisCacheTier(fresh_redis.url, "pause")
    tier.start()
    try:
        rec = record()
        tier.poll_invalidations()
        fill(tier, rec)
        fresh_redis.pause()
        started = time.monotonic()
        assert tier.get_many([rec.id]) == {}
        assert time.monotonic() - started < cache_tier.OP_TIMEOUT_SECONDS + 1
        started = time.monotonic()
        assert tier.get_many([rec.id]) == {}  # skipped: no second wait
        tier.invalidate([rec.id])
        assert time.monotonic() - started < 0.2
        wait_for(lambda: not tier.subscribed, timeout=8)  # the silent subscription is given up
        assert tier.poll_invalidations() is None
        fresh_redis.resume()
        wait_for(lambda: tier.status()[0], timeout=15)
        tier.poll_invalidations()
        assert tier.get_many([rec.id]) == {}  # the epoch moved on: the old entry is gone
    finally:
        tier.close()


# --------------------------------------------------------------------------
# Served: two workers with REDIS_URL
# --------------------------------------------------------------------------


def cache_keys(url: str) -> list[bytes]:
    """Record keys of the L2 cache in this Redis."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        return [k for k in client.scan_iter(match="jacscale:l2:*:r:*", count=1000)]
    finally:
        client.close()


def write_then_read_everywhere(
    client: httpx.Client, prefix: str, names: list[str], rounds: int
) -> None:
    """Create an item, then list: each list (on any worker) must show every item so far."""
    for i in range(rounds):
        name = f"{prefix}{i}"
        r = client.post("/walker/make_item", json={"name": name})
        assert r.status_code == 200, r.text
        names.append(name)
        r = client.post("/walker/items")
        assert r.status_code == 200, r.text
        assert r.json()["data"]["reports"][0] == names


def test_two_workers_share_the_cache_survive_its_loss_and_use_it_again(
    fresh_redis: RedisServer, tmp_path: Path
) -> None:
    env = {"REDIS_URL": fresh_redis.url}
    with running_server(TEST_APPS / "kernel_app.jac", tmp_path, workers=2, env=env) as base:
        limits = httpx.Limits(max_keepalive_connections=0)  # each request may go to either worker
        with httpx.Client(base_url=base, timeout=15, limits=limits) as client:
            names: list[str] = []
            write_then_read_everywhere(client, "a", names, 15)
            assert cache_keys(fresh_redis.url), "the cache was never filled"

            fresh_redis.kill()
            write_then_read_everywhere(client, "b", names, 10)  # every request still succeeds
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis_cache"]["ok"] is False

            fresh_redis.start()
            assert cache_keys(fresh_redis.url) == []  # a new, empty Redis

            def both_ready() -> bool:
                return all(client.get("/readyz").status_code == 200 for _ in range(6))

            wait_for(both_ready, timeout=20)
            write_then_read_everywhere(client, "c", names, 10)
            assert cache_keys(fresh_redis.url), "the cache was not used again"
