"""kvstore(db_type='postgres') on a real PostgreSQL: values, Redis-style key methods, failures."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from jacscale_postgres.kvstore import PostgresKVStore, close_pools, glob_to_like
from jacscale_postgres.testing import PostgresServer

from jacscale_core.testing import free_port
from jacscale_ext.kvstore import KVStoreUnavailable, kvstore


@pytest.fixture
def url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database (the kvstore migrates it on first use)."""
    yield postgres_server.fresh_database("kv")
    close_pools()


def test_values_round_trip_and_namespaces_stay_apart(url: str) -> None:
    one = kvstore(db_name="one", db_type="postgres", uri=url)
    two = kvstore(db_name="two", db_type="postgres", uri=url)
    assert isinstance(one, PostgresKVStore)
    value = {"name": "Ada", "tags": ["x", 1, None], "nested": {"ok": True}}
    assert one.set("user:1", value) == "user:1"
    assert one.get("user:1") == value
    assert two.get("user:1") is None
    assert one.get("user:1", col_name="other") is None
    one.set("user:1", "replaced")
    assert one.get("user:1") == "replaced"
    assert one.exists("user:1") and not one.exists("nope")
    assert one.delete("user:1") == 1 and one.delete("user:1") == 0


def test_url_comes_from_database_url(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    store = kvstore(db_name="env", db_type="postgres")
    store.set("k", 1)
    assert store.get("k") == 1


def test_ttl_expiry_and_set_nx(url: str) -> None:
    store = kvstore(db_name="ttl", db_type="postgres", uri=url)
    assert store.set_nx_with_ttl("lock", "owner-a", 1) is True
    assert store.set_nx_with_ttl("lock", "owner-b", 1) is False
    assert store.delete_if_equals("lock", "owner-b") is False
    assert store.get("lock") == "owner-a"
    time.sleep(1.2)  # the entry expires: absent to every method
    assert store.get("lock") is None and not store.exists("lock")
    assert store.set_nx_with_ttl("lock", "owner-b", 5) is True
    assert store.delete_if_equals("lock", "owner-b") is True
    store.set("k", 1)
    assert store.expire("k", 100) is True and store.expire("missing", 100) is False
    with pytest.raises(ValueError, match="ttl must be a positive"):
        store.set_with_ttl("k", 1, 0)


def test_incr_is_atomic_across_threads(url: str) -> None:
    store = kvstore(db_name="count", db_type="postgres", uri=url)
    seen: list[int] = []

    def bump() -> None:
        for _ in range(25):
            seen.append(store.incr("hits"))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(seen) == list(range(1, 101))
    store.set("text", "abc")
    with pytest.raises(ValueError, match="not an integer"):
        store.incr("text")
    assert store.get("text") == "abc"


def test_scan_keys_treats_like_characters_literally(url: str) -> None:
    store = kvstore(db_name="scan", db_type="postgres", uri=url)
    for key in ("user:1", "user:2", "user_x", "session:1", "100%"):
        store.set(key, 1)
    assert store.scan_keys("user:*") == ["user:1", "user:2"]
    assert store.scan_keys("user?x") == ["user_x"]
    assert store.scan_keys("100%") == ["100%"]
    assert store.scan_keys("*%") == ["100%"]
    assert glob_to_like("a_b*") == "a\\_b%"
    with pytest.raises(ValueError, match=r"supports \* and \? only"):
        store.scan_keys("user:[12]")


def test_mongodb_methods_say_they_belong_to_mongodb(url: str) -> None:
    store = kvstore(db_name="m", db_type="postgres", uri=url)
    with pytest.raises(NotImplementedError, match="MongoDB method"):
        store.find_one("users", {})


def test_unreachable_server_fails_fast_with_the_password_masked() -> None:
    url = f"postgresql://jac:TopSecret42@127.0.0.1:{free_port()}/app?connect_timeout=2"
    with pytest.raises(KVStoreUnavailable) as info:
        kvstore(db_name=uuid.uuid4().hex, db_type="postgres", uri=url)
    assert "jac:***@127.0.0.1" in str(info.value) and "TopSecret42" not in str(info.value)


def test_bad_keys_are_refused(url: str) -> None:
    store = kvstore(db_name="bad", db_type="postgres", uri=url)
    with pytest.raises(ValueError, match="non-empty string"):
        store.get("")
    with pytest.raises(ValueError, match="postgresql:// URL"):
        kvstore(db_name="x", db_type="postgres", uri="mysql://host/db")
