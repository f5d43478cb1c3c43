"""kvstore(db_type='mongodb') over real sockets and BSON.

Every test taking `db` runs against the wire-protocol test double
(jacscale_mongo/testing.py) and, marked `real_mongo`, against a real mongod
when MONGODB_URI points at one (skipped otherwise). The failure tests stop and
restart the test double.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jacscale_mongo.kvstore as mongo_driver
import pytest
from bson import ObjectId
from jacscale_mongo.testing import FakeMongoServer
from pymongo.errors import DuplicateKeyError, OperationFailure

from jac_scale.lib import KVStoreUnavailable, kvstore
from jacscale_core.current import running, standalone_app
from jacscale_core.testing import free_port
from jacscale_ext.kvstore import KVStore


def _shown(exc: BaseException | None) -> str:
    """The messages a traceback of `exc` would print (its chain), without source lines."""
    out = []
    while exc is not None:
        out.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return "\n".join(out)


@pytest.fixture(params=["test-double", pytest.param("real", marks=pytest.mark.real_mongo)])
def mongo_uri(request: pytest.FixtureRequest) -> str:
    """The test double's URL, or (real_mongo) MONGODB_URI."""
    if request.param == "real":
        return str(request.getfixturevalue("real_mongo_uri"))
    return str(request.getfixturevalue("mongo_server"))


@pytest.fixture
def db(mongo_uri: str) -> Iterator[KVStore]:
    """A kvstore on a fresh database, dropped afterwards."""
    store = kvstore(db_name=f"kv_{uuid.uuid4().hex[:12]}", db_type="mongodb", uri=mongo_uri)
    yield store
    store._client.drop_database(store.db_name)  # type: ignore[attr-defined]


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The current app: an empty directory (no jac.toml), no URI variables in the environment."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with running(standalone_app(tmp_path)):
        yield tmp_path


def _names(docs: Any) -> list[str]:
    return sorted(doc["name"] for doc in docs)


# ----- common methods ------------------------------------------------------------


def test_set_get_exists_delete(db: KVStore) -> None:
    assert db.get("user:123", "sessions") is None
    assert db.set("user:123", {"status": "active"}, "sessions") == "user:123"
    assert db.get("user:123", "sessions") == {"_id": "user:123", "status": "active"}
    assert db.exists("user:123", "sessions") is True
    assert db.exists("user:123") is False  # another collection
    db.set("user:123", {"status": "gone"}, "sessions")  # replaces the whole document
    assert db.get("user:123", "sessions") == {"_id": "user:123", "status": "gone"}
    assert db.delete("user:123", "sessions") == 1
    assert db.delete("user:123", "sessions") == 0
    assert db.exists("user:123", "sessions") is False


def test_common_methods_find_documents_by_object_id_hex(db: KVStore) -> None:
    oid = db.insert_one("users", {"name": "Alice"}).inserted_id
    assert isinstance(oid, ObjectId)
    assert db.get(str(oid), "users")["name"] == "Alice"
    assert db.exists(str(oid), "users") is True
    assert db.delete(str(oid), "users") == 1
    assert db.get(str(oid), "users") is None


def test_set_needs_a_dict(db: KVStore) -> None:
    with pytest.raises(TypeError, match="must be a dict"):
        db.set("k", ["not", "a", "dict"])
    assert db.exists("k") is False


@pytest.mark.parametrize("key", ["", None])
def test_bad_keys_are_refused(db: KVStore, key: object) -> None:
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        db.set(key, {"a": 1})  # type: ignore[arg-type]


def test_bad_collection_names_are_refused(db: KVStore) -> None:
    with pytest.raises(ValueError, match="col_name must be a non-empty string"):
        db.insert_one("", {"a": 1})


# ----- documents -----------------------------------------------------------------


def test_reference_example(db: KVStore) -> None:
    db.insert_one("users", {"name": "Alice", "role": "admin", "age": 30})
    db.insert_one("users", {"name": "Bob", "role": "user", "age": 25})
    alice = db.find_one("users", {"name": "Alice"})
    assert alice is not None and alice["age"] == 30
    assert _names(db.find("users", {"role": "admin"})) == ["Alice"]
    assert _names(db.find("users", {"age": {"$gt": 28}})) == ["Alice"]
    result = db.update_one("users", {"name": "Alice"}, {"$set": {"age": 31}})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert db.find_one("users", {"name": "Alice"})["age"] == 31
    assert db.delete_one("users", {"name": "Bob"}).deleted_count == 1
    assert db.find_one("users", {"name": "Bob"}) is None


PEOPLE = [
    {"name": "ann", "age": 20, "tags": ["a"]},
    {"name": "bob", "age": 30, "tags": ["b"]},
    {"name": "cid", "age": 40, "tags": ["a", "b"]},
    {"name": "dee", "age": 50, "tags": []},
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"age": {"$eq": 30}}, ["bob"]),
        ({"age": {"$gt": 30}}, ["cid", "dee"]),
        ({"age": {"$gte": 30}}, ["bob", "cid", "dee"]),
        ({"age": {"$lt": 30}}, ["ann"]),
        ({"age": {"$lte": 30}}, ["ann", "bob"]),
        ({"name": {"$in": ["ann", "dee", "zed"]}}, ["ann", "dee"]),
        ({"name": {"$ne": "ann"}}, ["bob", "cid", "dee"]),
        ({"$and": [{"age": {"$gt": 20}}, {"age": {"$lt": 50}}]}, ["bob", "cid"]),
        ({"$or": [{"name": "ann"}, {"age": {"$gte": 50}}]}, ["ann", "dee"]),
        ({"tags": "a"}, ["ann", "cid"]),
        ({}, ["ann", "bob", "cid", "dee"]),
    ],
)
def test_query_operators(db: KVStore, query: dict, expected: list[str]) -> None:
    db.insert_many("people", [dict(p) for p in PEOPLE])
    assert _names(db.find("people", query)) == expected
    assert db.count_documents("people", query) == len(expected)


def test_find_with_projection_sort_and_limit(db: KVStore) -> None:
    db.insert_many("people", [dict(p) for p in PEOPLE])
    docs = list(db.find("people", {}, {"name": 1, "_id": 0}).sort("age", -1).limit(2))
    assert docs == [{"name": "dee"}, {"name": "cid"}]
    assert db.find_one("people", {"name": "ann"}, {"age": 1, "_id": 0}) == {"age": 20}


def test_find_reads_past_the_first_batch(db: KVStore) -> None:
    result = db.insert_many("many", [{"i": i} for i in range(350)])
    assert len(result.inserted_ids) == 350
    assert sorted(doc["i"] for doc in db.find("many", {})) == list(range(350))


def test_update_many_and_upsert(db: KVStore) -> None:
    db.insert_many("people", [dict(p) for p in PEOPLE])
    result = db.update_many("people", {"age": {"$gte": 40}}, {"$set": {"senior": True}})
    assert (result.matched_count, result.modified_count) == (2, 2)
    assert _names(db.find("people", {"senior": True})) == ["cid", "dee"]
    missing = db.update_one("people", {"name": "eve"}, {"$set": {"age": 60}})
    assert (missing.matched_count, missing.upserted_id) == (0, None)
    upserted = db.update_one("people", {"name": "eve"}, {"$set": {"age": 60}}, upsert_mode=True)
    assert isinstance(upserted.upserted_id, ObjectId)
    assert db.find_one("people", {"name": "eve"})["age"] == 60


def test_delete_many(db: KVStore) -> None:
    db.insert_many("people", [dict(p) for p in PEOPLE])
    assert db.delete_many("people", {"age": {"$lt": 40}}).deleted_count == 2
    assert _names(db.find("people", {})) == ["cid", "dee"]
    assert db.delete_many("people", {}).deleted_count == 2


def test_by_id_methods(db: KVStore) -> None:
    oid = str(db.insert_one("users", {"name": "Alice", "age": 30}).inserted_id)
    assert db.find_by_id("users", oid)["name"] == "Alice"
    result = db.update_by_id("users", oid, {"$inc": {"age": 1}})
    assert result.modified_count == 1
    assert db.find_by_id("users", oid)["age"] == 31
    assert db.delete_by_id("users", oid).deleted_count == 1
    assert db.find_by_id("users", oid) is None


@pytest.mark.parametrize("bad_id", ["nope", "", "0" * 23, "zz" * 12])
def test_by_id_methods_with_an_invalid_id_match_nothing(db: KVStore, bad_id: str) -> None:
    db.insert_one("users", {"name": "Alice"})
    assert db.find_by_id("users", bad_id) is None
    assert db.update_by_id("users", bad_id, {"$set": {"x": 1}}).matched_count == 0
    assert db.delete_by_id("users", bad_id).deleted_count == 0
    assert db.count_documents("users", {}) == 1


def test_unique_index_rejects_duplicates(db: KVStore) -> None:
    assert db.create_index("users", {"email": 1}, unique=True) == "email_1"
    assert db.create_index("users", {"email": 1}, unique=True) == "email_1"  # idempotent
    assert db.create_index("users", {"age": -1}, name="by_age") == "by_age"
    db.insert_one("users", {"email": "a@x"})
    with pytest.raises(DuplicateKeyError):
        db.insert_one("users", {"email": "a@x"})
    assert db.count_documents("users", {}) == 1


def test_create_index_needs_keys(db: KVStore) -> None:
    with pytest.raises(ValueError, match="keys must be a non-empty dict"):
        db.create_index("users", {})


def test_insert_many_needs_documents(db: KVStore) -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        db.insert_many("users", [])


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("set_with_ttl", ("k", {"a": 1}, 60)),
        ("expire", ("k", 60)),
        ("incr", ("k",)),
        ("scan_keys", ("*",)),
        ("set_nx_with_ttl", ("k", {"a": 1}, 60)),
        ("delete_if_equals", ("k", {"a": 1})),
    ],
)
def test_redis_methods_raise_not_implemented(db: KVStore, method: str, args: tuple) -> None:
    with pytest.raises(NotImplementedError, match=rf"{method}\(\) is a Redis method"):
        getattr(db, method)(*args)


# ----- real mongod only ----------------------------------------------------------


@pytest.mark.real_mongo
def test_real_server_rejects_an_unknown_operator(real_mongo_uri: str) -> None:
    store = kvstore(db_name=f"kv_{uuid.uuid4().hex[:12]}", db_type="mongodb", uri=real_mongo_uri)
    with pytest.raises(OperationFailure) as info:
        store.find_one("users", {"age": {"$greater": 1}})
    assert info.value.code == 2  # BadValue: unknown operator


# ----- URI resolution and clients -------------------------------------------------


def test_uri_from_mongodb_uri(
    app_dir: Path, mongo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", mongo_server)
    store = kvstore(db_name="envtest", db_type="mongodb")
    store.set("k", {"a": 1})
    assert store.get("k") == {"_id": "k", "a": 1}


def test_explicit_uri_beats_mongodb_uri(
    app_dir: Path, mongo_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "MONGODB_URI", f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    )
    assert kvstore(db_name="x", db_type="mongodb", uri=mongo_server).exists("k") is False
    with pytest.raises(KVStoreUnavailable):
        kvstore(db_name="x", db_type="mongodb")


def test_uri_from_jac_toml(app_dir: Path, mongo_server: str) -> None:
    (app_dir / "jac.toml").write_text(f'[plugins.scale.database]\nmongodb_uri = "{mongo_server}"\n')
    store = kvstore(db_name="tomltest", db_type="mongodb")
    store.set("k", {"from": "toml"})
    assert store.get("k")["from"] == "toml"


def test_jac_toml_uri_must_be_a_string(app_dir: Path) -> None:
    (app_dir / "jac.toml").write_text("[plugins.scale.database]\nmongodb_uri = 5\n")
    with pytest.raises(ValueError, match="mongodb_uri must be a string"):
        kvstore(db_name="x", db_type="mongodb")


def test_no_uri_anywhere_names_all_three_places(app_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"pass uri=\.\.\., set MONGODB_URI, or set mongodb_uri"):
        kvstore(db_name="x", db_type="mongodb")


def test_invalid_uri_is_a_value_error_with_the_password_masked() -> None:
    with pytest.raises(ValueError, match=r"invalid MongoDB URI http://u:\*\*\*@h/") as info:
        kvstore(db_name="x", db_type="mongodb", uri="http://u:s3cret@h/")
    assert "s3cret" not in _shown(info.value)


def test_one_client_per_process_and_uri_with_bounded_timeouts(mongo_server: str) -> None:
    first = kvstore(db_name="a", db_type="mongodb", uri=mongo_server)
    second = kvstore(db_name="b", db_type="mongodb", uri=mongo_server)
    client = first._client  # type: ignore[attr-defined]
    assert client is second._client  # type: ignore[attr-defined]
    assert client.options.server_selection_timeout == 5
    assert client.options.pool_options.connect_timeout == 5
    assert client.options.pool_options.socket_timeout == 30


def test_options_in_the_uri_win_over_the_defaults() -> None:
    options = mongo_driver._options("mongodb://h/?serverSelectionTimeoutMS=250&appName=mine")
    assert "serverSelectionTimeoutMS" not in options
    assert "appname" not in options
    assert options["socketTimeoutMS"] == 30_000


# ----- failures: down, killed, restarted ------------------------------------------


def test_server_down_at_start_fails_fast_with_masked_uri() -> None:
    uri = f"mongodb://alice:s3cret@127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=500"
    started = time.monotonic()
    with pytest.raises(KVStoreUnavailable) as info:
        kvstore(db_name="x", db_type="mongodb", uri=uri)
    assert time.monotonic() - started < 3
    assert "mongodb://alice:***@127.0.0.1:" in str(info.value)
    assert "s3cret" not in _shown(info.value)


def test_a_failed_start_is_not_cached(fresh_mongo: FakeMongoServer) -> None:
    uri = f"{fresh_mongo.url}?serverSelectionTimeoutMS=500"
    fresh_mongo.stop()
    with pytest.raises(KVStoreUnavailable):
        kvstore(db_name="x", db_type="mongodb", uri=uri)
    fresh_mongo.start()
    assert kvstore(db_name="x", db_type="mongodb", uri=uri).exists("k") is False


def test_killed_mid_use_then_restarted(fresh_mongo: FakeMongoServer) -> None:
    uri = f"{fresh_mongo.url}?serverSelectionTimeoutMS=1000"
    store = kvstore(db_name="crash", db_type="mongodb", uri=uri)
    store.set("k", {"n": 1})
    fresh_mongo.stop()
    started = time.monotonic()
    with pytest.raises(KVStoreUnavailable, match=r"MongoDB at mongodb://127\.0\.0\.1:\d+/"):
        store.get("k")
    assert time.monotonic() - started < 4
    fresh_mongo.start()  # same port, data kept (like a mongod restart)
    assert store.get("k") == {"_id": "k", "n": 1}
    store.set("k", {"n": 2})
    assert store.get("k") == {"_id": "k", "n": 2}


# ----- the test double itself ------------------------------------------------------


def test_double_uses_get_more_and_refuses_transactions(fresh_mongo: FakeMongoServer) -> None:
    store = kvstore(db_name="double", db_type="mongodb", uri=fresh_mongo.url)
    store.insert_many("c", [{"i": i} for i in range(150)])
    assert len(list(store.find("c", {}))) == 150
    log = fresh_mongo.engine.command_log
    assert {"ping", "insert", "find", "getMore"} <= set(log)
    assert {"hello", "ismaster", "isMaster"} & set(log)
    client = store._client  # type: ignore[attr-defined]
    with client.start_session() as session, pytest.raises(OperationFailure) as info:
        with session.start_transaction():
            client["double"]["c"].insert_one({"i": -1}, session=session)
    assert info.value.code == 20  # what a standalone mongod answers
    assert store.count_documents("c", {}) == 150
