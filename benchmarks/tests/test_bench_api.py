"""The setup client: auth shapes, token discovery, webhook signatures (mock server)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from harness.api import ApiClient, ApiError, find_key, reports_of


def client(handler: httpx.MockTransport) -> ApiClient:
    api = ApiClient("http://bench.test")
    api._http = httpx.Client(base_url="http://bench.test", transport=handler)
    return api


def test_find_key_and_reports() -> None:
    assert find_key({"data": {"token": "t"}}, "access_token", "token") == "t"
    assert find_key({"access_token": "a", "data": {"token": "t"}}, "access_token", "token") == "a"
    assert find_key({"x": 1}, "token") is None
    assert reports_of({"ok": True, "data": {"reports": [[1, 2]]}}) == [[1, 2]]
    assert reports_of([1]) == [1]
    with pytest.raises(ApiError):
        reports_of({"ok": True, "data": None})


def test_register_falls_back_to_the_identities_shape_and_remembers_it() -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        if request.url.path == "/user/register":
            if "identities" not in body:
                return httpx.Response(422, json={"detail": "identities required"})
            return httpx.Response(201, json={"ok": True, "data": {"user_id": "u"}})
        if "identity" not in body:
            return httpx.Response(422, json={"detail": "identity required"})
        return httpx.Response(200, json={"ok": True, "data": {"token": "tok"}})

    api = client(httpx.MockTransport(handle))
    first = api.new_user("a")
    assert first.token == "tok" and first.auth == {"Authorization": "Bearer tok"}
    count = len(seen)
    api.new_user("b")
    assert len(seen) - count == 2  # the shape that worked is used straight away


def test_register_errors_other_than_shape_are_reported() -> None:
    api = client(httpx.MockTransport(lambda r: httpx.Response(500, text="db down")))
    with pytest.raises(ApiError, match="HTTP 500: db down"):
        api.new_user("x")


def test_seeding_uses_bulk_add_in_chunks() -> None:
    counts: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        counts.append(json.loads(request.content)["count"])
        return httpx.Response(200, json={"ok": True, "data": {"reports": [1]}})

    api = client(httpx.MockTransport(handle))
    from harness.api import User

    user = User("e", "t")
    api.seed(user, 2500)
    assert counts == [1000, 1000, 500] and user.todos == 2500
    api.seed(user, 2000)
    assert counts == [1000, 1000, 500]


def test_webhook_headers_use_the_scheme_the_server_accepts() -> None:
    body = b'{"payment_id": "P"}'

    def jac_scale(request: httpx.Request) -> httpx.Response:
        ts = request.headers["X-Webhook-Timestamp"]
        want = hmac.new(b"sec", ts.encode() + b"." + request.content, hashlib.sha256).hexdigest()
        ok = request.headers["X-Webhook-Signature"] == want
        return httpx.Response(200 if ok else 401, json={"ok": ok})

    def documented(request: httpx.Request) -> httpx.Response:
        want = hmac.new(b"key", request.content, hashlib.sha256).hexdigest()
        ok = request.headers["X-Webhook-Signature"] == want
        return httpx.Response(200 if ok else 401, json={"ok": ok})

    from harness.api import WebhookKey

    for handler, key in (
        (jac_scale, WebhookKey("key", "sec")),
        (documented, WebhookKey("key", None)),
        (documented, WebhookKey("key", "sec")),
    ):
        headers = client(httpx.MockTransport(handler)).webhook_headers(key, "/webhook/W", body)
        assert headers["X-API-Key"] == "key"
    with pytest.raises(ApiError, match="no webhook signature scheme"):
        client(
            httpx.MockTransport(lambda r: httpx.Response(401, json={"ok": False}))
        ).webhook_headers(WebhookKey("k", None), "/webhook/W", body)
