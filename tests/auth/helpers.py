"""Helpers for the auth HTTP tests: apps in a temp dir, register/login shortcuts."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from jacscale_ext.auth.state import AuthState

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TODO_APP = EXAMPLES / "todo" / "app.jac"
PERMISSIONS_APP = EXAMPLES / "06_permissions.jac"

SECRET = secrets.token_urlsafe(48)
# Suites register many users from one test client: registration throttling is tested
# on its own (tests/test_hostile_auth.py).
FAST_ENV = {
    "JACSCALE_PASSWORD_HASH": "fast",
    "JWT_SECRET": SECRET,
    "JACSCALE_REGISTER_MAX_PER_IP": "100000",
}
PASSWORD = "pw-123456"

_counter = itertools.count(1)


def unique_email(prefix: str = "user") -> str:
    """A fresh address for this test run."""
    return f"{prefix}{next(_counter)}-{secrets.token_hex(3)}@example.com"


def write_app(directory: Path, source: str, toml: str | None = None, name: str = "app.jac") -> Path:
    """Write a Jac program (and optionally a jac.toml beside it); return the program's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(source)
    if toml is not None:
        (directory / "jac.toml").write_text(toml)
    return path


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def register(
    client: TestClient, email: str | None = None, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    """Register and return the 201 body (fails the test on any other status)."""
    body: dict[str, Any] = {"password": password, **extra}
    if email is not None:
        body["email"] = email
    resp = client.post("/user/register", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def login(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Log in and return the 200 body."""
    resp = client.post("/user/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def new_user(client: TestClient, prefix: str = "user") -> dict[str, Any]:
    """Register a fresh user and log in: {email, user_id, root_id, token, headers}."""
    email = unique_email(prefix)
    reg = register(client, email)
    answer = login(client, email)
    return {
        **reg,
        "email": email,
        "token": answer["access_token"],
        "headers": bearer(answer["access_token"]),
    }


def auth_state(client: TestClient) -> AuthState:
    """The running app's auth services."""
    state = client.app.state.jacscale.state["auth"]  # type: ignore[attr-defined]
    assert isinstance(state, AuthState)
    return state


def error_code(resp: Any) -> str:
    """The envelope's error code."""
    return str(resp.json()["error"]["code"])
