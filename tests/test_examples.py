"""The reference document's example programs (examples/, copied from the spec) load and answer as documented.

03 (webhooks), 04 (WebSockets), 05 (storage) and 08 (kvstore) are exercised in
tests/test_webhooks.py, tests/test_websockets.py, tests/test_storage.py and the
kvstore tests, which own the servers and keys those need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jacscale_core.testing import TestApp
from jacscale_core.testing.header_auth import HeaderAuth
from tests.fixtures.servers import EXAMPLES

USER = {"X-Test-User": "u1"}


def reports(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    return list(response.json()["data"]["reports"])


def test_01_walkers_become_post_endpoints(tmp_path: Path) -> None:
    with TestApp(EXAMPLES / "01_walkers.jac", tmp_path, plugins=[HeaderAuth()]) as c:
        assert reports(c.post("/walker/get_users", json={}, headers=USER)) == [[]]
        r = c.post("/walker/search", json={"query": "hello", "limit": 20}, headers=USER)
        assert reports(r) == [{"query": "hello", "limit": 20}]
        assert reports(c.post("/walker/search", json={"query": "x"}, headers=USER)) == [
            {"query": "x", "limit": 10}
        ]
        assert reports(c.post("/walker/health", json={}, headers=USER)) == [{"status": "healthy"}]
        # No :pub modifier: protected.
        assert c.post("/walker/health", json={}).status_code == 401


def test_02_restspec_methods_and_paths(tmp_path: Path) -> None:
    with TestApp(EXAMPLES / "02_restspec.jac", tmp_path) as c:
        assert reports(c.get("/walker/get_users")) == [[]]
        assert c.post("/walker/get_users", json={}).status_code == 405
        assert reports(c.get("/custom/users")) == [[]]
        assert c.get("/walker/list_users").status_code == 404
        assert c.get("/function/health_check").json()["data"]["result"] == {"status": "healthy"}
        assert c.get("/custom/status").json()["data"]["result"] == {
            "status": "running",
            "version": "1.0.0",
        }
        # Imported runtime helpers are never endpoints.
        for name in ("restspec", "connect", "log_report", "HTTPMethod"):
            assert c.get(f"/function/{name}").status_code == 404
            assert c.post(f"/function/{name}", json={}).status_code == 404


def test_06_permissions_across_users(tmp_path: Path) -> None:
    auth = HeaderAuth()
    alice, bob = {"X-Test-User": "alice"}, {"X-Test-User": "bob"}
    with TestApp(EXAMPLES / "06_permissions.jac", tmp_path, plugins=[auth]) as c:
        private = reports(c.post("/walker/create_post", json={"text": "private"}, headers=alice))[0]
        public = reports(
            c.post("/walker/create_post", json={"text": "public", "share": "read"}, headers=alice)
        )[0]
        assert private["_jac_archetype"] == "node" and private["text"] == "private"
        reports(c.post("/walker/create_post", json={"text": "bob's"}, headers=bob))
        # feed walks every root: bob sees alice's public post and his own, not her private one.
        assert reports(c.post("/walker/feed", headers=bob)) == [["bob's", "public"]]
        assert reports(c.post("/walker/feed", headers=alice)) == [["private", "public"]]
        # Sharing with bob's root by id (a string, as the reference document passes it).
        c.post("/walker/share_with", json={"target_root_id": auth.roots["bob"]}, headers=alice)
        assert reports(c.post("/walker/feed", headers=bob)) == [["bob's", "private", "public"]]
        # Revoking a single root, then everyone.
        c.post("/walker/unshare", json={"target_root_id": auth.roots["bob"]}, headers=alice)
        assert reports(c.post("/walker/feed", headers=bob)) == [["bob's", "public"]]
        c.post("/walker/unshare", json={}, headers=alice)
        assert reports(c.post("/walker/feed", headers=bob)) == [["bob's"]]
        assert c.post(f"/walker/like_post/{public['_jac_id']}", headers=bob).status_code == 404


def test_07_async_walker(tmp_path: Path) -> None:
    with TestApp(EXAMPLES / "07_async.jac", tmp_path, plugins=[HeaderAuth()]) as c:
        r = c.post("/walker/async_processor", json={"items": [1, 2, 3]}, headers=USER)
        assert reports(r) == [[2, 4, 6]]
        r = c.post("/walker/async_processor", json={"items": "nope"}, headers=USER)
        assert r.status_code == 422


def test_09_builtins_commit_and_allroots(tmp_path: Path) -> None:
    with TestApp(EXAMPLES / "09_builtins.jac", tmp_path, plugins=[HeaderAuth()]) as c:
        # allroots() counts the guest root and every user root, never the system root.
        first = reports(c.post("/walker/build_graph", json={}))[0]
        reports(c.post("/walker/build_graph", json={}, headers=USER))
        second = reports(c.post("/walker/build_graph", json={}))[0]
        assert second == first + 1


def test_11_streaming_generators_stream_and_the_walk_saves_at_the_end(tmp_path: Path) -> None:
    with TestApp(EXAMPLES / "11_streaming.jac", tmp_path) as c:
        r = c.post("/function/countdown", json={"start": 2})
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.text == 'data: {"left":2}\n\ndata: {"left":1}\n\nevent: end\ndata: {}\n\n'
        r = c.post(
            "/walker/echo_words", json={"text": "a b"}, headers={"Accept": "application/json"}
        )
        assert reports(r) == ["a", "b"]
        assert "reports" not in r.json()["data"]["result"]  # reports live in data.reports only
        assert c.post("/walker/echo_words", json={"text": "c"}).text.startswith('data: "c"')
        assert reports(c.post("/walker/count_notes")) == [2]
