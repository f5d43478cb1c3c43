"""Talking to a server under test through its own public API (setup, seeding, checks).

Both servers are driven the same way: users register and log in over HTTP,
graphs are seeded with the app's `bulk_add` walker, API keys come from
/api-key/create. Where the two differ in shape (jac-scale 0.2.31 only accepts
its `identities` body and returns `data.token`), the client tries the
documented flat shape first and then jac-scale's, and remembers what worked.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

SEED_CHUNK = 1000  # nodes per bulk_add call while seeding
_counter = itertools.count(1)


class ApiError(Exception):
    """A setup call failed; the message has the status and the start of the body."""


def _explain(resp: httpx.Response) -> str:
    return f"HTTP {resp.status_code}: {resp.text[:300]}"


def find_key(obj: Any, *keys: str) -> Any:
    """The first value under any of `keys`, searched depth-first through dicts."""
    if isinstance(obj, dict):
        for key in keys:
            if obj.get(key):
                return obj[key]
        for value in obj.values():
            found = find_key(value, *keys)
            if found is not None:
                return found
    return None


def reports_of(body: Any) -> list[Any]:
    """`data.reports` of an envelope, or the body itself when it is a bare list."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        data = body.get("data")
        if isinstance(data, dict) and isinstance(data.get("reports"), list):
            return list(data["reports"])
    raise ApiError(f"no reports in response: {json.dumps(body)[:300]}")


def envelope_ok(resp: httpx.Response) -> tuple[bool, str]:
    """(True, "") if the response is 200 with an ok envelope, else (False, why)."""
    if resp.status_code != 200:
        return False, _explain(resp)
    try:
        body = resp.json()
    except ValueError:
        return False, f"not JSON: {resp.text[:200]}"
    if isinstance(body, dict) and body.get("ok") is False:
        return False, _explain(resp)
    return True, ""


@dataclass
class User:
    """A registered, logged-in benchmark user and how many todos its root holds."""

    email: str
    token: str
    todos: int = 0

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header for this user."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class WebhookKey:
    """An API key for /webhook/*, and the secret jac-scale signs with (if it gave one)."""

    api_key: str
    signing_secret: str | None


@dataclass
class ApiClient:
    """Setup-side client for one server."""

    base_url: str
    timeout: float = 120.0
    users: dict[str, User] = field(default_factory=dict)
    _shape: str | None = None  # "flat" | "identities", learned on first register
    _http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """The underlying httpx client (created on first use)."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)
        return self._http

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST JSON to the server."""
        return self.http.post(path, json=body, headers=headers or {})

    # -- users ---------------------------------------------------------------------

    @staticmethod
    def _bodies(email: str, password: str, login: bool) -> dict[str, dict[str, Any]]:
        identity = {"type": "email", "value": email}
        credential = {"type": "password", "password": password}
        if login:
            structured: dict[str, Any] = {"identity": identity, "credential": credential}
        else:
            structured = {"identities": [identity], "credential": credential}
        return {"flat": {"email": email, "password": password}, "identities": structured}

    def _call_auth(self, path: str, bodies: dict[str, dict[str, Any]]) -> httpx.Response:
        order = [self._shape] if self._shape else ["flat", "identities"]
        resp: httpx.Response | None = None
        for shape in order:
            assert shape is not None
            resp = self.post(path, bodies[shape])
            if resp.status_code in (200, 201):
                self._shape = shape
                return resp
            if resp.status_code not in (400, 422):
                break
        assert resp is not None
        raise ApiError(f"POST {path} failed: {_explain(resp)}")

    def new_user(self, tag: str) -> User:
        """Register and log in a fresh user (unique email per call)."""
        email = f"bench-{tag}-{next(_counter)}-{time.time_ns() % 10**9}@bench.example"
        password = "bench-Password-123"
        self._call_auth("/user/register", self._bodies(email, password, login=False))
        resp = self._call_auth("/user/login", self._bodies(email, password, login=True))
        token = find_key(resp.json(), "access_token", "token")
        if not isinstance(token, str):
            raise ApiError(f"login answered without a token: {resp.text[:300]}")
        return User(email=email, token=token)

    def user(self, name: str, todos: int = 0) -> User:
        """The named user (registered on first use) grown to at least `todos` todos."""
        if name not in self.users:
            self.users[name] = self.new_user(name)
        user = self.users[name]
        self.seed(user, todos)
        return user

    def seed(self, user: User, todos: int) -> None:
        """Add todos through the app's bulk_add walker until the root holds `todos`."""
        while user.todos < todos:
            count = min(SEED_CHUNK, todos - user.todos)
            resp = self.post("/walker/bulk_add", {"count": count, "prefix": "seed"}, user.auth)
            ok, why = envelope_ok(resp)
            if not ok:
                raise ApiError(f"seeding bulk_add({count}) failed: {why}")
            user.todos += count

    def todo_ids(self, user: User, limit: int) -> list[str]:
        """Ids of the user's first `limit` todos (from list_todos)."""
        resp = self.post("/walker/list_todos", {"limit": limit}, user.auth)
        ok, why = envelope_ok(resp)
        if not ok:
            raise ApiError(f"list_todos failed: {why}")
        reports = reports_of(resp.json())
        nodes = reports[0] if reports and isinstance(reports[0], list) else []
        ids = [n["_jac_id"] for n in nodes if isinstance(n, dict) and n.get("_jac_id")]
        if not ids:
            raise ApiError(f"list_todos returned no node ids: {resp.text[:300]}")
        return ids

    # -- webhooks ------------------------------------------------------------------

    def webhook_key(self, user: User) -> WebhookKey:
        """Create an API key for webhooks (valid one day)."""
        resp = self.post("/api-key/create", {"name": "bench", "expiry_days": 1}, user.auth)
        if resp.status_code not in (200, 201):
            raise ApiError(f"/api-key/create failed: {_explain(resp)}")
        body = resp.json()
        api_key = find_key(body, "api_key")
        if not isinstance(api_key, str):
            raise ApiError(f"/api-key/create answered without api_key: {resp.text[:300]}")
        secret = find_key(body, "signing_secret")
        return WebhookKey(
            api_key=api_key, signing_secret=secret if isinstance(secret, str) else None
        )

    def webhook_headers(self, key: WebhookKey, path: str, body: bytes) -> dict[str, str]:
        """Signed headers that this server accepts for `body` (tried with one real call).

        Candidates: the documented scheme (HMAC-SHA256 of the body keyed with the API
        key) and jac-scale 0.2.31's (HMAC of "<timestamp>." + body keyed with the
        signing secret, timestamp in X-Webhook-Timestamp). Signatures with a
        timestamp stay valid for jac-scale's 300 s replay window.
        """
        ts = str(int(time.time()))
        candidates = [
            hmac.new(key.api_key.encode(), body, hashlib.sha256).hexdigest(),
        ]
        if key.signing_secret:
            signed = ts.encode() + b"." + body
            candidates.insert(
                0, hmac.new(key.signing_secret.encode(), signed, hashlib.sha256).hexdigest()
            )
        last = ""
        for signature in candidates:
            headers = {
                "Content-Type": "application/json",
                "X-API-Key": key.api_key,
                "X-Webhook-Signature": signature,
                "X-Webhook-Timestamp": ts,
            }
            resp = self.http.post(path, content=body, headers=headers)
            ok, last = envelope_ok(resp)
            if ok:
                return headers
        raise ApiError(f"no webhook signature scheme accepted: {last}")
