"""The embedded SQLite store passes the GraphStore contract."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jacscale_core.store import RecordWrite, WriteConflict
from jacscale_core.testing.store_contract import *  # noqa: F403 - the contract's tests run here
from jacscale_core.testing.store_contract import StoreFactory
from jacscale_ext.sqlite_store import WAL_AUTOCHECKPOINT_PAGES, SqliteGraphStore


@pytest.fixture
def store_factory(tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[SqliteGraphStore] = []

    def open_store() -> SqliteGraphStore:
        store = SqliteGraphStore(tmp_path / "contract.db")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def test_database_file_is_private(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "private.db")
    assert (tmp_path / "private.db").stat().st_mode & 0o077 == 0
    store.close()


# -- apply: one statement per changed row, same guarantees ---------------------


def _create(edges: tuple[uuid.UUID, ...] = (), state: bytes = b"s") -> RecordWrite:
    return RecordWrite(op="create", id=uuid.uuid4(), state=state, edges=edges)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SqliteGraphStore, SqliteGraphStore]]:
    """Two stores over one file, as two worker processes would have."""
    one, two = SqliteGraphStore(tmp_path / "pair.db"), SqliteGraphStore(tmp_path / "pair.db")
    yield one, two
    one.close()
    two.close()


def test_conflict_reports_both_versions_and_writes_nothing(
    pair: tuple[SqliteGraphStore, SqliteGraphStore],
) -> None:
    store, other = pair
    a, b = _create(), _create()
    store.apply([a, b])
    other.poll_changes()
    e1, c = uuid.uuid4(), _create()
    with pytest.raises(WriteConflict) as info:
        store.apply(
            [
                c,
                RecordWrite(op="update", id=a.id, edges_added=(e1,), expect_version=1),
                RecordWrite(op="update", id=b.id, state=b"new", expect_version=5),
            ]
        )
    assert (info.value.anchor_id, info.value.expected, info.value.actual) == (b.id, 5, 1)
    assert store.load([c.id]) == {}
    got = store.load([a.id, b.id])
    assert (got[a.id].version, got[a.id].edges) == (1, ())
    assert (got[b.id].version, got[b.id].state) == (1, b"s")
    assert other.poll_changes() == []  # the change-log rows were rolled back too

    missing = uuid.uuid4()
    with pytest.raises(WriteConflict) as info:
        store.apply([RecordWrite(op="update", id=missing, edges_added=(e1,))])
    assert (info.value.anchor_id, info.value.expected, info.value.actual) == (missing, None, None)
    with pytest.raises(WriteConflict) as info:
        store.apply([RecordWrite(op="update", id=missing, state=b"x", expect_version=1)])
    assert (info.value.expected, info.value.actual) == (1, None)


def test_versions_returned_match_the_stored_ones(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "v.db")
    w = _create()
    store.apply([w])
    writes = [
        RecordWrite(op="update", id=w.id, state=b"a", expect_version=1),  # CAS with state
        RecordWrite(op="update", id=w.id, state=b"b"),  # blind state write
        RecordWrite(op="update", id=w.id, edges_added=(uuid.uuid4(),), expect_version=3),
        RecordWrite(op="update", id=w.id, edges_added=(uuid.uuid4(),)),  # blind edge merge
    ]
    assert [store.apply([x])[w.id] for x in writes] == [2, 3, 4, 5]
    rec = store.load([w.id])[w.id]
    assert (rec.version, rec.state, len(rec.edges)) == (5, b"b", 2)
    store.close()


def test_edge_appends_keep_order_and_skip_edges_already_there(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "e.db")
    e1, e2, e3, e4, e5 = (uuid.uuid4() for _ in range(5))
    w = _create(edges=(e1, e2))
    store.apply([w])

    def update(added: tuple[uuid.UUID, ...] = (), removed: tuple[uuid.UUID, ...] = ()) -> None:
        store.apply([RecordWrite(op="update", id=w.id, edges_added=added, edges_removed=removed)])

    def edges() -> tuple[uuid.UUID, ...]:
        return store.load([w.id])[w.id].edges

    update(added=(e3, e1, e4, e4))  # e1 is there already; e4 twice in one write
    assert edges() == (e1, e2, e3, e4)
    update(removed=(e2,), added=(e2,))  # re-added: goes to the end
    assert edges() == (e1, e3, e4, e2)
    update(removed=(e2, e4))
    update(added=(e5,))
    assert edges() == (e1, e3, e5)
    assert store.load([w.id])[w.id].version == 5
    store.close()


def test_create_with_a_repeated_edge_fails_and_writes_nothing(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "d.db")
    e = uuid.uuid4()
    ok, bad = _create(), _create(edges=(e, e))
    with pytest.raises(sqlite3.IntegrityError):
        store.apply([ok, bad])
    assert store.load([ok.id, bad.id]) == {}
    store.close()


def test_change_log_has_every_write_of_a_batch_in_order(
    pair: tuple[SqliteGraphStore, SqliteGraphStore],
) -> None:
    store, other = pair
    other.poll_changes()
    a, b = _create(), _create(edges=(uuid.uuid4(),))
    store.apply([a, b])
    store.apply(
        [
            RecordWrite(op="delete", id=a.id),
            RecordWrite(op="update", id=b.id, state=b"x", expect_version=1),
            c := _create(),
        ]
    )
    assert other.poll_changes() == [a.id, b.id, a.id, b.id, c.id]
    assert store.poll_changes() == []  # its own writes


def test_wal_checkpoints_less_often_than_the_default(tmp_path: Path) -> None:
    store = SqliteGraphStore(tmp_path / "w.db")
    with store.locked() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_AUTOCHECKPOINT_PAGES
    store.close()


def test_change_log_of_large_and_empty_batches(
    pair: tuple[SqliteGraphStore, SqliteGraphStore],
) -> None:
    store, other = pair
    other.poll_changes()
    assert store.apply([]) == {}
    for size in (1, 8, 9, 25):
        batch = [_create() for _ in range(size)]
        assert set(store.apply(batch)) == {w.id for w in batch}
        assert other.poll_changes() == [w.id for w in batch]


# -- group commit: concurrent batches share a transaction ----------------------


def test_queued_batches_commit_together_and_a_conflict_stays_in_its_batch(tmp_path: Path) -> None:
    import threading

    store = SqliteGraphStore(tmp_path / "group.db")
    base = _create()
    store.apply([base])
    begins: list[str] = []
    store._conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None)
    first, second = _create(), _create()
    stale = RecordWrite(op="update", id=base.id, state=b"new", expect_version=7)  # stored: 1
    outcomes: dict[str, object] = {}

    def run(name: str, writes: list[RecordWrite]) -> None:
        try:
            outcomes[name] = store.apply(writes)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[name] = exc

    threads = [
        threading.Thread(target=run, args=(name, writes))
        for name, writes in (("first", [first]), ("stale", [stale]), ("second", [second]))
    ]
    with store._lock:  # the store is busy: all three batches queue
        for t in threads:
            t.start()
        deadline = 100
        while len(store._queue) < 3 and deadline:
            threading.Event().wait(0.01)
            deadline -= 1
        assert len(store._queue) == 3
    for t in threads:
        t.join(10)
    assert len(begins) == 1  # one transaction for the three batches
    assert outcomes["first"] == {first.id: 1} and outcomes["second"] == {second.id: 1}
    assert isinstance(outcomes["stale"], WriteConflict)
    stored = store.load([first.id, second.id, base.id])
    assert set(stored) == {first.id, second.id, base.id}
    assert stored[base.id].version == 1 and stored[base.id].state == b"s"
    store.close()


def test_a_failed_commit_fails_every_batch_in_the_group(tmp_path: Path) -> None:
    import threading

    store = SqliteGraphStore(tmp_path / "group-fail.db")
    a, b = _create(), _create()
    outcomes: dict[str, object] = {}

    def run(name: str, writes: list[RecordWrite]) -> None:
        try:
            outcomes[name] = store.apply(writes)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[name] = exc

    # Another connection holds the write lock past the busy timeout: BEGIN fails.
    blocker = sqlite3.connect(tmp_path / "group-fail.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store._conn.execute("PRAGMA busy_timeout = 50")
    threads = [threading.Thread(target=run, args=(n, w)) for n, w in (("a", [a]), ("b", [b]))]
    with store._lock:
        for t in threads:
            t.start()
        while len(store._queue) < 2:
            threading.Event().wait(0.01)
    for t in threads:
        t.join(10)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert all(isinstance(outcomes[n], sqlite3.OperationalError) for n in ("a", "b"))
    assert store.load([a.id, b.id]) == {}
    store.close()
