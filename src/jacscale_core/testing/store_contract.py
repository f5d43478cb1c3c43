"""The GraphStore contract: every store (SQLite, Mongo, ...) must pass these checks.

Use it from a test module with a `store_factory` fixture returning a callable that
opens a store over the same backing data each time it is called (two calls = two
processes sharing it):

    from jacscale_core.testing.store_contract import *  # noqa: F403 - the contract's tests

    @pytest.fixture
    def store_factory(db_url: str) -> Iterator[StoreFactory]:
        yield from closing_factory(lambda: MyStore(db_url))

`node()` makes a create write for the store's own tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jacscale_core.store import AnchorRecord, DuplicateKey, GraphStore, RecordWrite, WriteConflict

StoreFactory = Callable[[], GraphStore]


def version_of(outcome: AnchorRecord | int | None) -> int | None:
    """A store reports a new record or just its version (see GraphStore.apply)."""
    return outcome.version if isinstance(outcome, AnchorRecord) else outcome


def closing_factory[S: GraphStore](open_store: Callable[[], S]) -> Iterator[Callable[[], S]]:
    """The body of a `store_factory` fixture: stores opened by `open_store` (each call one
    more "process" on the same data), every one closed after the test."""
    opened: list[S] = []

    def open_one() -> S:
        store = open_store()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def node(edges: tuple[uuid.UUID, ...] = (), state: bytes = b"s0") -> RecordWrite:
    """A create write for a new node with `edges`."""
    return RecordWrite(op="create", id=uuid.uuid4(), kind="node", state=state, edges=edges)


def _node(edges: tuple[uuid.UUID, ...] = (), is_root: bool = False) -> RecordWrite:
    return RecordWrite(
        op="create", id=uuid.uuid4(), kind="node", root=None, is_root=is_root,
        state=b"state-" + uuid.uuid4().bytes, edges=edges,
    )  # fmt: skip


def test_contract_create_load_and_versions(store_factory: StoreFactory) -> None:
    store = store_factory()
    w = _node(edges=(uuid.uuid4(), uuid.uuid4()))
    results = store.apply([w])
    assert version_of(results[w.id]) == 1
    loaded = store.load([w.id, uuid.uuid4()])
    assert list(loaded) == [w.id]
    got = loaded[w.id]
    assert (got.kind, got.version, got.state, got.edges, got.is_root) == (
        "node", 1, w.state, w.edges, False
    )  # fmt: skip


def test_contract_create_twice_conflicts(store_factory: StoreFactory) -> None:
    store = store_factory()
    w = _node()
    store.apply([w])
    with pytest.raises(WriteConflict):
        store.apply([w])


def test_contract_update_cas_and_blind_edge_merge(store_factory: StoreFactory) -> None:
    store = store_factory()
    e1, e2, e3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    w = _node(edges=(e1,))
    store.apply([w])
    # A blind edge merge keeps insertion order and bumps the version.
    assert version_of(store.apply([RecordWrite(op="update", id=w.id, edges_added=(e2, e3))])[w.id]) == 2
    r = store.load([w.id])[w.id]
    assert r.edges == (e1, e2, e3) and r.version == 2
    assert version_of(store.apply([RecordWrite(op="update", id=w.id, edges_removed=(e2,))])[w.id]) == 3
    r = store.load([w.id])[w.id]
    assert r.edges == (e1, e3) and r.version == 3
    # Appending an edge that is already there changes nothing but the version.
    store.apply([RecordWrite(op="update", id=w.id, edges_added=(e1,))])
    assert store.load([w.id])[w.id].edges == (e1, e3)
    # Compare-and-set on the version.
    with pytest.raises(WriteConflict):
        store.apply([RecordWrite(op="update", id=w.id, state=b"new", expect_version=3)])
    store.apply([RecordWrite(op="update", id=w.id, state=b"new", expect_version=4)])
    r = store.load([w.id])[w.id]
    assert r.state == b"new" and r.edges == (e1, e3) and r.version == 5


def test_contract_batches_are_atomic(store_factory: StoreFactory) -> None:
    store = store_factory()
    a = _node()
    store.apply([a])
    b = _node()
    with pytest.raises(WriteConflict):
        store.apply([b, RecordWrite(op="update", id=a.id, state=b"x", expect_version=99)])
    assert store.load([b.id]) == {}
    assert store.load([a.id])[a.id].state == a.state


def test_contract_update_of_missing_record_conflicts(store_factory: StoreFactory) -> None:
    with pytest.raises(WriteConflict):
        store_factory().apply([RecordWrite(op="update", id=uuid.uuid4(), state=b"x")])


def test_contract_delete(store_factory: StoreFactory) -> None:
    store = store_factory()
    w = _node()
    store.apply([w])
    assert store.apply([RecordWrite(op="delete", id=w.id)]) == {w.id: None}
    assert w.id not in store.root_ids()
    assert store.load([w.id]) == {}
    store.apply([RecordWrite(op="delete", id=w.id)])  # already gone: fine


def test_contract_roots(store_factory: StoreFactory) -> None:
    store = store_factory()
    root = _node(is_root=True)
    store.apply([root, _node()])
    assert root.id in store.root_ids()


def test_contract_poll_changes_sees_other_processes_only(store_factory: StoreFactory) -> None:
    one, two = store_factory(), store_factory()
    one.poll_changes()
    two.poll_changes()
    w = _node()
    one.apply([w])
    seen = two.poll_changes()
    assert seen is None or w.id in seen
    assert w.id not in (one.poll_changes() or [])
    assert two.poll_changes() in ([], None) or w.id not in (two.poll_changes() or [])


def test_contract_ping(store_factory: StoreFactory) -> None:
    assert store_factory().ping() is True


def test_contract_documents(store_factory: StoreFactory) -> None:
    docs = store_factory().docs
    col = "contract_" + uuid.uuid4().hex[:8]
    docs.insert(col, {"_id": "a", "email": "a@x", "n": 1, "active": True})
    docs.insert(col, {"_id": "b", "email": "b@x", "n": 2, "active": False})
    with pytest.raises(DuplicateKey):
        docs.insert(col, {"_id": "a"})
    assert docs.get(col, "a") == {"_id": "a", "email": "a@x", "n": 1, "active": True}
    assert docs.get(col, "zz") is None
    assert [d["_id"] for d in docs.find(col, {"email": "b@x"})] == ["b"]
    assert [d["_id"] for d in docs.find(col, {"active": True})] == ["a"]
    assert docs.update(col, "a", {"n": 5}) is True
    assert docs.get(col, "a")["n"] == 5  # type: ignore[index]
    assert docs.update(col, "zz", {"n": 5}) is False
    assert docs.delete(col, "a") is True and docs.delete(col, "a") is False


__all__: list[Any] = [name for name in dir() if name.startswith("test_contract_")]
