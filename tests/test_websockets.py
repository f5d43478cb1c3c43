"""WebSocket walkers over real sockets (`jacscale serve` under each server on a free port).

The served program is the documented example (examples/04_websockets.jac, unchanged) plus two
broadcast walkers that report the worker's pid, so tests can tell where a
socket landed. Cross-worker and cross-pod broadcasts are in test_broadcast_e2e.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from jacscale_core.testing import free_port, running_server
from jacscale_ext.websockets.handler import take_query_token, with_bearer

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "04_websockets.jac"

PID_WALKERS = """
@restspec(protocol=APIProtocol.WEBSOCKET, broadcast=True)
async walker :pub PidRoom {
    has message: str;
    async can handle with Root entry { report {"pid": os.getpid(), "message": self.message}; }
}

@restspec(protocol=APIProtocol.WEBSOCKET, broadcast=True)
async walker PrivatePidRoom {
    has message: str;
    async can handle with Root entry { report {"pid": os.getpid(), "message": self.message}; }
}

@restspec(protocol=APIProtocol.WEBSOCKET, broadcast=True)
async walker :pub FloodRoom {
    has seq: int;
    has blob: str = "";
    async can handle with Root entry { report self.seq; }
}

walker HttpOnly {
    can go with Root entry { report 1; }
}
"""

LIMITS_TOML = """
[plugins.scale.websocket]
allowed_origins = ["https://good.example"]
max_message_bytes = 2048
messages_per_second = 20
message_burst = 10
max_connections_per_user = 2
auth_timeout_seconds = 2
"""


def write_app(directory: Path, toml: str = "") -> Path:
    """The documented WebSocket example program plus the pid walkers (and a jac.toml) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    app = directory / "ws_app.jac"
    app.write_text("import os;\n" + SEED.read_text() + PID_WALKERS)
    if toml:
        (directory / "jac.toml").write_text(toml)
    return app


@dataclass
class Server:
    """A running server: its base URL, data directory and log file."""

    base: str
    data_dir: Path

    def ws(self, path: str, token: str | None = None) -> str:
        """The ws:// URL of `path`, with `?token=` when given."""
        url = self.base.replace("http://", "ws://") + path
        return f"{url}?token={token}" if token else url

    @property
    def log(self) -> str:
        """Everything the server logged so far."""
        port = self.base.rsplit(":", 1)[1]
        return (self.data_dir / f"server-{port}.log").read_text(errors="replace")

    def user(self, name: str | None = None) -> str:
        """Register a fresh user and return their access token."""
        login = {"username": name or f"u{uuid.uuid4().hex[:10]}", "password": "correct horse battery"}
        with httpx.Client(base_url=self.base, timeout=10) as http:
            assert http.post("/user/register", json=login).status_code == 201
            r = http.post("/user/login", json=login)
            assert r.status_code == 200, r.text
            return str(r.json()["access_token"])


@contextmanager
def serving(tmp: Path, toml: str = "", workers: int = 1, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Serve the test program from `tmp` for the duration of the block."""
    app = write_app(tmp / "app", toml)
    with running_server(app, tmp / "data", workers=workers, env=env) as base:
        yield Server(base, tmp / "data")


# The behaviour here is the app's (auth, limits, broadcasts), the same under every
# server: it runs under the default one. tests/test_servers.py serves WebSocket
# walkers under each installed server; the shutdown test below runs under both
# servers whose drain we own.
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker with small limits, under the default server."""
    with serving(tmp_path_factory.mktemp("ws"), LIMITS_TOML) as srv:
        yield srv


@pytest.fixture(scope="module")
def tokens(server: Server) -> list[str]:
    """Access tokens of three users."""
    return [server.user() for _ in range(3)]


def send(ws: ClientConnection, payload: dict[str, Any]) -> None:
    """Send one JSON message."""
    ws.send(json.dumps(payload))


def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message, decoded."""
    return dict(json.loads(ws.recv(timeout=timeout)))


def silent(ws: ClientConnection, seconds: float = 0.5) -> bool:
    """True when nothing arrives within `seconds`."""
    try:
        ws.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


def error_code(message: dict[str, Any]) -> str:
    """The code of an error envelope."""
    assert message["ok"] is False and message["type"] == "error", message
    assert message["meta"]["extra"]["http_status"] >= 400
    return str(message["error"]["code"])


def reports(message: dict[str, Any]) -> list[Any]:
    """The reports of a success envelope."""
    assert message["ok"] is True, message
    return list(message["data"]["reports"])


def closed_with(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Read until the server closes; return its close code."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    raise AssertionError("the server did not close the socket")


# --------------------------------------------------------------------------
# Messages (item 6)
# --------------------------------------------------------------------------


def test_public_echo_answers_many_messages_on_one_socket(server: Server) -> None:
    with connect(server.ws("/ws/EchoMessage"), open_timeout=5) as ws:
        for i in range(3):
            send(ws, {"message": f"hi {i}"})
            answer = recv(ws)
            assert reports(answer) == [{"echo": f"hi {i}", "client_id": "anonymous"}]
            assert answer["data"]["result"]["_jac_type"] == "EchoMessage"
            assert len(answer["meta"]["request_id"]) == 32
        send(ws, {"message": "x", "client_id": "c-7"})
        assert reports(recv(ws)) == [{"echo": "x", "client_id": "c-7"}]


@pytest.mark.parametrize(
    ("frame", "code", "loc"),
    [
        ("not json", "VALIDATION_ERROR", ["message"]),
        (b"\x00\x01binary", "VALIDATION_ERROR", ["message"]),
        ("[1, 2]", "VALIDATION_ERROR", ["message"]),
        ('{"message": 5}', "VALIDATION_ERROR", ["message", "message"]),
        ('{"message": "x", "colour": "red"}', "VALIDATION_ERROR", ["message", "colour"]),
        ("{}", "VALIDATION_ERROR", ["message", "message"]),
        ('{"message": "x", "token": 7}', "VALIDATION_ERROR", ["message", "token"]),
        ('{"message": "' + "x" * 3000 + '"}', "PAYLOAD_TOO_LARGE", None),
    ],
)
def test_bad_messages_get_an_error_and_the_socket_stays_usable(
    server: Server, frame: str | bytes, code: str, loc: list[str] | None
) -> None:
    with connect(server.ws("/ws/EchoMessage"), open_timeout=5) as ws:
        ws.send(frame)
        err = recv(ws)
        assert error_code(err) == code
        if loc is not None:
            assert loc in [d["loc"] for d in err["error"]["details"]]
        send(ws, {"message": "still here"})
        assert reports(recv(ws)) == [{"echo": "still here", "client_id": "anonymous"}]


def test_non_broadcast_results_go_to_the_sender_only(server: Server) -> None:
    with connect(server.ws("/ws/EchoMessage"), open_timeout=5) as a, connect(
        server.ws("/ws/EchoMessage"), open_timeout=5
    ) as b:
        send(a, {"message": "just me"})
        assert reports(recv(a)) == [{"echo": "just me", "client_id": "anonymous"}]
        assert silent(b)


def test_only_websocket_walkers_have_sockets(server: Server) -> None:
    for path in ("/ws/NoSuchWalker", "/ws/HttpOnly"):
        with pytest.raises(InvalidStatus) as info:
            connect(server.ws(path), open_timeout=5)
        assert info.value.response.status_code in (403, 404)
    r = httpx.post(server.base + "/walker/EchoMessage", json={"message": "x"}, timeout=5)
    assert r.status_code == 404


# --------------------------------------------------------------------------
# Auth and limits (item 7)
# --------------------------------------------------------------------------


def test_private_walker_needs_a_token_in_the_url_or_the_message(server: Server, tokens: list[str]) -> None:
    with connect(server.ws("/ws/PrivateEcho"), open_timeout=5) as ws:
        send(ws, {"message": "hello"})
        assert error_code(recv(ws)) == "UNAUTHORIZED"
        send(ws, {"message": "hello", "token": "not-a-jwt"})
        assert error_code(recv(ws)) == "UNAUTHORIZED"
        send(ws, {"message": "hello", "token": tokens[0]})
        assert reports(recv(ws)) == [{"echo": "hello"}]
        # The message token authorised the socket: later messages need none.
        send(ws, {"message": "again"})
        assert reports(recv(ws)) == [{"echo": "again"}]
    with connect(server.ws("/ws/PrivateEcho", tokens[1]), open_timeout=5) as ws:
        send(ws, {"message": "via url"})
        assert reports(recv(ws)) == [{"echo": "via url"}]


def test_an_invalid_url_token_is_refused_with_1008(server: Server) -> None:
    with connect(server.ws("/ws/PrivateEcho", "forged.token.value"), open_timeout=5) as ws:
        assert error_code(recv(ws)) == "UNAUTHORIZED"
        assert closed_with(ws) == 1008


def test_tokens_never_reach_the_logs(server: Server, tokens: list[str]) -> None:
    with connect(server.ws("/ws/PrivateEcho", tokens[2]), open_timeout=5) as ws:
        send(ws, {"message": "x", "token": tokens[2]})
        recv(ws)
    with connect(server.ws("/ws/PrivateEcho", "leaky-secret-token-123"), open_timeout=5) as ws:
        recv(ws)
    time.sleep(0.3)
    log = server.log
    assert "websocket PrivateEcho opened by user:" in log  # the server logs these sockets ...
    assert "websocket PrivateEcho refused: Invalid or expired token" in log
    assert tokens[2] not in log  # ... but never their tokens
    assert tokens[2].split(".")[2] not in log
    assert "leaky-secret-token-123" not in log


def test_origin_allow_list(server: Server) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(server.ws("/ws/EchoMessage"), origin=Origin("https://evil.example"), open_timeout=5)
    assert info.value.response.status_code == 403
    assert json.loads(info.value.response.body or b"{}")["error"]["code"] == "FORBIDDEN"
    with connect(server.ws("/ws/EchoMessage"), origin=Origin("https://good.example"), open_timeout=5) as ws:
        send(ws, {"message": "ok"})
        assert reports(recv(ws))
    with connect(server.ws("/ws/EchoMessage"), open_timeout=5) as ws:  # no Origin: not a browser
        send(ws, {"message": "ok"})
        assert reports(recv(ws))


def test_message_rate_limit(server: Server) -> None:
    with connect(server.ws("/ws/EchoMessage"), open_timeout=5) as ws:
        for i in range(25):
            send(ws, {"message": str(i)})
        answers = [recv(ws) for _ in range(25)]
        limited = [a for a in answers if not a["ok"]]
        assert limited and all(error_code(a) == "RATE_LIMITED" for a in limited)
        assert limited[0]["error"]["details"][0]["retry_after"] > 0
        assert sum(1 for a in answers if a["ok"]) >= 10
        time.sleep(0.3)
        send(ws, {"message": "later"})
        assert reports(recv(ws)) == [{"echo": "later", "client_id": "anonymous"}]


def test_per_user_connection_cap(server: Server) -> None:
    token = server.user()
    with connect(server.ws("/ws/PrivateEcho", token), open_timeout=5) as a, connect(
        server.ws("/ws/EchoMessage", token), open_timeout=5
    ) as b:
        send(a, {"message": "1"})
        assert reports(recv(a))
        send(b, {"message": "2"})
        assert reports(recv(b))
        with connect(server.ws("/ws/PrivateEcho", token), open_timeout=5) as c:
            err = recv(c)
            assert error_code(err) == "RATE_LIMITED"
            assert "too many connections" in err["error"]["message"]
            assert closed_with(c) == 1008
    time.sleep(0.3)  # the server forgets closed sockets
    with connect(server.ws("/ws/PrivateEcho", token), open_timeout=5) as d:
        send(d, {"message": "3"})
        assert reports(recv(d))


def test_unauthenticated_private_socket_is_closed_after_the_auth_timeout(server: Server) -> None:
    with connect(server.ws("/ws/PrivateEcho"), open_timeout=5) as ws:
        started = time.monotonic()
        assert error_code(recv(ws, timeout=5)) == "UNAUTHORIZED"
        assert closed_with(ws) == 1008
        assert 1.5 < time.monotonic() - started < 5


def test_url_tokens_are_taken_out_of_the_scope() -> None:
    scope = {"type": "websocket", "query_string": b"a=1&token=abc.def&b=2",
             "headers": [(b"authorization", b"Basic x")]}  # fmt: skip
    assert take_query_token(scope) == "abc.def"
    assert scope["query_string"] == b"a=1&b=2"
    assert take_query_token({"query_string": b"tokens=1"}) is None
    conn = with_bearer(scope, "abc.def")
    assert conn.headers.getlist("authorization") == ["Bearer abc.def"]
    assert scope["headers"] == [(b"authorization", b"Basic x")]  # the original is untouched


# --------------------------------------------------------------------------
# Broadcasts in one worker (item 8; across workers and pods: test_broadcast_e2e.py)
# --------------------------------------------------------------------------


def test_public_broadcast_reaches_every_socket(server: Server) -> None:
    with connect(server.ws("/ws/ChatRoom"), open_timeout=5) as a, connect(
        server.ws("/ws/ChatRoom"), open_timeout=5
    ) as b, connect(server.ws("/ws/ChatRoom"), open_timeout=5) as c:
        send(a, {"message": "hello all", "sender": "a"})
        expected = [{"type": "message", "sender": "a", "content": "hello all"}]
        got = [recv(x) for x in (a, b, c)]
        assert all(reports(g) == expected for g in got)
        assert len({g["meta"]["request_id"] for g in got}) == 1


def test_private_broadcast_reaches_only_authorised_sockets(server: Server, tokens: list[str]) -> None:
    with connect(server.ws("/ws/PrivateRoom", tokens[0]), open_timeout=5) as a, connect(
        server.ws("/ws/PrivateRoom", tokens[1]), open_timeout=5
    ) as b, connect(server.ws("/ws/PrivateRoom"), open_timeout=5) as anon:
        send(a, {"message": "members only"})
        expected = [{"type": "message", "content": "members only"}]
        assert reports(recv(a)) == expected
        assert reports(recv(b)) == expected
        assert silent(anon)
        send(anon, {"message": "let me in"})
        assert error_code(recv(anon)) == "UNAUTHORIZED"
        assert silent(a, 0.2) and silent(b, 0.2)
        # Presenting a valid token makes the socket a member.
        send(anon, {"message": "joined", "token": tokens[2]})
        joined = [{"type": "message", "content": "joined"}]
        assert reports(recv(anon)) == joined
        assert reports(recv(a)) == joined and reports(recv(b)) == joined


# --------------------------------------------------------------------------
# Graceful shutdown (item 9)
# --------------------------------------------------------------------------

@contextmanager
def supervised(
    tmp: Path, workers: int, server: str = "hypercorn"
) -> Iterator[tuple[subprocess.Popen[bytes], Server]]:
    """`jacscale serve` in a process we signal ourselves; killed if still running afterwards."""
    app = write_app(tmp / "app")
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "jacscale_core.cli", "serve", str(app), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--data-dir", str(data), "--server", server]  # fmt: skip
    with (data / f"server-{port}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "REDIS_URL": ""})
    srv = Server(f"http://127.0.0.1:{port}", data)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, srv.log
            try:
                if httpx.get(srv.base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, srv.log
            time.sleep(0.1)
        yield proc, srv
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=20)


# granian stops its workers itself: our drain (and so 1001) cannot run first there.
@pytest.mark.parametrize(
    ("server", "workers"), [("hypercorn", 1), ("uvicorn", 1), ("uvicorn", 2)]
)
def test_graceful_shutdown_closes_sockets_with_1001(tmp_path: Path, server: str, workers: int) -> None:
    with supervised(tmp_path, workers, server) as (proc, srv), ExitStack() as stack:
        sockets = [stack.enter_context(connect(srv.ws("/ws/PidRoom"), open_timeout=5)) for _ in range(6)]
        sockets.append(stack.enter_context(connect(srv.ws("/ws/EchoMessage"), open_timeout=5)))
        send(sockets[0], {"message": "hello"})
        pids = {reports(recv(ws))[0]["pid"] for ws in sockets[:6]}
        assert len(pids) == 1  # one broadcast, the same worker's answer on every socket
        deadline = time.monotonic() + 5  # well before hypercorn's 10 s graceful timeout
        proc.send_signal(signal.SIGTERM)
        codes = [closed_with(ws, timeout=max(0.1, deadline - time.monotonic())) for ws in sockets]
        assert codes == [1001] * len(sockets), srv.log
        assert proc.wait(timeout=20) == 0
