"""Served apps with DATABASE_URL on a real PostgreSQL: data placement, faults, several servers.

Faults: PostgreSQL down at start, gone during a request (503, then recovery
without a restart), killed in the middle of a load (no acknowledged write lost,
and no 503 for a write that committed), an exhausted pool (a bounded wait,
then 503) and a statement timeout (503). Several servers: two `jacscale serve`
processes with their own data directories on one database.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from jacscale_postgres.testing import PostgresServer
from websockets.sync.client import connect

from jacscale_core.testing import TestApp, free_port, running_server
from jacscale_core.testing.served import reports, sign_up, write_through_outage

# The repository's example programs (data for these tests, nothing imported).
REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"

TODO = EXAMPLES / "todo" / "app.jac"
CHAT = EXAMPLES / "04_websockets.jac"
PASSWORD = "pw-123456"
AUTH_ENV = {"JWT_SECRET": secrets.token_urlsafe(48), "JACSCALE_PASSWORD_HASH": "fast"}


def env_for(url: str) -> dict[str, str]:
    """The environment of a served app on `url` (no Redis: PostgreSQL does everything)."""
    return {"DATABASE_URL": url, "REDIS_URL": "", "MONGODB_URI": "", **AUTH_ENV}


def app_with_toml(tmp: Path, app: Path, toml: str) -> Path:
    """A copy of `app` in `tmp`/app with this jac.toml beside it."""
    folder = tmp / "app"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(app, folder / app.name)
    (folder / "jac.toml").write_text(toml)
    return folder / app.name


def titles(client: httpx.Client | Any, headers: dict[str, str]) -> list[str]:
    """The todo titles of the caller, in order."""
    return [t["title"] for t in reports(client.post("/walker/list_todos", headers=headers))[0]]


def test_todo_app_users_and_api_keys_live_in_postgres(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_database("served")
    with TestApp(TODO, tmp_path, env=env_for(url)) as client:
        alice, bob = sign_up(client, "alice@example.com"), sign_up(client, "bob@example.com")
        for title in ("milk", "eggs"):
            reports(client.post("/walker/add_todo", json={"title": title}, headers=alice))
        reports(client.post("/walker/add_todo", json={"title": "bread"}, headers=bob))
        assert titles(client, alice) == ["milk", "eggs"]
        assert titles(client, bob) == ["bread"]
        key = client.post("/api-key/create", json={"name": "ci"}, headers=alice)
        assert key.status_code == 201, key.text
        ready = client.get("/readyz").json()
        assert ready["ready"] is True, ready
        assert ready["checks"]["store"]["detail"].startswith("postgresql://jacscale:***@")
    with psycopg.connect(url) as conn:
        docs = conn.execute("SELECT collection, doc FROM jacscale_docs").fetchall()
        nodes = conn.execute("SELECT count(*) FROM jacscale_anchors WHERE kind = 'node'").fetchone()
    users = {d["email"]: d for c, d in docs if c == "users"}
    assert set(users) == {"alice@example.com", "bob@example.com"}
    assert all(PASSWORD not in str(d) for _, d in docs)
    assert [d["user_id"] for c, d in docs if c == "api_keys"] == [users["alice@example.com"]["_id"]]
    assert nodes is not None and nodes[0] >= 3 + 2 + 2  # todos, roots, system + guest
    assert not (tmp_path / "jacscale.db").exists()  # nothing went to SQLite


def test_a_non_postgres_database_url_is_refused_naming_it(tmp_path: Path) -> None:
    env = env_for("mysql://root:Hunter22@db/app")
    with pytest.raises(Exception, match=r"is not a PostgreSQL URL") as info:  # noqa: B017
        with TestApp(TODO, tmp_path, env=env):
            pass
    assert "Hunter22" not in str(info.value)


def test_postgres_down_at_start_fails_in_seconds_with_the_password_masked(tmp_path: Path) -> None:
    url = f"postgresql://jac:TopSecret42@127.0.0.1:{free_port()}/app"
    started = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: B017 - start-up's own exception, checked below
        with TestApp(TODO, tmp_path, env=env_for(url)):
            pass
    assert time.monotonic() - started < 15
    message = str(info.value)
    assert "jac:***@127.0.0.1" in message and "unreachable" in message, message
    assert "TopSecret42" not in message


def test_the_served_command_exits_with_a_clear_error_when_postgres_is_down(tmp_path: Path) -> None:
    url = f"postgresql://jac:TopSecret42@127.0.0.1:{free_port()}/app"
    with pytest.raises(RuntimeError) as info:
        with running_server(TODO, tmp_path, env=env_for(url), start_timeout=30):
            pass
    log = str(info.value)
    assert "server exited (1)" in log and "PostgreSQL at postgresql://jac:***@127.0.0.1" in log, log
    assert "TopSecret42" not in log


def test_an_outage_answers_503_and_recovers_without_a_restart(
    fresh_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = fresh_postgres.fresh_database("outage")
    with TestApp(TODO, tmp_path, env=env_for(url)) as client:
        alice = sign_up(client, "alice@example.com")
        reports(client.post("/walker/add_todo", json={"title": "before"}, headers=alice))
        fresh_postgres.stop()
        started = time.monotonic()
        r = client.post("/walker/add_todo", json={"title": "during"}, headers=alice)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "UNAVAILABLE"
        assert "127.0.0.1" not in r.text and fresh_postgres.password not in r.text
        assert time.monotonic() - started < 10
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["store"]["ok"] is False
        fresh_postgres.start()
        reports(client.post("/walker/add_todo", json={"title": "after"}, headers=alice))
        assert titles(client, alice) == ["before", "after"]
        assert client.get("/readyz").status_code == 200


POOL_TOML = """
[plugins.scale.postgres]
pool_size = 1
pool_timeout_seconds = 0.5
"""


def _lock_every_anchor(url: str, hold: threading.Event, locked: threading.Event) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT id FROM jacscale_anchors FOR UPDATE").fetchall()
        locked.set()
        hold.wait(30)


@contextmanager
def every_anchor_locked(url: str) -> Iterator[None]:
    """Another connection holds a row lock on every anchor for the block."""
    hold, locked = threading.Event(), threading.Event()
    locker = threading.Thread(target=_lock_every_anchor, args=(url, hold, locked))
    locker.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        hold.set()
        locker.join(10)


def test_an_exhausted_pool_waits_a_bounded_time_then_answers_503(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_database("pool")
    app = app_with_toml(tmp_path, TODO, POOL_TOML)
    with TestApp(app, tmp_path / "data", env=env_for(url)) as client:
        reports(client.post("/walker/increment"))
        first: list[httpx.Response] = []
        with every_anchor_locked(url):
            # This request takes the only connection and waits for the row lock.
            blocked = threading.Thread(
                target=lambda: first.append(client.post("/walker/increment"))
            )
            blocked.start()
            time.sleep(0.5)
            started = time.monotonic()
            r = client.post("/walker/increment")
            waited = time.monotonic() - started
            assert r.status_code == 503, r.text
            assert "no free connection" in r.json()["error"]["message"]
            assert waited < 5
        blocked.join(30)
        assert reports(first[0]) == [2]  # the waiting request went through once the lock went
        assert reports(client.post("/walker/increment")) == [3]


TIMEOUT_TOML = """
[plugins.scale.postgres]
statement_timeout_ms = 300
"""


def test_a_statement_over_its_timeout_answers_503_and_writes_nothing(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_database("timeout")
    app = app_with_toml(tmp_path, TODO, TIMEOUT_TOML)
    with TestApp(app, tmp_path / "data", env=env_for(url)) as client:
        reports(client.post("/walker/increment"))
        with every_anchor_locked(url):
            r = client.post("/walker/increment")
        assert r.status_code == 503, r.text
        assert "took too long" in r.json()["error"]["message"]
        assert reports(client.post("/walker/increment")) == [2]  # the timed-out one left nothing


def test_killed_mid_load_loses_no_acknowledged_write_and_refuses_none_that_committed(
    fresh_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = fresh_postgres.fresh_database("kill")
    with running_server(TODO, tmp_path, workers=2, env=env_for(url)) as base:
        with httpx.Client(base_url=base, timeout=30) as sync_client:
            headers = sign_up(sync_client, "loader@example.com")

        # Down longer than the pool's 5 s wait: requests in that window must fail.
        load = write_through_outage(
            base, headers, stop=fresh_postgres.kill, start=fresh_postgres.start, down_seconds=7.0,
        )  # SIGKILL, every backend with it; then crash recovery
        assert load.refused, f"the outage hit no request: {sorted(set(load.statuses))}"
        assert set(load.refused.values()) == {503}, load.refused  # never a 4xx or a 500
        assert not load.lost, f"{len(load.lost)} acknowledged writes lost: {load.lost[:5]}"
        committed_but_refused = [t for t in load.refused if t in load.stored]
        assert not committed_but_refused, committed_but_refused
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200


# --------------------------------------------------------------------------
# Two servers, one database
# --------------------------------------------------------------------------


def test_two_servers_share_one_database_exactly(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_database("pair")
    env = env_for(url)
    with (
        running_server(TODO, tmp_path / "one", env=env) as one,
        running_server(TODO, tmp_path / "two", env=env) as two,
    ):
        # 200 concurrent increments split between the servers end at exactly 200.
        async def hammer() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=120, limits=limits) as client:
                return await asyncio.gather(
                    *(client.post((one, two)[i % 2] + "/walker/increment") for i in range(200))
                )

        responses = asyncio.run(hammer())
        failed = [r.text for r in responses if r.status_code != 200]
        assert not failed, failed[:3]
        assert sorted(r.json()["data"]["reports"][0] for r in responses) == list(range(1, 201))
        assert reports(httpx.post(one + "/walker/increment", timeout=10)) == [201]
        assert reports(httpx.post(two + "/walker/increment", timeout=10)) == [202]

        # A write on one server is read on the other at once (both have it cached).
        with (
            httpx.Client(base_url=one, timeout=30) as a,
            httpx.Client(base_url=two, timeout=30) as b,
        ):
            alice_a = sign_up(a, "alice@example.com")
            login = b.post("/user/login", json={"email": "alice@example.com", "password": PASSWORD})
            alice_b = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert titles(b, alice_b) == []
            expected: list[str] = []
            for i in range(15):
                writer, reader = (a, b) if i % 2 == 0 else (b, a)
                mine = alice_a if writer is a else alice_b
                theirs = alice_b if reader is b else alice_a
                title = f"todo-{i}"
                reports(writer.post("/walker/add_todo", json={"title": title}, headers=mine))
                expected.append(title)
                assert titles(reader, theirs) == expected

        # The data directories hold no graph: both servers used PostgreSQL.
        assert not (tmp_path / "one" / "jacscale.db").exists()
        assert not (tmp_path / "two" / "jacscale.db").exists()


def test_a_broadcast_reaches_sockets_on_both_servers(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_database("ws")
    env = {**env_for(url), "JACSCALE_BROADCAST_CHANNEL": f"jacscale:test:{secrets.token_hex(4)}"}
    with (
        running_server(CHAT, tmp_path / "one", env=env) as one,
        running_server(CHAT, tmp_path / "two", env=env) as two,
    ):
        for base in (one, two):
            check = httpx.get(base + "/readyz", timeout=5).json()["checks"]["broadcast"]
            assert check["ok"] is True and "postgresql LISTEN" in check["detail"], check
        ws = [b.replace("http://", "ws://") + "/ws/ChatRoom" for b in (one, two)]
        with connect(ws[0], open_timeout=5) as a, connect(ws[1], open_timeout=5) as b:
            a.send('{"message": "server one here", "sender": "a"}')
            expected = [{"type": "message", "sender": "a", "content": "server one here"}]
            for sock in (a, b):
                got = json.loads(sock.recv(timeout=10))
                assert got["data"]["reports"] == expected, got
            # A message over NOTIFY's 8000-byte payload limit travels through the table.
            big = "x" * 20_000
            b.send('{"message": "' + big + '", "sender": "b"}')
            for sock in (b, a):
                got = json.loads(sock.recv(timeout=10))
                assert got["data"]["reports"][0]["content"] == big


def test_the_url_can_come_from_jac_toml_and_one_graph_store_is_chosen(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_database("toml")
    app = app_with_toml(tmp_path, TODO, f'[plugins.scale.database]\ndatabase_url = "{url}"\n')
    env = {**env_for(""), "DATABASE_URL": ""}
    with TestApp(app, tmp_path / "data", env=env) as client:
        reports(client.post("/walker/increment"))
        detail = client.get("/readyz").json()["checks"]["store"]["detail"]
        assert detail.startswith("postgresql://jacscale:***@127.0.0.1"), detail
    both = {**env_for(url), "MONGODB_URI": "mongodb://127.0.0.1:1/x"}
    with pytest.raises(Exception, match="both DATABASE_URL and MONGODB_URI"):  # noqa: B017
        with TestApp(TODO, tmp_path / "data2", env=both):
            pass
