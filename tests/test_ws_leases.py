"""Connection leases in the shared store: caps across workers, release, refresh, expiry.

Each "worker" here is its own SqliteGraphStore connection to one database file,
as `--workers N` has; the clock is a fake one, so expiry needs no waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jacscale_core.store import StoreUnavailable
from jacscale_ext.sqlite_store import SqliteGraphStore
from jacscale_ext.websockets.config import WebSocketConfig
from jacscale_ext.websockets.connection import Connection, TokenBucket
from jacscale_ext.websockets.hub import Hub, Refused, TryLater
from jacscale_ext.websockets.leases import COLLECTION, Leases, LeaseStore, LeaseUnavailable


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def workers(tmp_path: Path, clock: Clock) -> Iterator[list[LeaseStore]]:
    """Two workers' lease stores on one SQLite file; leases last 30 s."""
    graphs = [SqliteGraphStore(tmp_path / "jacscale.db") for _ in range(2)]
    yield [LeaseStore(g.docs, 30.0, clock) for g in graphs]
    for g in graphs:
        g.close()


def test_the_cap_counts_every_worker(workers: list[LeaseStore]) -> None:
    a, b = workers
    assert a.acquire("user:u1", 3) is not None
    assert b.acquire("user:u1", 3) is not None
    assert a.acquire("user:u1", 3) is not None
    assert b.acquire("user:u1", 3) is None
    assert a.acquire("user:u1", 3) is None
    assert b.acquire("user:u2", 3) is not None  # another identity has its own slots


def test_release_frees_a_slot_for_any_worker(workers: list[LeaseStore]) -> None:
    a, b = workers
    first = a.acquire("ip:10.0.0.1", 2)
    second = a.acquire("ip:10.0.0.1", 2)
    assert first is not None and second is not None
    assert b.acquire("ip:10.0.0.1", 2) is None
    a.release(second)
    assert b.acquire("ip:10.0.0.1", 2) is not None
    assert a.acquire("ip:10.0.0.1", 2) is None


def test_a_dead_workers_leases_expire(workers: list[LeaseStore], clock: Clock) -> None:
    dead, alive = workers
    assert dead.acquire("user:u1", 2) is not None
    assert dead.acquire("user:u1", 2) is not None
    assert alive.acquire("user:u1", 2) is None
    clock.now += 29.0
    assert alive.acquire("user:u1", 2) is None  # not yet expired
    clock.now += 1.5
    assert alive.acquire("user:u1", 2) is not None  # the dead worker never refreshed
    assert alive.acquire("user:u1", 2) is not None
    assert alive.acquire("user:u1", 2) is None


def test_refresh_keeps_a_live_workers_leases(workers: list[LeaseStore], clock: Clock) -> None:
    live, other = workers
    lease = live.acquire("user:u1", 1)
    assert lease is not None
    for _ in range(5):
        clock.now += 20.0
        assert live.refresh([lease]) == []
        assert other.acquire("user:u1", 1) is None
    clock.now += 31.0
    assert other.acquire("user:u1", 1) is not None
    assert live.refresh([lease]) == [lease]  # expired and retaken: reported lost, not stolen back


def test_a_retaken_slot_is_not_released_by_its_old_holder(
    workers: list[LeaseStore], clock: Clock
) -> None:
    old, new = workers
    stale = old.acquire("user:u1", 1)
    assert stale is not None
    clock.now += 31.0
    fresh = new.acquire("user:u1", 1)
    assert fresh is not None
    old.release(stale)
    assert new.acquire("user:u1", 1) is None  # the new holder keeps its slot


def test_sweep_deletes_only_expired_leases(workers: list[LeaseStore], clock: Clock) -> None:
    a, b = workers
    assert a.acquire("user:gone", 1) is not None
    clock.now += 20.0
    assert b.acquire("user:here", 1) is not None
    clock.now += 15.0
    assert b.sweep() == 1
    assert [d["_id"] for d in b.docs.find(COLLECTION, {})] == ["user:here#0"]


def test_leases_refresh_in_one_batch_and_release_on_close(
    workers: list[LeaseStore], clock: Clock
) -> None:
    a, b = workers

    async def scenario() -> None:
        leases = Leases(a, refresh_seconds=3600.0)
        held = [await leases.acquire("user:u1", 3) for _ in range(3)]
        assert all(held) and await leases.acquire("user:u1", 3) is None
        assert len(leases.held) == 3
        clock.now += 25.0
        await leases.refresh()
        clock.now += 25.0  # 50 s after taking, 25 s after the refresh: still held
        assert b.acquire("user:u1", 3) is None
        lease = held[0]
        assert lease is not None
        leases.release(lease)
        await leases.close(5.0)  # waits for the pending release
        assert b.acquire("user:u1", 3) is not None

    asyncio.run(scenario())


class FailingDocs:
    """A document store that is down."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any) -> Any:
            raise StoreUnavailable("the store is down")

        return fail


def test_a_store_failure_is_reported_not_counted_as_a_free_slot(clock: Clock) -> None:
    async def scenario() -> None:
        leases = Leases(LeaseStore(FailingDocs(), 30.0, clock), refresh_seconds=10.0)  # type: ignore[arg-type]
        with pytest.raises(LeaseUnavailable, match="the store is down"):
            await leases.acquire("user:u1", 3)
        assert not leases.held

    asyncio.run(scenario())


def test_lease_settings_are_checked() -> None:
    assert WebSocketConfig().problems() == []
    problems = WebSocketConfig(lease_seconds=10.0, lease_refresh_seconds=10.0).problems()
    assert problems == [
        "[plugins.scale.websocket] lease_refresh_seconds must be less than lease_seconds"
    ]
    assert (
        "[plugins.scale.websocket] lease_seconds must be positive"
        in WebSocketConfig(lease_seconds=0).problems()
    )


def conn(identity: str) -> Connection:
    """A registered-but-never-used socket (the hub does not touch the WebSocket)."""
    return Connection(
        None,  # type: ignore[arg-type]
        "Echo",
        identity,
        queue_size=4,
        send_timeout=1.0,
        bucket=TokenBucket(1.0, 1),
    )


def test_hub_refuses_with_try_later_when_the_store_fails(clock: Clock) -> None:
    async def scenario() -> None:
        hub = Hub(10, 2, 2, Leases(LeaseStore(FailingDocs(), 30.0, clock), 10.0))  # type: ignore[arg-type]
        with pytest.raises(TryLater, match="try again later"):
            await hub.admit(conn("user:u1"))
        assert hub.count == 0 and not hub.by_identity  # not let in uncounted

    asyncio.run(scenario())


def test_hub_caps_and_rekeys_through_the_shared_leases(workers: list[LeaseStore]) -> None:
    a, b = workers

    async def scenario() -> None:
        hub_a = Hub(10, 2, 1, Leases(a, 3600.0))
        hub_b = Hub(10, 2, 1, Leases(b, 3600.0))
        first, second = conn("user:u1"), conn("user:u1")
        await hub_a.admit(first)
        await hub_b.admit(second)
        with pytest.raises(Refused, match=r"too many connections for this user \(2\)"):
            await hub_b.admit(conn("user:u1"))
        anonymous = conn("ip:10.0.0.9")
        await hub_b.admit(anonymous)
        with pytest.raises(Refused, match="without a token from this address"):
            await hub_a.admit(conn("ip:10.0.0.9"))
        with pytest.raises(Refused, match="for this user"):
            await hub_b.rekey(anonymous, "user:u1")  # a token on the anonymous socket: one too many
        assert anonymous.identity == "ip:10.0.0.9"
        hub_a.remove(first)
        assert hub_a.leases is not None
        await hub_a.leases.close(5.0)
        await hub_b.rekey(anonymous, "user:u1")  # the freed slot; the address slot is given back
        assert anonymous.identity == "user:u1"
        assert hub_b.leases is not None
        await hub_b.leases.close(5.0)  # the address slot's release has run
        await hub_a.admit(conn("ip:10.0.0.9"))

    asyncio.run(scenario())
