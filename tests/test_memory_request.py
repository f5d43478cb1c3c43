"""jacscale_core.memory.request: one request's anchors over a real SQLite store, and its one commit.

These run in jaclang's default context (the system root, which may write
anything); per-user permissions are covered through the executor
(tests/test_executor.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from jaclang.jac0core.archetype import AccessLevel, EdgeAnchor, NodeArchetype, Root, WalkerArchetype

from jacscale_core.memory.dirty import track_writes
from jacscale_core.memory.ids import SYSTEM_ROOT_ID
from jacscale_core.memory.lazy_edges import LazyEdges
from jacscale_core.memory.records import encode_state
from jacscale_core.memory.request import RequestMemory, release_walker
from jacscale_core.memory.shared_tier import SharedTier
from jacscale_core.store import RecordWrite
from jacscale_ext.sqlite_store import SqliteGraphStore


class Item(NodeArchetype):  # type: ignore[misc]
    title: str = ""


class Walk(WalkerArchetype):  # type: ignore[misc]
    pass


track_writes(Item)


@pytest.fixture
def tier(tmp_path: Path) -> Iterator[SharedTier]:
    store = SqliteGraphStore(tmp_path / "graph.db")
    yield SharedTier(store)
    store.close()


def stored(
    tier: SharedTier, arch: Any, is_root: bool = False, edges: tuple[UUID, ...] = ()
) -> UUID:
    """Write `arch` to the store as a committed record; return its id."""
    anchor = arch.__jac__
    tier.apply(
        [
            RecordWrite(
                op="create",
                id=anchor.id,
                kind="node",
                root=anchor.root,
                is_root=is_root,
                state=encode_state(anchor),
                edges=edges,
            )
        ]
    )
    return anchor.id  # type: ignore[no-any-return]


def test_an_unknown_id_is_absent(tier: SharedTier) -> None:
    mem = RequestMemory(tier)
    missing = uuid4()
    assert mem.get(missing) is None
    assert not mem.has(missing)
    assert mem.batch_get([missing]) == {}


def test_get_decodes_once_per_request_and_each_request_has_its_own_copy(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    first = mem.get(item_id)
    assert first is not None and first.archetype.title == "a"
    assert mem.get(item_id) is first
    assert mem.has(item_id)
    other = RequestMemory(tier).get(item_id)
    assert other is not first and other.archetype is not first.archetype


def test_prefetch_and_batch_get_load_what_is_missing(tier: SharedTier) -> None:
    ids = [stored(tier, Item(title=str(i))) for i in range(3)]
    mem = RequestMemory(tier)
    held = mem.get(ids[0])
    got = mem.batch_get([*ids, uuid4()])
    assert set(got) == set(ids)
    assert got[ids[0]] is held  # already held: not decoded again
    assert [got[i].archetype.title for i in ids] == ["0", "1", "2"]


def test_an_untouched_request_writes_nothing(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    mem.get(item_id)
    assert mem.flush({}) == 0
    assert tier.store.load([item_id])[item_id].version == 1


def test_a_field_write_is_one_update_with_the_version_read(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    anchor = mem.get(item_id)
    assert anchor is not None
    anchor.archetype.title = "b"
    writes = mem.collect_writes({})
    assert [(w.op, w.id, w.expect_version, w.state is not None) for w in writes] == [
        ("update", item_id, 1, True)
    ]
    assert mem.flush({}) == 1
    assert RequestMemory(tier).get(item_id).archetype.title == "b"  # type: ignore[union-attr]
    assert tier.store.load([item_id])[item_id].version == 2


def test_writing_the_same_value_back_writes_nothing(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    anchor = mem.get(item_id)
    assert anchor is not None
    anchor.archetype.title = "a"  # marked dirty, but encodes to the bytes it was loaded from
    assert mem.flush({}) == 0


def test_an_access_change_put_back_is_written(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    anchor = mem.get(item_id)
    assert anchor is not None
    anchor.access.all = AccessLevel.READ
    mem.put(anchor)
    assert mem.flush({}) == 1
    assert RequestMemory(tier).get(item_id).access.all is AccessLevel.READ  # type: ignore[union-attr]


def test_commit_is_deferred_to_flush(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    anchor = mem.get(item_id)
    assert anchor is not None
    anchor.archetype.title = "b"
    mem.commit()
    mem.commit(anchor)
    assert RequestMemory(tier).get(item_id).archetype.title == "a"  # type: ignore[union-attr]


def test_a_delete_hides_the_anchor_and_removes_the_record_at_flush(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"))
    mem = RequestMemory(tier)
    mem.delete(item_id)
    assert mem.get(item_id) is None
    assert not mem.has(item_id)
    assert mem.batch_get([item_id]) == {}
    assert RequestMemory(tier).get(item_id) is not None  # not before the flush
    assert mem.flush({}) == 1
    assert tier.store.load([item_id]) == {}


def test_a_new_root_is_created_but_an_unreachable_new_node_is_not(tier: SharedTier) -> None:
    mem = RequestMemory(tier)
    root, orphan = Root(), Item(title="orphan")
    for arch in (root, orphan):
        arch.__jac__.persistent = True
        mem.put(arch.__jac__)
    writes = mem.collect_writes({})
    assert [(w.op, w.id, w.is_root) for w in writes] == [("create", root.__jac__.id, True)]


def test_a_connect_on_a_loaded_node_is_an_edge_delta_without_loading_its_edges(
    tier: SharedTier,
) -> None:
    existing = tuple(uuid4() for _ in range(50))
    parent_id = stored(tier, Item(title="parent"), edges=existing)
    mem = RequestMemory(tier)
    parent = mem.get(parent_id)
    assert parent is not None
    new_edge = object.__new__(EdgeAnchor)
    new_edge.__dict__["id"] = uuid4()
    parent.edges.append(new_edge)
    (write,) = mem.collect_writes({parent_id: 1})
    assert (write.state, write.edges_added, write.edges_removed, write.expect_version) == (
        None,
        (new_edge.__dict__["id"],),
        (),
        1,
    )
    assert type(parent.edges) is LazyEdges and parent.edges.pending


def test_get_roots_yields_every_user_root_once_but_not_the_system_root(tier: SharedTier) -> None:
    system = Root()
    system.__jac__.id = SYSTEM_ROOT_ID
    stored(tier, system, is_root=True)
    users = [stored(tier, Root(), is_root=True) for _ in range(2)]
    mem = RequestMemory(tier)
    mem.get(users[0])  # one already held
    assert sorted(r.__jac__.id for r in mem.get_roots()) == sorted(users)


def test_quarantine_ref_drops_the_dangling_edge_from_its_node(tier: SharedTier) -> None:
    keep, dangling = uuid4(), uuid4()
    node_id = stored(tier, Item(), edges=(keep, dangling))
    mem = RequestMemory(tier)
    node = mem.get(node_id)
    assert node is not None
    stub = object.__new__(EdgeAnchor)
    stub.__dict__["id"] = dangling
    mem.quarantine_ref(node, stub)
    assert [e.id for e in node.edges] == [keep]
    assert not mem.is_recoverable_quarantine(dangling)


def test_abort_forgets_everything_and_breaks_the_reference_cycles(tier: SharedTier) -> None:
    item_id = stored(tier, Item(title="a"), edges=(uuid4(),))
    gone_id = stored(tier, Item(title="gone"))
    mem = RequestMemory(tier)
    anchor = mem.get(item_id)
    assert anchor is not None
    arch = anchor.archetype
    anchor.archetype.title = "changed"
    mem.delete(gone_id)
    mem.abort()
    assert mem.__mem__ == {} and mem.deleted == {}
    assert "__jac__" not in arch.__dict__
    assert list.__len__(anchor.edges) == 0 and not anchor.edges.pending
    assert mem.flush({}) == 0  # nothing left to write
    assert RequestMemory(tier).get(item_id).archetype.title == "a"  # type: ignore[union-attr]


def test_release_walker_breaks_the_walker_anchor_cycle() -> None:
    walker = Walk()
    anchor = walker.__jac__
    release_walker(walker)
    assert "__jac__" not in walker.__dict__
    assert "archetype" not in anchor.__dict__
    release_walker(walker)  # twice is harmless
