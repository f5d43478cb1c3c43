"""Broadcasts end to end over real sockets: across `--workers 2` on the embedded
default (no Redis), across two servers through Redis, and a slow client that is
dropped without stalling the others.

A socket learns which worker it landed on from the pid the broadcast walker
reports, so the tests can insist on sender and receiver being in different
processes.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.test_websockets import Server, closed_with, recv, reports, send, serving, silent

# A flood must exceed the kernel's send buffer (up to 4 MB on loopback) plus
# the queue before a client that reads nothing can look slow.
PAIR_TOML = """
[plugins.scale.websocket]
send_queue_size = 8
send_timeout_seconds = 1
max_message_bytes = 200000
messages_per_second = 100
message_burst = 100
"""


class Reader:
    """A socket whose messages a thread collects as they arrive."""

    def __init__(self, ws: ClientConnection) -> None:
        """Start collecting from `ws`."""
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.messages.append(recv(self.ws, timeout=60))
        except Exception:  # noqa: BLE001 - the socket closed: the test looks at what arrived
            return

    def contents(self) -> list[str]:
        """The `message` field of every broadcast received so far."""
        return [reports(m)[0]["message"] for m in list(self.messages) if m.get("ok")]

    def wait_for(self, text: str, timeout: float = 5.0) -> dict[str, Any]:
        """The report of the broadcast whose message is `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.messages):
                if m.get("ok") and reports(m)[0]["message"] == text:
                    return dict(reports(m)[0])
            time.sleep(0.01)
        raise AssertionError(f"{text!r} did not arrive; got {self.contents()}")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers sharing one data directory, no Redis."""
    with serving(tmp_path_factory.mktemp("ws-pair"), PAIR_TOML, workers=2, env={"REDIS_URL": ""}) as srv:
        with ExitStack() as probes:  # /readyz answers once ONE worker is up: wait for both
            sockets_on_two_workers(probes, srv.ws("/ws/PidRoom"))
        yield srv


def sockets_on_two_workers(
    stack: ExitStack, url: str, first: dict[str, Any] | None = None, seconds: float = 45.0
) -> dict[int, Reader]:
    """Open sockets on PidRoom until two workers hold one each; {pid: reader}.

    `/readyz` answers as soon as ONE worker is up, so keep trying while the
    other finishes starting; sockets that land on a known worker are closed.
    """
    found: dict[int, Reader] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        own = ExitStack()
        reader = Reader(own.enter_context(connect(url, open_timeout=5)))
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        send(reader.ws, {"message": probe, **(first or {})})
        pid = reader.wait_for(probe)["pid"]
        if pid in found:
            own.close()
            time.sleep(0.05)
            continue
        stack.enter_context(own)
        found[pid] = reader
        if len(found) == 2:
            return found
    raise AssertionError(f"no socket reached a second worker within {seconds:.0f}s")


def test_public_broadcast_crosses_workers(pair: Server) -> None:
    with ExitStack() as stack:
        (pid_a, a), (pid_b, b) = sockets_on_two_workers(stack, pair.ws("/ws/PidRoom")).items()
        for sender, receiver, sender_pid in ((a, b, pid_a), (b, a, pid_b)):
            text = f"across-{uuid.uuid4().hex[:6]}"
            started = time.monotonic()
            send(sender.ws, {"message": text})
            assert receiver.wait_for(text, timeout=3)["pid"] == sender_pid
            assert time.monotonic() - started < 1.0
            assert sender.wait_for(text)["pid"] == sender_pid
        # Nothing twice (a worker never re-delivers its own broadcast from the bus).
        for reader in (a, b):
            assert len(reader.contents()) == len(set(reader.contents()))


def test_private_broadcast_crosses_workers_to_authorised_sockets_only(pair: Server) -> None:
    member, newcomer = pair.user(), pair.user()
    url = pair.ws("/ws/PrivatePidRoom")
    with ExitStack() as stack:
        sender = Reader(stack.enter_context(connect(pair.ws("/ws/PrivatePidRoom", member), open_timeout=5)))
        send(sender.ws, {"message": "hello"})
        sender_pid = sender.wait_for("hello")["pid"]
        for _ in range(6):
            anonymous = [stack.enter_context(connect(url, open_timeout=5)) for _ in range(4)]
            secret = f"secret-{uuid.uuid4().hex[:6]}"
            send(sender.ws, {"message": secret})
            sender.wait_for(secret)
            assert all(silent(ws, 0.4) for ws in anonymous), "an unauthorised socket got a private broadcast"
            # Now let each anonymous socket present a token: it learns its worker.
            by_pid: dict[int, ClientConnection] = {}
            for i, ws in enumerate(anonymous):
                send(ws, {"message": f"join-{i}", "token": newcomer})
                answer = recv(ws)
                by_pid.setdefault(reports(answer)[0]["pid"], ws)
                assert sender.wait_for(f"join-{i}")  # the member sees the newcomer, wherever it is
            remote = next((ws for pid, ws in by_pid.items() if pid != sender_pid), None)
            if remote is None:
                continue  # all four landed with the sender: try again
            while not silent(remote, 0.2):
                pass  # drain the other newcomers' joins
            send(sender.ws, {"message": "for members"})
            got = recv(remote)
            assert reports(got)[0] == {"pid": sender_pid, "message": "for members"}
            return
    raise AssertionError("never got a socket on the other worker")


def test_slow_client_is_dropped_without_stalling_the_others(pair: Server) -> None:
    url = pair.ws("/ws/FloodRoom")
    # ~150 KB per broadcast, 45 of them: more than the kernel's send buffer (up to
    # 4 MB on loopback) plus the 8-message queue, so a client that reads nothing
    # must fall behind. Random text: permessage-deflate would shrink anything else.
    count, size = 45, 110_000
    with ExitStack() as stack:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", int(pair.base.rsplit(":", 1)[1])))
        # Takes one message, then reads nothing: TCP backpressure reaches the server.
        slow = stack.enter_context(
            connect(url, sock=raw, max_queue=1, open_timeout=5, max_size=None, compression=None)
        )
        fast = Reader(stack.enter_context(connect(url, open_timeout=5, max_size=None)))
        sender = Reader(stack.enter_context(connect(url, open_timeout=5, max_size=None)))
        started = time.monotonic()
        for seq in range(count):
            send(sender.ws, {"seq": seq, "blob": base64.b64encode(os.urandom(size)).decode()})
        for reader in (fast, sender):
            deadline = time.monotonic() + 60
            while len(reader.messages) < count and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [reports(m) for m in reader.messages] == [[seq] for seq in range(count)]
        elapsed = time.monotonic() - started
        # A send loop that waited on the slow socket would never get here (it is
        # never read); the bound only guards against a pathological slowdown.
        assert elapsed < 30, f"the others were stalled for {elapsed:.1f}s"
        assert closed_with(slow, timeout=20) == 1008


def test_broadcast_across_servers_through_redis(tmp_path: Path, redis_server: str) -> None:
    channel = f"jacscale:test:{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": redis_server, "JACSCALE_BROADCAST_CHANNEL": channel}
    with serving(tmp_path / "one", env=env) as one, serving(tmp_path / "two", env=env) as two:
        for srv in (one, two):
            ready = httpx.get(srv.base + "/readyz", timeout=5).json()
            assert ready["checks"]["broadcast"]["ok"] is True
            assert "redis" in ready["checks"]["broadcast"]["detail"]
        with connect(one.ws("/ws/ChatRoom"), open_timeout=5) as a, connect(
            two.ws("/ws/ChatRoom"), open_timeout=5
        ) as b:
            send(a, {"message": "pod one here", "sender": "a"})
            expected = [{"type": "message", "sender": "a", "content": "pod one here"}]
            assert reports(recv(a)) == expected
            assert reports(recv(b)) == expected
            assert silent(b, 0.3)  # exactly once
