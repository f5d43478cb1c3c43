"""Connection hardening against a real server: slow bodies and headers time out,
ambiguous framing and cleartext h2c upgrades are refused, no Server header."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jacscale_core.testing import running_server

APP = """
walker :pub echo {
    has text: str = "";
    can go with Root entry { report self.text; }
}
"""


# granian is left out: it sends its own Server header, keeps idle connections
# past our keep-alive timeout and accepts Content-Length with Transfer-Encoding
# (docs/servers.md says so).
@pytest.fixture(scope="module", params=["hypercorn", "uvicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp(f"guards-{request.param}")
    (root / "app.jac").write_text(APP)
    (root / "jac.toml").write_text(
        "[plugins.scale.server]\n"
        "keep_alive_timeout_seconds = 1.5\n"
        "body_timeout_seconds = 1.0\n"
        "min_body_bytes_per_second = 1000\n"
    )
    env = {"JACSCALE_SERVER": request.param}
    with running_server(root / "app.jac", root / "data", env=env) as base:
        yield base, int(base.rsplit(":", 1)[1])


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_a_body_dribbled_a_byte_at_a_time_gets_408_and_the_connection_closes(
    server: tuple[str, int],
) -> None:
    _, port = server
    body = b'{"text": "' + b"x" * 80 + b'"}'
    with _connect(port) as sock:
        sock.sendall(
            b"POST /walker/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        started = time.monotonic()
        answer = b""
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.4)
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        sock.settimeout(15)
        answer += _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"REQUEST_TIMEOUT" in answer and b"connection: close" in answer.lower()
    assert time.monotonic() - started < 10


def test_an_honest_body_and_keep_alive_still_work(server: tuple[str, int]) -> None:
    base, _ = server
    with httpx.Client(timeout=10) as client:
        for i in range(3):
            r = client.post(base + "/walker/echo", json={"text": f"hi {i}"})
            assert r.json()["data"]["reports"] == [f"hi {i}"]
        assert "server" not in r.headers  # no Server header, no version to fingerprint


def test_an_idle_kept_alive_connection_and_slow_headers_are_closed(server: tuple[str, int]) -> None:
    _, port = server
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert _read_all(sock) == b""  # closed by the server when idle
        assert time.monotonic() - started < 10
    with _connect(port) as sock:
        started = time.monotonic()
        closed = False
        for piece in (b"GET /hea", b"lthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1\r\n") * 5:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.5)
        if not closed:
            sock.settimeout(5)
            assert _read_all(sock) == b""
        assert time.monotonic() - started < 12


def test_an_h2c_upgrade_on_cleartext_is_answered_as_http_1_1(server: tuple[str, int]) -> None:
    _, port = server
    with _connect(port) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        time.sleep(0.5)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"101" not in answer.split(b"\r\n", 1)[0]


def test_content_length_with_transfer_encoding_is_refused(server: tuple[str, int]) -> None:
    _, port = server
    with _connect(port) as sock:
        sock.sendall(
            b"POST /walker/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"  # smuggled: must never be answered
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert answer.count(b"HTTP/1.1 ") == 1
    if b"content-type: text/plain" in answer.lower():  # refused by uvicorn's parser, before the app
        assert b"Invalid HTTP request" in answer
    else:
        assert b"Content-Length and Transfer-Encoding" in answer


def test_settings_have_defaults(tmp_path: Path) -> None:
    from jacscale_core.config import ServerConfig

    s = ServerConfig()
    assert (s.keep_alive_timeout_seconds, s.body_timeout_seconds, s.min_body_bytes_per_second) == (
        75.0, 30.0, 1024.0,
    )  # fmt: skip
