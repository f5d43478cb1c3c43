"""A minimal WebSocket client for the load generator: text frames, no extensions.

The `websockets` library spends about 80 µs of CPU per received frame (its
reader, assembler and futures); a broadcast to 100 clients made the load
generator, not the server under test, the limit. This client parses frames
straight out of `data_received` and hands each text message to a waiting
future or a callback: a few µs per frame. It speaks RFC 6455 as a client needs
to (masked frames out, unmasked in, fragments, ping/pong, close) and nothing
more: no compression is offered, so none is used.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
CONNECT_TIMEOUT = 15.0  # seconds for the TCP connection, then again for the handshake
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The connection closed (the message says how)."""


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return payload
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, final frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class LeanSocket(asyncio.Protocol):
    """One client connection. `recv()` awaits the next text message, or `on_text` gets each."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.on_text: Callable[[str], None] | None = None
        self._buffer = bytearray()
        self._handshake: asyncio.Future[bytes] | None = None
        self._messages: deque[str] = deque()
        self._waiter: asyncio.Future[str] | None = None
        self._fragments: list[bytes] = []
        self._closed: str | None = None

    # -- asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment] # a stream transport

    def data_received(self, data: bytes) -> None:
        """Parse every complete frame in what arrived."""
        self._buffer += data
        if self._handshake is not None and not self._handshake.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            self._handshake.set_result(head)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake whoever waits: the connection is gone."""
        self._fail(f"connection lost: {exc!r}" if exc else "connection lost")

    # -- frames -------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            at = pos + 2
            if length == 126:
                if len(buf) - at < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, at)
                at += 2
            elif length == 127:
                if len(buf) - at < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, at)
                at += 8
            if b1 & 0x80:  # a server must not mask
                self._fail("the server sent a masked frame")
                return
            if len(buf) - at < length:
                break
            payload = bytes(buf[at : at + length])
            pos = at + length
            self._frame(b0 & 0x80 != 0, b0 & 0x0F, payload)
        del buf[:pos]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            self._fragments.append(payload)
            if fin:
                message = b"".join(self._fragments).decode()
                self._fragments = []
                self._deliver(message)
        elif opcode == OP_PING:
            self._write(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            self._write(client_frame(OP_CLOSE, payload[:2]))
            self._fail(f"closed by the server: {code} {payload[2:].decode(errors='replace')}")
            if self.transport is not None:
                self.transport.close()

    def _deliver(self, message: str) -> None:
        if self.on_text is not None:
            self.on_text(message)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(message)
            self._waiter = None
        else:
            self._messages.append(message)

    def _fail(self, why: str) -> None:
        if self._closed is None:
            self._closed = why
        for future in (self._waiter, self._handshake):
            if future is not None and not future.done():
                future.set_exception(Closed(why))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # -- the client's API -----------------------------------------------------------
    @property
    def closed(self) -> str | None:
        """Why the connection closed, or None while open."""
        return self._closed

    def send(self, text: str) -> None:
        """Send one text message."""
        if self._closed is not None:
            raise Closed(self._closed)
        self._write(client_frame(OP_TEXT, text.encode()))

    async def recv(self) -> str:
        """The next text message."""
        if self._messages:
            return self._messages.popleft()
        if self._closed is not None:
            raise Closed(self._closed)
        self._waiter = asyncio.get_running_loop().create_future()
        return await self._waiter

    def close(self) -> None:
        """Send a normal close and drop the connection."""
        if self._closed is None:
            self._write(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self._closed = "closed by the client"
        if self.transport is not None:
            self.transport.close()


async def connect(url: str) -> LeanSocket:
    """Open `url` (ws://host:port/path?query) and complete the opening handshake."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"only ws:// URLs: {url}")
    loop = asyncio.get_running_loop()
    port = parts.port or 80
    _, sock = await asyncio.wait_for(
        loop.create_connection(LeanSocket, parts.hostname, port), CONNECT_TIMEOUT
    )
    assert isinstance(sock, LeanSocket)
    key = base64.b64encode(os.urandom(16))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    sock._handshake = loop.create_future()
    sock._write(request)
    head = await asyncio.wait_for(sock._handshake, CONNECT_TIMEOUT)
    status = head.split(b"\r\n", 1)[0]
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    if b" 101 " not in status + b" " or accept not in head:
        sock.close()
        raise Closed(f"handshake refused: {status.decode(errors='replace')}")
    sock._parse()  # frames that came with the handshake's answer
    return sock
