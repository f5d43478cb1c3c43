"""Served apps with MONGODB_URI set: graphs, users and API keys in MongoDB.

MongoDB here is the wire-protocol TEST DOUBLE (jacscale_mongo/testing.py,
mongomock behind real sockets; standalone, so batches are compensated, not
transactional). `fresh_mongo` gives a test its own double that it can stop
(every connection cut, as a killed mongod) and start again with the data kept.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from jacscale_mongo.testing import FakeMongoServer
from pymongo import MongoClient

from jacscale_core.testing import TestApp, free_port, running_server
from jacscale_core.testing.served import reports, sign_up, write_through_outage

# The repository's example programs (data for these tests, nothing imported).
REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"

TODO = EXAMPLES / "todo" / "app.jac"
PASSWORD = "pw-123456"
AUTH_ENV = {"JWT_SECRET": secrets.token_urlsafe(48), "JACSCALE_PASSWORD_HASH": "fast"}


def database_uri(server_url: str, options: str = "") -> tuple[str, str]:
    """(URI of a fresh database on the server, its name)."""
    name = f"served_{uuid.uuid4().hex[:10]}"
    return f"{server_url.rstrip('/')}/{name}" + (f"?{options}" if options else ""), name


def open_db(uri: str, name: str) -> Any:
    """A PyMongo handle on the database, to look at what the app wrote."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=2000)
    return client[name]


def test_todo_app_users_and_api_keys_live_in_mongodb(
    mongo_server: str, redis_server: str, tmp_path: Path
) -> None:
    uri, name = database_uri(mongo_server)
    env = {"MONGODB_URI": uri, "REDIS_URL": redis_server, **AUTH_ENV}
    with TestApp(TODO, tmp_path, env=env) as client:
        alice, bob = sign_up(client, "alice@example.com"), sign_up(client, "bob@example.com")
        for title in ("milk", "eggs"):
            reports(client.post("/walker/add_todo", json={"title": title}, headers=alice))
        reports(client.post("/walker/add_todo", json={"title": "bread"}, headers=bob))
        listed = reports(client.post("/walker/list_todos", headers=alice))[0]
        assert [t["title"] for t in listed] == ["milk", "eggs"]
        assert [t["title"] for t in reports(client.post("/walker/list_todos", headers=bob))[0]] == [
            "bread"
        ]
        key = client.post("/api-key/create", json={"name": "ci"}, headers=alice)
        assert key.status_code == 201, key.text
        ready = client.get("/readyz").json()
        assert ready["ready"] is True, ready
        assert ready["checks"]["mongodb_changelog"]["ok"] is True
        assert ready["checks"]["redis_cache"]["ok"] is True

    db = open_db(uri, name)
    users = {u["email"]: u for u in db["users"].find()}
    assert set(users) == {"alice@example.com", "bob@example.com"}
    assert all(PASSWORD not in str(u) for u in users.values())
    assert db["identities"].find_one({"_id": "email:alice@example.com"}) is not None
    keys = list(db["api_keys"].find())
    assert [k["user_id"] for k in keys] == [users["alice@example.com"]["_id"]]
    assert (
        db["jacscale_anchors"].count_documents({"kind": "node"}) >= 3 + 2 + 2
    )  # todos, roots, system+guest
    assert not (tmp_path / "jacscale.db").exists()  # nothing went to SQLite
    db.client.close()


def test_100_concurrent_increments_over_4_workers_with_mongodb(
    mongo_server: str, tmp_path: Path
) -> None:
    uri, _ = database_uri(mongo_server)
    with running_server(TODO, tmp_path, workers=4, env={"MONGODB_URI": uri}) as base:

        async def hammer() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                return await asyncio.gather(*(client.post("/walker/increment") for _ in range(100)))

        responses = asyncio.run(hammer())
        failed = [r.text for r in responses if r.status_code != 200]
        assert not failed, failed[:3]
        assert sorted(r.json()["data"]["reports"][0] for r in responses) == list(range(1, 101))
        assert reports(httpx.post(base + "/walker/increment", timeout=10)) == [101]


def test_mongodb_down_at_start_fails_in_seconds_with_the_password_masked(tmp_path: Path) -> None:
    uri = f"mongodb://jac:TopSecret42@127.0.0.1:{free_port()}/app"  # the default timeouts
    started = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: B017 - start-up's own exception, checked below
        with TestApp(TODO, tmp_path, env={"MONGODB_URI": uri}):
            pass
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    message = str(info.value)
    assert "jac:***@127.0.0.1" in message and "unreachable" in message, message
    assert "TopSecret42" not in message


def test_a_write_error_is_a_503_never_swallowed(
    fresh_mongo: FakeMongoServer, tmp_path: Path
) -> None:
    uri, _ = database_uri(fresh_mongo.url, "serverSelectionTimeoutMS=1000")
    with TestApp(TODO, tmp_path, env={"MONGODB_URI": uri, **AUTH_ENV}) as client:
        alice = sign_up(client, "alice@example.com")
        reports(client.post("/walker/add_todo", json={"title": "before"}, headers=alice))
        fresh_mongo.stop()
        started = time.monotonic()
        r = client.post("/walker/add_todo", json={"title": "during"}, headers=alice)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "UNAVAILABLE"
        assert "127.0.0.1" not in r.text  # no infrastructure details for clients
        assert time.monotonic() - started < 10
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["store"]["ok"] is False
        fresh_mongo.start()
        reports(client.post("/walker/add_todo", json={"title": "after"}, headers=alice))
        titles = [t["title"] for t in reports(client.post("/walker/list_todos", headers=alice))[0]]
        assert titles[0] == "before" and titles[-1] == "after"
        assert client.get("/readyz").status_code == 200


def test_killed_mid_load_and_restarted_loses_no_acknowledged_write(
    fresh_mongo: FakeMongoServer, tmp_path: Path
) -> None:
    uri, _ = database_uri(fresh_mongo.url, "serverSelectionTimeoutMS=1000")
    env = {"MONGODB_URI": uri, **AUTH_ENV}
    with running_server(TODO, tmp_path, workers=2, env=env) as base:
        with httpx.Client(base_url=base, timeout=30) as sync_client:
            headers = sign_up(sync_client, "loader@example.com")

        load = write_through_outage(
            base, headers, stop=fresh_mongo.stop, start=fresh_mongo.start, down_seconds=1.5,
            timeout=90,
        )  # fmt: skip
        assert any(s >= 500 or s == 0 for s in load.statuses), "the outage hit no request"
        assert all(s >= 500 for s in load.refused.values()), load.refused  # never a 4xx
        assert not load.lost, f"{len(load.lost)} acknowledged writes lost: {load.lost[:5]}"
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
