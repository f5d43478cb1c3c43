"""Broadcast fan-out in one worker (jacscale_ext.websockets.hub.Hub.deliver), driven directly.

A broadcast is serialised once: every socket is handed the same payload object. Each
socket has its own bounded queue and writer, so a socket whose client stopped reading
is dropped when its queue overflows and never holds up delivery to the others.
Over real sockets: tests/test_broadcast_e2e.py.
"""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocketState

from jacscale_ext.websockets.connection import CLOSE_POLICY, Connection, TokenBucket
from jacscale_ext.websockets.hub import Hub

QUEUE = 4


class FakeSocket:
    """What a Connection uses of a Starlette WebSocket; `stalled` never finishes a send."""

    def __init__(self, stalled: bool = False) -> None:
        self.stalled = stalled
        self.sent: list[str] = []
        self.closed: int | None = None
        self.application_state = WebSocketState.CONNECTED
        self.client_state = WebSocketState.CONNECTED

    async def send_text(self, text: str) -> None:
        if self.stalled:
            await asyncio.Event().wait()  # the client's TCP window never opens again
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = code


def connection(socket: FakeSocket) -> Connection:
    return Connection(
        socket,  # type: ignore[arg-type]
        "Room",
        f"ip:{id(socket)}",
        queue_size=QUEUE,
        send_timeout=3600.0,  # only the queue bound can drop the stalled socket here
        bucket=TokenBucket(rate=1000.0, burst=1000),
    )


def test_a_stalled_socket_is_dropped_and_the_others_get_every_broadcast() -> None:
    async def main() -> tuple[list[FakeSocket], list[Connection], list[str], list[int]]:
        hub = Hub(max_connections=100, max_per_user=100, max_per_ip=100)
        sockets = [FakeSocket(stalled=True), FakeSocket(), FakeSocket()]
        conns = [connection(s) for s in sockets]
        for conn in conns:
            await hub.admit(conn)
            conn.writer = asyncio.create_task(conn.run_writer())
        payloads = [f'{{"seq": {i}}}' for i in range(QUEUE * 5)]
        counts = []
        for payload in payloads:
            counts.append(hub.deliver("Room", True, payload))
            await asyncio.sleep(0)  # let the writers run, as the event loop would
        for _ in range(10):
            await asyncio.sleep(0)
        for conn in conns[1:]:
            conn.close(1000, "done")
            assert conn.writer is not None
            await conn.writer
        return sockets, conns, payloads, counts

    # A bound, not a timing: delivery that waited on the stalled socket would never end.
    sockets, conns, payloads, counts = asyncio.run(asyncio.wait_for(main(), 60))
    stalled, *healthy = sockets
    for socket in healthy:
        assert socket.sent == payloads and socket.closed == 1000
    assert stalled.sent == []
    assert conns[0].dropped and conns[0].close_code == CLOSE_POLICY
    assert conns[0].writer is not None and conns[0].writer.cancelled()
    # Three sockets until the stalled one's queue overflowed, two after.
    assert counts[0] == 3 and counts[-1] == 2


def test_a_broadcast_is_serialised_once_for_every_socket() -> None:
    async def main() -> list[Connection]:
        hub = Hub(max_connections=100, max_per_user=100, max_per_ip=100)
        conns = [connection(FakeSocket()) for _ in range(5)]
        for conn in conns:
            await hub.admit(conn)
        payload = "".join(['{"message": ', '"hello"}'])  # one object, built at run time
        assert hub.deliver("Room", True, payload) == 5
        return conns

    conns = asyncio.run(main())
    queued = [conn._queue.get_nowait() for conn in conns]
    assert all(item is queued[0] for item in queued)


def test_a_send_that_stalls_past_the_timeout_drops_the_socket_and_spares_the_others() -> None:
    timeout = 0.3

    async def main() -> tuple[Connection, Connection, FakeSocket, float]:
        stalled, healthy = FakeSocket(stalled=True), FakeSocket()
        conns = []
        for socket in (stalled, healthy):
            conn = Connection(
                socket,  # type: ignore[arg-type]
                "Room",
                f"ip:{id(socket)}",
                queue_size=1000,  # only the send timeout can drop the stalled socket here
                send_timeout=timeout,
                bucket=TokenBucket(rate=1000.0, burst=1000),
            )
            conn.start_writer("writer")
            conns.append(conn)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(timeout * 2)  # idle first: the watch re-arms without dropping
        assert not conns[0].dropped
        began = loop.time()
        for conn in conns:
            assert conn.offer("hello")
        assert conns[0].writer is not None
        await asyncio.wait([conns[0].writer], timeout=10)  # dropping it cancels its writer
        waited = loop.time() - began
        conns[1].close(1000, "done")
        assert conns[1].writer is not None
        await conns[1].writer
        for conn in conns:
            conn.stop_watching()
        return conns[0], conns[1], healthy, waited

    dropped, kept, healthy, waited = asyncio.run(asyncio.wait_for(main(), 60))
    assert dropped.dropped and dropped.close_code == CLOSE_POLICY
    assert dropped.close_reason == "too slow: send timed out"
    assert dropped.writer is not None and dropped.writer.cancelled()
    assert waited >= timeout  # never before the send is late
    assert not kept.dropped and healthy.sent == ["hello"] and healthy.closed == 1000
