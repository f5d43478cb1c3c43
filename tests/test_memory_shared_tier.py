"""jacscale_core.memory.shared_tier: committed records for one process, over a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from jacscale_core.memory.shared_tier import RecordCache, SharedTier, merge_edges
from jacscale_core.store import AnchorRecord, RecordWrite, WriteConflict
from jacscale_ext.sqlite_store import SqliteGraphStore


def rec(anchor_id: UUID | None = None, version: int = 1, state: bytes = b"s") -> AnchorRecord:
    return AnchorRecord(anchor_id or uuid4(), "node", version, None, False, state)


# --------------------------------------------------------------------------
# RecordCache
# --------------------------------------------------------------------------


def test_cache_answers_what_it_holds_in_the_order_asked() -> None:
    cache = RecordCache()
    a, b = rec(), rec()
    cache.put(a)
    cache.put(b)
    missing = uuid4()
    assert cache.get_many([b.id, missing, a.id]) == {b.id: b, a.id: a}
    assert cache.split([b.id, missing, a.id]) == ([b, a], [missing])
    assert len(cache) == 2


def test_cache_evicts_the_least_recently_put_beyond_capacity() -> None:
    cache = RecordCache(capacity=2)
    a, b, c = rec(), rec(), rec()
    cache.put(a)
    cache.put(b)
    cache.put(a)  # a is now the most recent
    cache.put(c)
    assert set(cache.get_many([a.id, b.id, c.id])) == {a.id, c.id}
    assert len(cache) == 2


def test_cache_never_replaces_a_newer_version() -> None:
    cache = RecordCache()
    anchor_id = uuid4()
    cache.put(rec(anchor_id, version=3, state=b"new"))
    cache.put(rec(anchor_id, version=2, state=b"old"))
    assert cache.get_many([anchor_id])[anchor_id].state == b"new"
    cache.put(rec(anchor_id, version=4, state=b"newer"))
    assert cache.get_many([anchor_id])[anchor_id].version == 4


def test_a_load_that_began_before_a_drop_does_not_put_back_what_it_read() -> None:
    cache = RecordCache()
    stale = rec()
    generation = cache.generation
    cache.drop([stale.id])  # e.g. another process wrote it while we were reading
    cache.put(stale, generation)
    assert cache.get_many([stale.id]) == {}
    cache.put(stale, cache.generation)
    assert cache.get_many([stale.id]) == {stale.id: stale}


def test_drop_and_clear_forget_and_bump_the_generation() -> None:
    cache = RecordCache()
    a, b = rec(), rec()
    cache.put(a)
    cache.put(b)
    before = cache.generation
    cache.drop([a.id])
    assert cache.get_many([a.id, b.id]) == {b.id: b}
    assert cache.generation == before + 1
    cache.clear()
    assert len(cache) == 0 and cache.generation == before + 2


# --------------------------------------------------------------------------
# merge_edges
# --------------------------------------------------------------------------


def test_merge_edges_removes_then_appends_new_ids_in_order() -> None:
    a, b, c, d = (uuid4() for _ in range(4))
    assert merge_edges((a, b, c), (d,), (b,)) == (a, c, d)
    assert merge_edges((a, b), (b, c), ()) == (a, b, c)  # already present: not repeated
    assert merge_edges((a,), (b,), (b,)) == (a,)  # added and removed in one batch
    assert merge_edges((), (), ()) == ()


# --------------------------------------------------------------------------
# SharedTier over SQLite
# --------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "graph.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteGraphStore]:
    s = SqliteGraphStore(db)
    yield s
    s.close()


def create(anchor_id: UUID, state: bytes = b"v1", edges: tuple[UUID, ...] = ()) -> RecordWrite:
    return RecordWrite(
        op="create", id=anchor_id, kind="node", root=None, is_root=True, state=state, edges=edges
    )


def test_what_this_process_writes_is_cached_from_the_write(db: Path) -> None:
    store = SqliteGraphStore(db)
    tier = SharedTier(store)
    anchor_id, edge = uuid4(), uuid4()
    tier.apply([create(anchor_id, b"v1", (edge,))])
    store.close()  # the cached record answers without the store
    (found,) = tier.load_records([anchor_id])
    assert (found.version, found.state, found.edges, found.is_root) == (1, b"v1", (edge,), True)


def test_an_update_is_cached_as_the_record_it_produced(store: SqliteGraphStore) -> None:
    tier = SharedTier(store)
    anchor_id, first, second = uuid4(), uuid4(), uuid4()
    tier.apply([create(anchor_id, b"v1", (first,))])
    tier.apply([RecordWrite(op="update", id=anchor_id, edges_added=(second,), expect_version=1)])
    cached = tier.cache.get_many([anchor_id])[anchor_id]
    assert (cached.version, cached.state, cached.edges) == (2, b"v1", (first, second))
    tier.apply(
        [
            RecordWrite(
                op="update", id=anchor_id, state=b"v3", edges_removed=(first,), expect_version=2
            )
        ]
    )
    cached = tier.cache.get_many([anchor_id])[anchor_id]
    assert (cached.version, cached.state, cached.edges) == (3, b"v3", (second,))
    assert store.load([anchor_id])[anchor_id] == cached  # the same as the store's row


def test_a_conflict_writes_nothing_and_forgets_the_stale_record(store: SqliteGraphStore) -> None:
    tier = SharedTier(store)
    anchor_id = uuid4()
    tier.apply([create(anchor_id)])
    with pytest.raises(WriteConflict):
        tier.apply([RecordWrite(op="update", id=anchor_id, state=b"lost", expect_version=5)])
    assert tier.cache.get_many([anchor_id]) == {}
    assert tier.load([anchor_id])[anchor_id].state == b"v1"


def test_a_delete_is_forgotten(store: SqliteGraphStore) -> None:
    tier = SharedTier(store)
    anchor_id = uuid4()
    tier.apply([create(anchor_id)])
    tier.apply([RecordWrite(op="delete", id=anchor_id)])
    assert tier.load([anchor_id]) == {}
    assert tier.load_records([anchor_id, uuid4()]) == []


def test_refresh_drops_what_another_process_wrote(db: Path) -> None:
    ours_store, theirs_store = SqliteGraphStore(db), SqliteGraphStore(db)
    try:
        ours, theirs = SharedTier(ours_store), SharedTier(theirs_store)
        anchor_id = uuid4()
        ours.apply([create(anchor_id)])
        ours.refresh()
        theirs.apply([RecordWrite(op="update", id=anchor_id, state=b"v2", expect_version=1)])
        assert ours.load([anchor_id])[anchor_id].state == b"v1"  # still cached
        ours.refresh()
        assert ours.load([anchor_id])[anchor_id].state == b"v2"
        ours.refresh()  # nothing new: what is cached stays
        assert anchor_id in ours.cache.get_many([anchor_id])
    finally:
        ours_store.close()
        theirs_store.close()


def test_records_loaded_from_the_store_are_cached(db: Path) -> None:
    writer = SqliteGraphStore(db)
    a, b = uuid4(), uuid4()
    SharedTier(writer).apply([create(a, b"a"), create(b, b"b")])
    writer.close()
    reader_store = SqliteGraphStore(db)
    reader = SharedTier(reader_store)
    assert {r.state for r in reader.load_records([a, b, uuid4()])} == {b"a", b"b"}
    reader_store.close()
    assert set(reader.load([a, b])) == {a, b}  # answered from the cache
