"""The broadcast buses on their own: the embedded SQLite bus and the Redis pub/sub bus.

End-to-end broadcasts across `--workers 2` and across servers are in
test_broadcast_e2e.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from jacscale_redis.broadcast import RedisBroadcastBus

from jacscale_ext.broadcast import BroadcastBus, BroadcastMessage, SqliteBroadcastBus
from tests.fixtures.redis_server import RedisServer, free_port


def message(bus: BroadcastBus, text: str, walker: str = "ChatRoom") -> BroadcastMessage:
    """A broadcast from `bus`."""
    return BroadcastMessage(walker=walker, audience="public", payload=text, origin=bus.origin,
                            created=time.time())  # fmt: skip


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until `check()` holds (or fail)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async test body with a hard timeout."""
    return asyncio.run(asyncio.wait_for(coro(), 30))


# --------------------------------------------------------------------------
# SQLite (the embedded default)
# --------------------------------------------------------------------------


def test_sqlite_bus_carries_messages_to_other_processes_only(tmp_path: Path) -> None:
    async def body() -> None:
        a, b = SqliteBroadcastBus(tmp_path / "b.db"), SqliteBroadcastBus(tmp_path / "b.db")
        got_a: list[str] = []
        got_b: list[str] = []
        await a.start(lambda m: got_a.append(m.payload))
        await b.start(lambda m: got_b.append(m.payload))
        a.set_listening(True)
        b.set_listening(True)
        try:
            started = time.monotonic()
            for i in range(5):
                await a.publish(message(a, f"m{i}"))
            await until(lambda: len(got_b) == 5)
            assert time.monotonic() - started < 1.0
            assert got_b == [f"m{i}" for i in range(5)]
            await asyncio.sleep(0.1)
            assert got_a == []  # its own messages were delivered locally already
            assert a.status() == (True, "sqlite b.db")
        finally:
            await a.close()
            await b.close()

    run(body)


def test_sqlite_bus_skips_history_from_before_anyone_listened(tmp_path: Path) -> None:
    async def body() -> None:
        a, b = SqliteBroadcastBus(tmp_path / "b.db"), SqliteBroadcastBus(tmp_path / "b.db")
        got: list[str] = []
        await a.start(lambda m: None)
        await b.start(lambda m: got.append(m.payload))
        try:
            await a.publish(message(a, "nobody listens"))
            await asyncio.sleep(0.1)
            b.set_listening(True)
            await a.publish(message(a, "fresh"))
            await until(lambda: got == ["fresh"])
            b.set_listening(False)
            await a.publish(message(a, "gone again"))
            await asyncio.sleep(0.7)  # more than the idle interval: it was read and dropped
            b.set_listening(True)
            await asyncio.sleep(0.2)
            assert got == ["fresh"]
        finally:
            await a.close()
            await b.close()

    run(body)


def test_sqlite_bus_reads_large_backlogs_in_batches_and_prunes(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "b.db"
        a = SqliteBroadcastBus(path)
        b = SqliteBroadcastBus(path, batch=50, retention=0.5, prune_every=0.1)
        got: list[str] = []
        await a.start(lambda m: None)
        await b.start(lambda m: got.append(m.payload))
        b.set_listening(True)
        try:
            for i in range(230):
                await a.publish(message(a, str(i)))
            await until(lambda: len(got) == 230)
            assert got == [str(i) for i in range(230)]
            await asyncio.sleep(1.0)
            with sqlite3.connect(path) as conn:
                assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
        finally:
            await a.close()
            await b.close()

    run(body)


def test_sqlite_bus_file_is_private(tmp_path: Path) -> None:
    async def body() -> None:
        bus = SqliteBroadcastBus(tmp_path / "sub" / "b.db")
        await bus.start(lambda m: None)
        await bus.close()

    run(body)
    assert (tmp_path / "sub" / "b.db").stat().st_mode & 0o077 == 0


# --------------------------------------------------------------------------
# Redis (across pods)
# --------------------------------------------------------------------------


def test_redis_bus_carries_messages_between_processes(redis_server: str) -> None:
    async def body() -> None:
        channel = f"test:{time.time_ns()}"
        a, b = RedisBroadcastBus(redis_server, channel), RedisBroadcastBus(redis_server, channel)
        got_a: list[str] = []
        got_b: list[str] = []
        await a.start(lambda m: got_a.append(m.payload))
        await b.start(lambda m: got_b.append(m.payload))
        try:
            for i in range(3):
                await a.publish(message(a, f"r{i}"))
            await until(lambda: len(got_b) == 3)
            assert got_b == ["r0", "r1", "r2"]
            # Garbage on the channel is ignored, not fatal.
            client = redis.Redis.from_url(redis_server)
            client.publish(channel, b"{not json")
            client.close()
            await a.publish(message(a, "after garbage"))
            await until(lambda: got_b[-1:] == ["after garbage"])
            assert got_a == []
            ok, detail = b.status()
            assert ok and channel in detail
        finally:
            await a.close()
            await b.close()

    run(body)


def test_redis_bus_resubscribes_after_a_restart(fresh_redis: RedisServer) -> None:
    async def body() -> None:
        channel = "test:restart"
        a, b = RedisBroadcastBus(fresh_redis.url, channel), RedisBroadcastBus(fresh_redis.url, channel)
        got: list[str] = []
        await a.start(lambda m: None)
        await b.start(lambda m: got.append(m.payload))
        try:
            await a.publish(message(a, "before"))
            await until(lambda: got == ["before"])
            fresh_redis.kill()
            await until(lambda: not b.status()[0], seconds=10)
            with pytest.raises(ConnectionError, match="Redis at"):
                await a.publish(message(a, "lost"))
            await asyncio.to_thread(fresh_redis.start)
            await until(lambda: b.status()[0], seconds=15)
            await until(lambda: a.status()[0], seconds=15)
            await a.publish(message(a, "after"))
            await until(lambda: got == ["before", "after"])
        finally:
            await a.close()
            await b.close()

    run(body)


def test_redis_bus_start_fails_clearly_and_hides_the_password() -> None:
    async def body() -> None:
        bus = RedisBroadcastBus(f"redis://:hunter2@127.0.0.1:{free_port()}/0", "test:down")
        started = time.monotonic()
        with pytest.raises(RuntimeError) as info:
            await bus.start(lambda m: None)
        assert time.monotonic() - started < 6
        assert "does not answer" in str(info.value)
        assert "hunter2" not in str(info.value) and "***" in str(info.value)

    run(body)
