"""jacscale_core.memory.lazy_edges: a node's edge list, built only when looked at."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from jaclang.jac0core.archetype import EdgeAnchor, NodeAnchor

from jacscale_core.memory.lazy_edges import LazyEdges, edge_changes


def ids(n: int) -> tuple[UUID, ...]:
    return tuple(uuid4() for _ in range(n))


def stub(edge_id: UUID) -> EdgeAnchor:
    edge = object.__new__(EdgeAnchor)
    edge.__dict__["id"] = edge_id
    return edge


def node_with(edges: Any, loaded: tuple[UUID, ...]) -> NodeAnchor:
    node = object.__new__(NodeAnchor)
    node.__dict__.update(id=uuid4(), edges=edges, _js_edges=loaded)
    return node


def test_stays_pending_until_used_as_a_list() -> None:
    stored = ids(3)
    edges = LazyEdges(stored)
    assert edges.pending
    assert bool(edges)  # answered from the ids, without building stubs
    assert edges.pending
    assert [e.id for e in edges] == list(stored)
    assert not edges.pending
    assert all(
        type(e) is EdgeAnchor and e.__dict__ == {"id": i}
        for e, i in zip(edges, stored, strict=True)
    )


@pytest.mark.parametrize(
    "use",
    [
        len,
        list,
        lambda e: e[0],
        lambda e: e[-1:],
        lambda e: uuid4() in e,
        repr,
        lambda e: e.index(e[1]),
        reversed,
    ],
)
def test_every_read_materialises(use: Any) -> None:
    edges = LazyEdges(ids(2))
    use(edges)
    assert not edges.pending
    assert not edges.changed


def test_append_while_pending_is_remembered_without_loading() -> None:
    stored = ids(10_000)
    edges = LazyEdges(stored)
    new = stub(uuid4())
    edges.append(new)
    assert edges.pending and edges.changed
    assert edges.appended() == [new]
    # Materialising keeps the stored order, then the appends.
    assert [e.id for e in edges] == [*stored, new.id]
    assert edges.appended() == []


def test_append_after_loading_is_an_ordinary_append() -> None:
    edges = LazyEdges(ids(1))
    len(edges)
    new = stub(uuid4())
    edges.append(new)
    assert edges[-1] is new and len(edges) == 2
    assert edges.changed


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop(),
        lambda e: e.remove(e[0]),
        lambda e: e.insert(0, stub(uuid4())),
        lambda e: e.extend([stub(uuid4())]),
        lambda e: e.clear(),
        lambda e: e.reverse(),
        lambda e: e.__setitem__(slice(None), []),
        lambda e: e.__delitem__(0),
    ],
)
def test_every_mutation_marks_the_list_changed(mutate: Any) -> None:
    edges = LazyEdges(ids(3))
    mutate(edges)
    assert edges.changed


def test_empty_lists_are_falsy_and_lists_are_unhashable() -> None:
    assert not LazyEdges(())
    with_append = LazyEdges(())
    with_append.append(stub(uuid4()))
    assert with_append
    with pytest.raises(TypeError):
        hash(LazyEdges(()))


def test_compares_like_the_list_it_stands_for() -> None:
    edges = LazyEdges(ids(2))
    assert edges == list(edges)
    assert LazyEdges(()) == []


def test_release_empties_without_building_stubs() -> None:
    edges = LazyEdges(ids(5))
    edges.append(stub(uuid4()))
    edges.release()
    assert not edges.pending
    assert edges.appended() == []
    assert list.__len__(edges) == 0


def test_edge_changes_of_a_pending_list_are_its_appends() -> None:
    stored = ids(4)
    edges = LazyEdges(stored)
    new = [stub(uuid4()), stub(uuid4())]
    for e in new:
        edges.append(e)
    assert edge_changes(node_with(edges, stored)) == ((new[0].id, new[1].id), ())
    assert edges.pending  # computing the delta did not load the list


def test_edge_changes_after_loading_are_added_and_removed_in_order() -> None:
    stored = ids(4)
    edges = LazyEdges(stored)
    gone = edges[1]
    edges.remove(gone)
    added = stub(uuid4())
    edges.insert(0, added)
    assert edge_changes(node_with(edges, stored)) == ((added.id,), (gone.id,))


def test_edge_changes_of_an_untouched_or_reordered_list_are_empty_or_exact() -> None:
    stored = ids(3)
    loaded = LazyEdges(stored)
    len(loaded)
    assert edge_changes(node_with(loaded, stored)) == ((), ())
    plain = [stub(i) for i in reversed(stored)]  # a plain list: jaclang replaced it
    assert edge_changes(node_with(plain, stored)) == ((), ())
    assert edge_changes(node_with([stub(stored[0])], stored)) == ((), stored[1:])
