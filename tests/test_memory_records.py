"""jacscale_core.memory.records and .ids: anchors to store records and back."""

from __future__ import annotations

import pickle
from typing import Any
from uuid import UUID, uuid4

import pytest
from jaclang.jac0core.archetype import (
    AccessLevel,
    EdgeAnchor,
    EdgeArchetype,
    NodeAnchor,
    NodeArchetype,
    ObjectAnchor,
    ObjectArchetype,
    WalkerAnchor,
    WalkerArchetype,
)

from jacscale_core.memory.dirty import track_writes
from jacscale_core.memory.ids import GUEST_ROOT_ID, SYSTEM_ROOT_ID, intern_uuid
from jacscale_core.memory.lazy_edges import LazyEdges
from jacscale_core.memory.records import anchor_kind, decode_record, encode_state
from jacscale_core.schema import Schema
from jacscale_core.store import AnchorRecord


class Task(NodeArchetype):  # type: ignore[misc]
    title: str = ""
    done: bool = False


class Basket(NodeArchetype):  # type: ignore[misc]
    items: list[str]


class Link(EdgeArchetype):  # type: ignore[misc]
    weight: int = 1


class Thing(ObjectArchetype):  # type: ignore[misc]
    name: str = ""


class Visit(WalkerArchetype):  # type: ignore[misc]
    pass


track_writes(Task)
track_writes(Link)


def link(weight: int = 1, undirected: bool = False) -> tuple[Link, Task, Task]:
    """An edge as connecting builds it: an EdgeAnchor between two nodes."""
    source, target = Task(), Task()
    arch = Link(weight=weight)
    arch.__jac__ = EdgeAnchor(
        archetype=arch, source=source.__jac__, target=target.__jac__, is_undirected=undirected
    )
    return arch, source, target


def record_of(arch: Any, version: int = 1, edges: tuple[UUID, ...] = ()) -> AnchorRecord:
    anchor = arch.__jac__
    return AnchorRecord(
        anchor.id, anchor_kind(anchor), version, anchor.root, False, encode_state(anchor), edges
    )


def test_well_known_root_ids() -> None:
    assert SYSTEM_ROOT_ID == UUID(int=0)
    assert GUEST_ROOT_ID == UUID(int=1)


def test_intern_uuid_shares_one_object_per_id() -> None:
    raw = uuid4().bytes
    first = intern_uuid(raw)
    assert first == UUID(bytes=raw)
    assert intern_uuid(bytes(raw)) is first
    assert intern_uuid(uuid4().bytes) is not first


def test_anchor_kind_names_each_anchor_class() -> None:
    assert anchor_kind(Task().__jac__) == "node"
    assert anchor_kind(Thing().__jac__) == "object"
    assert anchor_kind(Visit().__jac__) == "walker"
    assert anchor_kind(link()[0].__jac__) == "edge"


def test_a_node_round_trips_with_its_fields_owner_and_access() -> None:
    task = Task(title="write tests", done=True)
    owner = uuid4()
    task.__jac__.root = owner
    task.__jac__.access.all = AccessLevel.READ
    task.__jac__.access.roots.anchors[str(owner)] = AccessLevel.WRITE
    edges = (uuid4(), uuid4())
    anchor = decode_record(record_of(task, version=7, edges=edges), Schema())
    assert type(anchor) is NodeAnchor
    assert anchor.id == task.__jac__.id
    arch = anchor.archetype
    assert type(arch) is Task and (arch.title, arch.done) == ("write tests", True)
    assert arch.__jac__ is anchor
    assert anchor.root == owner
    assert anchor.access.all is AccessLevel.READ
    assert dict(anchor.access.roots.anchors) == {str(owner): AccessLevel.WRITE}
    assert anchor.persistent is True
    assert anchor.hash != 0  # "loaded from the store": jaclang's access checks rely on it
    assert anchor.version == 7
    assert type(anchor.edges) is LazyEdges and anchor.edges.pending
    assert [e.id for e in anchor.edges] == list(edges)


def test_the_state_leaves_out_the_edge_list() -> None:
    task = Task(title="a")
    before = encode_state(task.__jac__)
    task.__jac__.edges.append(link()[0].__jac__)
    assert encode_state(task.__jac__) == before
    task.title = "b"
    assert encode_state(task.__jac__) != before


def test_an_edge_keeps_its_endpoints_as_stubs() -> None:
    edge, source, target = link(weight=5, undirected=True)
    anchor = decode_record(record_of(edge))
    assert type(anchor) is EdgeAnchor
    assert anchor.archetype.weight == 5
    assert anchor.source.id == source.__jac__.id and type(anchor.source) is NodeAnchor
    assert anchor.target.id == target.__jac__.id
    assert anchor.source.__dict__ == {"id": source.__jac__.id}  # a stub, populated on use
    assert anchor.is_undirected is True


def test_objects_and_walkers_decode_to_their_anchor_classes() -> None:
    assert type(decode_record(record_of(Thing(name="x")))) is ObjectAnchor
    walker = decode_record(record_of(Visit()))
    assert type(walker) is WalkerAnchor
    assert (walker.path, walker.next, walker.ignores, walker.disengaged) == ([], [], [], False)


def test_every_decode_is_a_private_copy_and_the_record_remembers_its_decoding() -> None:
    record = record_of(Task(title="shared"))
    first = decode_record(record)
    assert record.memo is not None
    second = decode_record(record)
    assert first is not second and first.archetype is not second.archetype
    assert first.archetype.__dict__ is not second.archetype.__dict__
    second.archetype.title = "changed"
    assert first.archetype.title == "shared"
    assert decode_record(record).archetype.title == "shared"


@pytest.mark.parametrize(
    ("arch", "shared"),
    [(Task(title="immutable"), True), (Basket(items=["a"]), False)],
)
def test_field_values_are_shared_only_when_immutable_and_tracked(arch: Any, shared: bool) -> None:
    record = record_of(arch)
    a, b = decode_record(record), decode_record(record)
    assert a.__dict__["_js_shared"] is shared
    if not shared:
        a.archetype.items.append("b")  # a mutable value is never shared between requests
        assert b.archetype.items == ["a"]


def test_a_decoded_anchor_remembers_what_it_was_loaded_from() -> None:
    edges = (uuid4(),)
    record = record_of(Task(title="a"), version=3, edges=edges)
    d = decode_record(record).__dict__
    assert d["_js_state"] == record.state
    assert d["_js_edges"] == edges
    assert d["_js_version"] == 3
    assert "_js_quarantine" not in d


def test_a_record_whose_class_is_gone_loads_as_a_placeholder() -> None:
    task = Task(title="a")
    state = encode_state(task.__jac__)
    cls, fields = pickle.loads(state)[:2]
    assert cls is Task and fields["title"] == "a"
    gone = state.replace(b"Task", b"Gone")  # the class as a program that renamed it stored it
    anchor = decode_record(AnchorRecord(task.__jac__.id, "node", 1, None, False, gone), Schema())
    assert "_js_quarantine" in anchor.__dict__
    assert "Gone" in anchor.__dict__["_js_quarantine"]
    assert type(anchor.archetype) is not Task
