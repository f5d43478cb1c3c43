"""MongoGraphStore passes the GraphStore contract, plus what only Mongo has.

The contract (jacscale_core/testing/store_contract.py) runs against the MongoDB wire-protocol
TEST DOUBLE (jacscale_mongo/testing.py: real sockets and BSON, mongomock
behind them, no transactions, so batches take the compensated path) and,
marked `real_mongo`, against a real mongod when MONGODB_URI points at one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jacscale_mongo.changes as changes_module
import jacscale_mongo.graph_store as graph_store
import pytest
from jacscale_mongo.graph_store import ANCHORS, CHANGES, MongoGraphStore
from jacscale_mongo.testing import FakeMongoServer
from pymongo import MongoClient

from jacscale_core.store import RecordWrite, StoreUnavailable, WriteConflict
from jacscale_core.testing import free_port
from jacscale_core.testing.store_contract import *  # noqa: F403 - the contract's tests run here
from jacscale_core.testing.store_contract import StoreFactory, closing_factory, node


def with_database(uri: str, name: str) -> str:
    """`uri` pointing at database `name` (its query string kept)."""
    scheme, _, rest = uri.partition("://")
    base, _, query = rest.partition("?")
    hosts = base.split("/", 1)[0]
    return f"{scheme}://{hosts}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(params=["test-double", pytest.param("real", marks=pytest.mark.real_mongo)])
def mongo_base_uri(request: pytest.FixtureRequest) -> str:
    """The test double's URL, or (real_mongo) MONGODB_URI."""
    if request.param == "real":
        return str(request.getfixturevalue("real_mongo_uri"))
    return str(request.getfixturevalue("mongo_server"))


@pytest.fixture
def db_uri(mongo_base_uri: str) -> Iterator[str]:
    """A URI naming a fresh database, dropped afterwards."""
    name = f"contract_{uuid.uuid4().hex[:12]}"
    uri = with_database(mongo_base_uri, name)
    yield uri
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        client.drop_database(name)
    finally:
        client.close()


@pytest.fixture
def store_factory(db_uri: str) -> Iterator[StoreFactory]:
    """Opens stores on one database: two calls behave like two processes."""
    yield from closing_factory(lambda: MongoGraphStore(db_uri))


@pytest.fixture
def store(store_factory: Callable[[], MongoGraphStore]) -> MongoGraphStore:
    """One store on a fresh database."""
    return store_factory()


# --------------------------------------------------------------------------
# Layout and documents
# --------------------------------------------------------------------------


def test_records_are_one_document_per_anchor_with_binary_ids(store: MongoGraphStore) -> None:
    e1 = uuid.uuid4()
    w = node(edges=(e1,))
    store.apply([w])
    raw = store._client[store.database][ANCHORS].find_one({"_id": w.id.bytes})
    assert raw is not None
    assert (raw["kind"], raw["version"], raw["is_root"], raw["state"], raw["edges"]) == (
        "node", 1, False, b"s0", [e1.bytes]
    )  # fmt: skip


def test_database_name_comes_from_the_uri_path(mongo_server: str) -> None:
    assert MongoGraphStore(with_database(mongo_server, "mine")).database == "mine"
    assert MongoGraphStore(mongo_server).database == "jacscale"


def test_invalid_uri_is_a_config_error_with_the_password_masked() -> None:
    from jacscale_core.config import ConfigError

    for uri in ("mongodb://bob:hunter2@127.0.0.1:notaport/db", "http://bob:hunter2@h/db"):
        with pytest.raises(ConfigError) as info:
            MongoGraphStore(uri)
        assert "hunter2" not in str(info.value) and "bob:***@" in str(info.value)


def test_document_find_compares_values_never_runs_operators(store: MongoGraphStore) -> None:
    docs = store.docs
    docs.insert("people", {"_id": "a", "role": "admin"})
    docs.insert("people", {"_id": "b", "role": {"$ne": None}})
    assert [d["_id"] for d in docs.find("people", {"role": {"$ne": None}})] == ["b"]
    assert [d["_id"] for d in docs.find("people", {"role": "admin"})] == ["a"]
    for bad in ({"$where": "1"}, {"a.b": 1}):
        with pytest.raises(ValueError):
            docs.find("people", bad)
    with pytest.raises(ValueError):
        docs.update("people", "a", {"$set": 1})


def test_document_collections_cannot_reach_the_graph(store: MongoGraphStore) -> None:
    for name in (ANCHORS, CHANGES, "system.users", "", "a$b"):
        with pytest.raises(ValueError):
            store.docs.insert(name, {"_id": "x"})


# --------------------------------------------------------------------------
# Batches without transactions: compensation
# --------------------------------------------------------------------------


def test_a_failed_batch_undoes_state_edge_and_delete_writes(store: MongoGraphStore) -> None:
    a, b, gone = node(state=b"a0"), node(edges=(uuid.uuid4(),)), node(state=b"keep")
    store.apply([a, b, gone])
    extra = uuid.uuid4()
    batch = [
        RecordWrite(op="update", id=a.id, state=b"a1", expect_version=1),
        RecordWrite(op="update", id=b.id, edges_added=(extra,)),
        RecordWrite(op="delete", id=gone.id),
        RecordWrite(op="update", id=uuid.uuid4(), state=b"missing"),  # conflicts
    ]
    with pytest.raises(WriteConflict):
        store.apply(batch)
    after = store.load([a.id, b.id, gone.id])
    assert after[a.id].state == b"a0"
    assert after[b.id].edges == b.edges
    assert after[gone.id].state == b"keep"
    # Versions only move forward: an undo is a write too.
    assert after[a.id].version > 1 and after[b.id].version > 1


def test_a_failed_batch_undoes_a_read_modify_write_merge(store: MongoGraphStore) -> None:
    e1, e2, e3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a = node(edges=(e1, e2))
    store.apply([a])
    with pytest.raises(WriteConflict):
        store.apply(
            [
                RecordWrite(op="update", id=a.id, edges_added=(e3,), edges_removed=(e1,)),
                RecordWrite(op="update", id=a.id, state=b"x", expect_version=99),
            ]
        )
    assert store.load([a.id])[a.id].edges == (e1, e2)


def test_add_and_remove_in_one_update_keeps_order(store: MongoGraphStore) -> None:
    e1, e2, e3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a = node(edges=(e1, e2))
    store.apply([a])
    rec = store.apply([RecordWrite(op="update", id=a.id, edges_added=(e3,), edges_removed=(e1,))])[
        a.id
    ]
    assert rec is not None and rec.edges == (e2, e3) and rec.version == 2
    assert store.load([a.id])[a.id].edges == (e2, e3)


def test_returned_records_match_what_is_stored(store: MongoGraphStore) -> None:
    e1, e2 = uuid.uuid4(), uuid.uuid4()
    a = node(edges=(e1,))
    store.apply([a])
    rec = store.apply(
        [RecordWrite(op="update", id=a.id, state=b"n", edges_added=(e2, e1), expect_version=1)]
    )[a.id]
    assert rec == store.load([a.id])[a.id]


def test_a_writer_that_lost_gets_a_lease_so_its_replay_wins(
    store_factory: Callable[[], MongoGraphStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph_store, "LEASE_WAIT_SECONDS", 0)  # this test replays by hand, slowly
    loser, other = store_factory(), store_factory()
    hot = node()
    loser.apply([hot])
    other.apply([RecordWrite(op="update", id=hot.id, state=b"other-1", expect_version=1)])
    with pytest.raises(WriteConflict):  # the loser read version 1, which is gone
        loser.apply([RecordWrite(op="update", id=hot.id, state=b"loser", expect_version=1)])
    # While the loser replays, nobody else can change the record...
    with pytest.raises(WriteConflict):
        other.apply([RecordWrite(op="update", id=hot.id, state=b"other-2", expect_version=2)])
    # ...so the replay, reading version 2, wins; its write ends the lease.
    done = loser.apply([RecordWrite(op="update", id=hot.id, state=b"loser", expect_version=2)])[
        hot.id
    ]
    assert done is not None and done.version == 3
    raw = loser._client[loser.database][ANCHORS].find_one({"_id": hot.id.bytes})
    assert raw is not None and "lk" not in raw and "lu" not in raw
    assert other.apply([RecordWrite(op="update", id=hot.id, state=b"o", expect_version=3)])[hot.id]


def test_an_unused_lease_expires(
    store_factory: Callable[[], MongoGraphStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph_store, "LEASE_SECONDS", 0.1)
    loser, other = store_factory(), store_factory()
    hot = node()
    loser.apply([hot])
    other.apply([RecordWrite(op="update", id=hot.id, state=b"x", expect_version=1)])
    with pytest.raises(WriteConflict):
        loser.apply([RecordWrite(op="update", id=hot.id, state=b"y", expect_version=1)])
    time.sleep(0.15)  # the loser never came back
    assert other.apply([RecordWrite(op="update", id=hot.id, state=b"z", expect_version=2)])[hot.id]


# --------------------------------------------------------------------------
# The change log
# --------------------------------------------------------------------------


def test_change_log_seqs_stay_contiguous_when_writers_collide(
    store_factory: Callable[[], MongoGraphStore],
) -> None:
    one, two, reader = store_factory(), store_factory(), store_factory()
    reader.poll_changes()
    first = node()
    two.apply([first])  # `two` now trusts seq 1 as the newest for a while
    others = [node() for _ in range(2)]
    for w in others:
        one.apply([w])
    late = node()
    two.apply([late])  # guesses seq 2: taken, so it reads the newest and takes 4
    seqs = [d["_id"] for d in one._client[one.database][CHANGES].find().sort("_id", 1)]
    assert seqs == [1, 2, 3, 4]
    assert reader.poll_changes() == [first.id, *(w.id for w in others), late.id]


def test_change_log_has_no_holes_under_concurrent_threads(
    store_factory: Callable[[], MongoGraphStore],
) -> None:
    stores = [store_factory(), store_factory()]
    reader = store_factory()
    reader.poll_changes()
    written: list[uuid.UUID] = []

    def work(store: MongoGraphStore) -> None:
        for _ in range(15):
            w = node()
            store.apply([w])
            written.append(w.id)

    threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    seqs = [d["_id"] for d in reader._client[reader.database][CHANGES].find().sort("_id", 1)]
    assert seqs == list(range(1, 61))
    seen = reader.poll_changes()
    assert seen is not None and sorted(seen) == sorted(written)


def test_pruned_entries_make_a_reader_drop_its_cache(
    store_factory: Callable[[], MongoGraphStore],
) -> None:
    writer, reader = store_factory(), store_factory()
    reader.poll_changes()
    writer.apply([node()])
    writer._client[writer.database][CHANGES].delete_many({})  # pruned before the reader looked
    writer.apply([node()])
    assert reader.poll_changes() is None
    last = node()
    writer.apply([last])
    assert reader.poll_changes() == [last.id]


def test_a_reader_far_behind_drops_its_cache(
    store_factory: Callable[[], MongoGraphStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes_module, "READ_LIMIT", 3)
    writer, reader = store_factory(), store_factory()
    reader.poll_changes()
    for _ in range(5):
        writer.apply([node()])
    assert reader.poll_changes() is None
    last = node()
    writer.apply([last])
    assert reader.poll_changes() == [last.id]


def test_a_change_log_failure_keeps_the_write_and_is_retried(
    store_factory: Callable[[], MongoGraphStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import AutoReconnect

    writer, reader = store_factory(), store_factory()
    reader.poll_changes()
    real_append = writer._changes.append

    def broken(ids: Any) -> int:
        raise AutoReconnect("connection reset")

    monkeypatch.setattr(writer._changes, "append", broken)
    a = node()
    # Written: acknowledged (an error would make a client write it twice); the
    # ids wait for the next poll and readiness is false until then.
    assert writer.apply([a]) is not None
    assert writer.poll_changes() == []  # still refused: kept, not raised
    ok, detail = writer.health()
    assert not ok and "change log" in detail
    monkeypatch.setattr(writer._changes, "append", real_append)
    assert writer.poll_changes() == []  # flushes the kept ids first
    assert writer.health()[0]
    assert a.id in (reader.poll_changes() or [])


# --------------------------------------------------------------------------
# An unreachable server
# --------------------------------------------------------------------------


def test_an_unreachable_server_fails_fast_with_the_uri_masked() -> None:
    uri = f"mongodb://app:s3cret-pw@127.0.0.1:{free_port()}/db?serverSelectionTimeoutMS=800"
    store = MongoGraphStore(uri)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        store.load([uuid.uuid4()])
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "app:***@127.0.0.1" in message and "s3cret" not in message
    assert store.ping() is False
    store.close()


def test_a_server_that_goes_away_gives_503_errors_then_recovers(
    fresh_mongo: FakeMongoServer,
) -> None:
    store = MongoGraphStore(
        with_database(fresh_mongo.url, "gone") + "?serverSelectionTimeoutMS=700"
    )
    a = node()
    store.apply([a])
    fresh_mongo.stop()
    for call in (lambda: store.load([a.id]), lambda: store.apply([node()]), store.poll_changes):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert time.monotonic() - started < 5
        assert getattr(info.value, "api_code", None) == "UNAVAILABLE"
    assert store.ping() is False
    fresh_mongo.start()
    assert store.load([a.id])[a.id].state == a.state
    assert store.ping() is True
    store.close()


# --------------------------------------------------------------------------
# A real mongod only
# --------------------------------------------------------------------------


@pytest.mark.real_mongo
def test_real_replica_set_batches_run_in_transactions(real_mongo_uri: str) -> None:
    uri = with_database(real_mongo_uri, f"txn_{uuid.uuid4().hex[:8]}")
    store = MongoGraphStore(uri)
    try:
        store.prepare()
        if not store.transactions:
            pytest.skip("real_mongo: MONGODB_URI is a standalone mongod (no transactions)")
        a = node()
        store.apply([a])
        b = node()
        with pytest.raises(WriteConflict):
            store.apply([b, RecordWrite(op="update", id=a.id, state=b"x", expect_version=9)])
        assert store.load([b.id]) == {}
        assert store.load([a.id])[a.id].version == 1  # nothing was applied, not even undone
    finally:
        store._client.drop_database(store.database)
        store.close()
