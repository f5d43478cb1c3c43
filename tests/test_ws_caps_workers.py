"""WebSocket connection caps hold across `jacscale serve --workers 4` (real sockets).

Each socket holds a lease in the shared store, so a user (or a client address
without a token) gets `max_connections_per_user` (`max_anonymous_per_ip`)
sockets in total, not that many per worker. Client addresses are chosen with
the source address of the TCP connection (all of 127.0.0.0/8 is loopback).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from jacscale_core.testing import running_server
from tests.test_websockets import SEED, Server, closed_with, error_code, recv, reports, send

WORKERS = 4

WHERE_AM_I = """
@restspec(protocol=APIProtocol.WEBSOCKET)
async walker :pub WhereAmI {
    has message: str = "";
    async can where with Root entry { report {"pid": os.getpid(), "message": self.message}; }
}
"""

CAPS_TOML = """
[plugins.scale.websocket]
max_connections_per_user = 2
max_anonymous_per_ip = 2
"""


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Four workers sharing one data directory, caps of 2 sockets per user and per address."""
    tmp = tmp_path_factory.mktemp("ws-caps")
    app = tmp / "app" / "caps_app.jac"
    app.parent.mkdir()
    app.write_text("import os;\n" + SEED.read_text() + WHERE_AM_I)
    (app.parent / "jac.toml").write_text(CAPS_TOML)
    with running_server(app, tmp / "data", workers=WORKERS, env={"REDIS_URL": ""}) as base:
        srv = Server(base, tmp / "data")
        wait_for_all_workers(srv)
        yield srv


def wait_for_all_workers(srv: Server, seconds: float = 90.0) -> None:
    """`/readyz` answers once ONE worker is up: probe (each from its own address) until all answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    n = 0
    while len(seen) < WORKERS:
        assert time.monotonic() < deadline, f"only workers {seen} answered within {seconds:.0f}s"
        n += 1
        with open_from(srv.ws("/ws/WhereAmI"), f"127.0.1.{n % 250 + 1}") as ws:
            seen.add(pid_of(ws))


def open_from(url: str, address: str) -> ClientConnection:
    """A socket to `url` whose client address is `address`."""
    return connect(url, open_timeout=10, source_address=(address, 0))


def pid_of(ws: ClientConnection) -> int:
    """The pid of the worker serving `ws` (it must have been let in)."""
    send(ws, {"message": "where"})
    return int(reports(recv(ws, timeout=10))[0]["pid"])


def attempt(stack: ExitStack, url: str, address: str) -> tuple[ClientConnection, int] | None:
    """Open a socket: (socket, worker pid) when let in (kept open in `stack`), None when capped."""
    ws = stack.enter_context(open_from(url, address))
    try:
        send(ws, {"message": "hello"})
    except ConnectionClosed:
        pass  # refused before the message went out: the refusal is still to be read
    try:
        answer = recv(ws, timeout=10)
    except ConnectionClosed:  # the refusal message was lost with the failed send; the close says it
        assert ws.close_code == 1008 and "too many connections" in str(ws.close_reason), (
            ws.close_reason
        )
        return None
    if answer["ok"]:
        return ws, int(reports(answer)[0]["pid"])
    assert error_code(answer) == "RATE_LIMITED", answer
    assert "too many connections" in answer["error"]["message"]
    assert closed_with(ws) == 1008
    ws.close()
    return None


def attempts(
    stack: ExitStack, url: str, address: str, n: int
) -> list[tuple[ClientConnection, int]]:
    """`n` attempts; the sockets that were let in."""
    return [a for a in (attempt(stack, url, address) for _ in range(n)) if a is not None]


def eventually_let_in(stack: ExitStack, url: str, address: str, seconds: float = 15.0) -> int:
    """Retry until a socket is let in (a closed socket's lease is released in the background)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = attempt(stack, url, address)
        if got is not None:
            return got[1]
        time.sleep(0.1)
    raise AssertionError(f"no socket let in within {seconds:.0f}s")


def test_user_cap_counts_sockets_on_every_worker(four: Server) -> None:
    token = four.user()
    url = four.ws("/ws/WhereAmI", token)
    with ExitStack() as stack:
        held = attempts(stack, url, "127.0.0.1", 12)  # spread over the 4 workers by the kernel
        assert len(held) == 2
        pids = {pid for _, pid in held}

        # A worker holding none of this user's sockets refuses too: an anonymous
        # socket there presenting the user's token is refused as the user's third.
        for n in range(200):
            probe = stack.enter_context(
                open_from(four.ws("/ws/WhereAmI"), f"127.0.2.{n % 250 + 1}")
            )
            if pid_of(probe) not in pids:
                break
            probe.close()
        else:
            raise AssertionError(f"every probe landed on {pids}")
        send(probe, {"message": "as user", "token": token})
        answer = recv(probe)
        assert error_code(answer) == "RATE_LIMITED"
        assert "too many connections for this user (2)" in answer["error"]["message"]

        # Closing one of the user's sockets (on another worker) frees its slot.
        held[0][0].close()
        deadline = time.monotonic() + 15
        while True:
            send(probe, {"message": "as user", "token": token})
            answer = recv(probe)
            if answer["ok"]:
                break
            assert error_code(answer) == "RATE_LIMITED"
            assert time.monotonic() < deadline, "the closed socket's slot was never freed"
            time.sleep(0.1)
        assert reports(answer)[0]["message"] == "as user"
        assert attempts(stack, url, "127.0.0.1", 4) == []  # two again: the cap holds


def test_anonymous_cap_per_address_counts_every_worker(four: Server) -> None:
    url = four.ws("/ws/WhereAmI")
    address = f"127.0.3.{uuid.uuid4().int % 250 + 1}"
    with ExitStack() as stack:
        held = attempts(stack, url, address, 12)
        assert len(held) == 2
        assert len(attempts(stack, url, "127.0.4.1", 3)) == 2  # another address has its own cap
        held[1][0].close()
        eventually_let_in(stack, url, address)
        assert attempts(stack, url, address, 4) == []


def test_closed_sockets_give_their_slots_back(four: Server) -> None:
    url = four.ws("/ws/WhereAmI", four.user())
    for _ in range(3):  # open and close the full cap three times over
        with ExitStack() as stack:
            eventually_let_in(stack, url, "127.0.0.1")
            eventually_let_in(stack, url, "127.0.0.1")
            assert attempts(stack, url, "127.0.0.1", 3) == []
