"""Hostile input against auth: malformed tokens, look-alike emails, mass registration,
lockouts turned against the owner, and counters that must hold across workers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from jacscale_core.testing import TestApp, running_server
from jacscale_ext.auth.emails import InvalidEmail, normalize_email
from jacscale_ext.auth.tokens import TokenError, TokenService, key_id
from tests.auth.helpers import (
    EXAMPLES,
    FAST_ENV,
    PASSWORD,
    SECRET,
    TODO_APP,
    auth_state,
    bearer,
    new_user,
    register,
    unique_email,
    write_app,
)

WS_APP = EXAMPLES / "04_websockets.jac"


# -- malformed tokens ------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: Any, claims: Any, secret: str = SECRET, raw_claims: bytes | None = None) -> str:
    """A token whose signature is right (so only its shape can be refused)."""
    head = b64(json.dumps(header).encode() if not isinstance(header, bytes) else header)
    body = b64(raw_claims if raw_claims is not None else json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


KID = key_id(SECRET)
NOW = int(time.time())
GOOD = {"sub": "u", "iss": "jacscale", "aud": "jacscale", "iat": NOW, "exp": NOW + 600,
        "token_type": "access"}  # fmt: skip
HEAD = {"alg": "HS256", "kid": KID, "typ": "JWT"}

MALFORMED = {
    "kid is a list": signed({**HEAD, "kid": ["x"]}, GOOD),
    "kid is an object": signed({**HEAD, "kid": {"a": 1}}, GOOD),
    "kid is a number": signed({**HEAD, "kid": 7}, GOOD),
    "alg is a list": signed({**HEAD, "alg": ["HS256"]}, GOOD),
    "header is a list": signed([1, 2], GOOD),
    "header nested deep": signed(b"[" * 5000 + b"]" * 5000, GOOD),
    "header with NaN": signed(b'{"alg": "HS256", "kid": "%s", "x": NaN}' % KID.encode(), GOOD),
    "claims are a list": signed(HEAD, [1, 2]),
    "claims are a string": signed(HEAD, "claims"),
    "claims nested deep": signed(HEAD, None, raw_claims=b"[" * 5000 + b"]" * 5000),
    "claims not utf-8": signed(HEAD, None, raw_claims=b"\xff\xfe{}"),
    "exp is Infinity": signed(HEAD, None, raw_claims=json.dumps({**GOOD, "exp": 1e400}).encode()),
    "exp is a list": signed(HEAD, {**GOOD, "exp": [1]}),
    "aud is an object": signed(HEAD, {**GOOD, "aud": {"jacscale": 1}}),
    "token_type is a list": signed(HEAD, {**GOOD, "token_type": ["access"]}),
    "token_type is an object": signed(HEAD, {**GOOD, "token_type": {"access": 1}}),
    "sub is an object": signed(HEAD, {**GOOD, "sub": {"id": 1}}),
    "non-ascii segment": "é.é.é",
    "four segments": "a.b.c.d",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_token_is_a_token_error(name: str) -> None:
    service = TokenService(SECRET)
    with pytest.raises(TokenError):
        service.verify(MALFORMED[name], token_types=frozenset({"access"}))


@pytest.fixture(scope="module")
def todo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestApp(TODO_APP, tmp_path_factory.mktemp("hostile-auth"), env=FAST_ENV) as client:
        yield client


ROUTES = [
    ("POST", "/walker/list_todos"),
    ("GET", "/user/me"),
    ("POST", "/user/refresh"),
    ("POST", "/traverse"),
    ("GET", "/api-key/list"),
    ("POST", "/walker/ping"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_malformed_tokens_are_401_on_every_route(
    todo: TestClient, method: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    for name, token in MALFORMED.items():
        if not token.isascii():  # a header cannot carry it
            continue
        resp = todo.request(method, path, headers=bearer(token))
        assert resp.status_code == 401, (name, resp.text[:200])
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info], "no tracebacks"


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_malformed_tokens_are_refused_on_websockets_with_1008(tmp_path: Path, server: str) -> None:
    env = {**FAST_ENV, "JACSCALE_SERVER": server}
    with running_server(WS_APP, tmp_path / "data", env=env) as base:
        ws_url = base.replace("http://", "ws://") + "/ws/PrivateEcho"
        for name in ("kid is a list", "claims nested deep", "token_type is an object"):
            url = f"{ws_url}?token={MALFORMED[name]}"
            if server == "uvicorn" and len(url) > 8192:
                # uvicorn's WebSocket protocol (the websockets library) refuses a
                # request line over 8 KiB before the app sees it: a plain 414
                # (docs/servers.md); hypercorn hands it to us.
                with pytest.raises(InvalidStatus) as refused:
                    connect(url, open_timeout=5)
                response = refused.value.response
                assert response.status_code == 414, name
                assert response.headers["Content-Type"].startswith("text/plain"), name
                assert b"Failed to open a WebSocket connection" in response.body, name
                continue
            with connect(url, open_timeout=5) as ws:
                answer = json.loads(ws.recv(timeout=5))
                assert answer["error"]["code"] == "UNAUTHORIZED", name
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, name
        log = next((tmp_path / "data").glob("server-*.log")).read_text()
    assert "Traceback" not in log and "1011" not in log


# -- email addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "a@example.com\x00evil",
        "a\x1b[31m@example.com",
        "a\x7f@example.com",
        "a\u202e@example.com",
        "a\u200b@example.com",
        "a@exa\u200dmple.com",
        "a@example.com\ufeff",
        "a\u2028b@example.com",
    ],
)
def test_control_and_invisible_characters_are_refused(todo: TestClient, address: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(address)
    resp = todo.post("/user/register", json={"email": address, "password": PASSWORD})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["loc"] == ["body", "email"]


def test_look_alikes_are_the_same_identity(todo: TestClient) -> None:
    local = unique_email("wide").split("@")[0]
    register(todo, f"{local}@example.com")
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in local)
    for look_alike in (f"{wide}@ｅｘａｍｐｌｅ.ｃｏｍ", f"{local}@EXAMPLE.com", f"{local}@Example.Com"):
        resp = todo.post("/user/register", json={"email": look_alike, "password": PASSWORD})
        assert resp.status_code == 409, (look_alike, resp.text)
    # and the full-width spelling logs in to the same account
    resp = todo.post("/user/login", json={"email": f"{wide}@ｅｘａｍｐｌｅ.ｃｏｍ", "password": PASSWORD})
    assert resp.status_code == 200, resp.text


def test_normal_form() -> None:
    assert normalize_email("  Bob@Example.COM ") == "Bob@example.com"
    assert normalize_email("ｂｏｂ@ｅｘａｍｐｌｅ.ｃｏｍ") == "bob@example.com"


# -- registration throttle and lockouts ---------------------------------------------------

LIMITS_TOML = """
[plugins.scale.auth]
login_max_failures_per_account = 3
login_max_failures_per_ip = 50
login_slow_down_seconds = 0.2
register_max_per_ip = 3
trust_forwarded_for = true
"""
LIMIT_ENV = {k: v for k, v in FAST_ENV.items() if k != "JACSCALE_REGISTER_MAX_PER_IP"}


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def test_registration_is_throttled_by_address(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", TODO_APP.read_text(), LIMITS_TOML)
    with TestApp(app, tmp_path / "data", env=LIMIT_ENV) as client:
        codes = [
            client.post("/user/register", headers=from_ip("10.0.0.1"),
                        json={"email": unique_email(), "password": PASSWORD}).status_code
            for _ in range(5)
        ]  # fmt: skip
        assert codes == [201, 201, 201, 429, 429]
        resp = client.post("/user/register", headers=from_ip("10.0.0.1"),
                           json={"email": unique_email(), "password": PASSWORD})  # fmt: skip
        assert resp.json()["error"]["code"] == "RATE_LIMITED" and "retry-after" in resp.headers
        other = client.post("/user/register", headers=from_ip("10.0.0.2"),
                            json={"email": unique_email(), "password": PASSWORD})  # fmt: skip
        assert other.status_code == 201, "another address is not affected"


def test_a_lockout_slows_the_attacker_but_lets_the_owner_in(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", TODO_APP.read_text(), LIMITS_TOML)
    with TestApp(app, tmp_path / "data", env=LIMIT_ENV) as client:
        victim = unique_email("victim")
        register(client, victim)
        wrong = {"email": victim, "password": "not-the-password"}
        codes = [
            client.post("/user/login", json=wrong, headers=from_ip("10.6.6.6")).status_code
            for _ in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429], "the attacker's address is refused"
        # Other addresses guessing the same account are slowed down, not refused.
        started = time.monotonic()
        assert client.post("/user/login", json=wrong, headers=from_ip("10.7.7.7")).status_code == 401
        assert time.monotonic() - started >= 0.2
        # The owner, from their own address, still logs in with the right password.
        right = {"email": victim, "password": PASSWORD}
        resp = client.post("/user/login", json=right, headers=from_ip("192.0.2.10"))
        assert resp.status_code == 200, resp.text


def test_sso_loopback_redirects_default_off_in_production(tmp_path: Path) -> None:
    with TestApp(TODO_APP, tmp_path / "dev", env=FAST_ENV) as client:
        assert auth_state(client).sso.allow_loopback_redirects is True
    production = {"JWT_SECRET": SECRET, "JACSCALE_ENV": "production"}
    with TestApp(TODO_APP, tmp_path / "prod", env=production) as client:
        assert auth_state(client).sso.allow_loopback_redirects is False


# -- the counters are shared by every worker ----------------------------------------------


def test_throttles_hold_across_four_workers(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", TODO_APP.read_text(), LIMITS_TOML)
    # start_timeout: four workers each load jaclang; a busy machine needs a while
    with running_server(
        app, tmp_path / "data", workers=4, env=LIMIT_ENV, start_timeout=240
    ) as base:
        victim = unique_email("victim")

        def post(path: str, body: dict[str, Any], ip: str) -> int:
            # A new connection each time: the kernel spreads them over the workers.
            with httpx.Client(base_url=base, timeout=30) as http:
                return http.post(path, json=body, headers=from_ip(ip)).status_code

        assert post("/user/register", {"email": victim, "password": PASSWORD}, "10.1.1.1") == 201
        registrations = [
            post("/user/register", {"email": unique_email(), "password": PASSWORD}, "10.1.1.1")
            for _ in range(8)
        ]
        assert registrations == [201, 201] + [429] * 6, registrations
        wrong = {"email": victim, "password": "not-the-password"}
        logins = [post("/user/login", wrong, "10.2.2.2") for _ in range(12)]
        assert logins == [401] * 3 + [429] * 9, logins
        assert post("/user/login", {"email": victim, "password": PASSWORD}, "10.3.3.3") == 200


def test_new_user_helper_still_works(todo: TestClient) -> None:
    user = new_user(todo)
    assert todo.get("/user/me", headers=user["headers"]).status_code == 200
