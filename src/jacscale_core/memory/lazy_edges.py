"""A node's edge list that builds its edge stubs only when they are looked at.

A loaded node's edges are stored as ids. `LazyEdges` keeps them as ids until the
walker uses the list as a list, and records appends (what a connect does)
without loading, so a walker that touches nothing costs the same on a root with
0 or 10,000 children. `edge_changes` turns the list back into the delta a commit
writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from jaclang.jac0core.archetype import EdgeAnchor, NodeAnchor


def _edge_stub(edge_id: UUID) -> EdgeAnchor:
    stub = object.__new__(EdgeAnchor)
    stub.__dict__["id"] = edge_id
    return stub


class LazyEdges(list):  # type: ignore[type-arg]
    """A node's edge list whose stubs are built on first use.

    Every list operation materialises first, so jaclang sees an ordinary list,
    except `append` (what a connect does), which is remembered without loading:
    adding one child to a node with 10,000 edges does not build 10,000 stubs.
    `pending` is True until the list is materialised; `changed` says whether the
    list may differ from what was loaded (any mutating call sets it).
    """

    __slots__ = ("_ids", "_appended", "changed")

    def __init__(self, ids: tuple[UUID, ...]) -> None:
        super().__init__()
        self._ids: tuple[UUID, ...] | None = ids
        self._appended: list[Any] = []
        self.changed = False

    @property
    def pending(self) -> bool:
        """True while the stored ids have not been turned into stubs."""
        return self._ids is not None

    def appended(self) -> list[Any]:
        """Edges appended while pending."""
        return self._appended

    def append(self, item: Any) -> None:
        """Append without materialising when still pending."""
        self.changed = True
        if self._ids is not None:
            self._appended.append(item)
        else:
            list.append(self, item)

    def _load(self) -> None:
        ids = self._ids
        if ids is not None:
            self._ids = None
            list.extend(self, (_edge_stub(i) for i in ids))
            list.extend(self, self._appended)
            self._appended = []

    def release(self) -> None:
        """Empty the list without materialising it (breaks the request's reference cycles)."""
        self._ids = None
        self._appended = []
        list.clear(self)


_MUTATORS = frozenset((
    "__setitem__", "__delitem__", "__iadd__", "__imul__",
    "extend", "insert", "remove", "pop", "sort", "reverse", "clear",
))  # fmt: skip


def _materialising(name: str) -> Callable[..., Any]:
    base = getattr(list, name)
    mutates = name in _MUTATORS

    def method(self: LazyEdges, *args: Any, **kwargs: Any) -> Any:
        self._load()
        if mutates:
            self.changed = True
        return base(self, *args, **kwargs)

    method.__name__ = name
    return method


for _name in (
    "__iter__", "__len__", "__getitem__", "__setitem__", "__delitem__", "__contains__",
    "__reversed__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__",
    "__iadd__", "__mul__", "__imul__", "__rmul__", "__repr__", "__reduce_ex__",
    "extend", "insert", "remove", "pop", "index", "count", "sort", "reverse",
    "copy", "clear",
):  # fmt: skip
    setattr(LazyEdges, _name, _materialising(_name))
LazyEdges.__hash__ = None  # type: ignore[assignment]


def _bool(self: LazyEdges) -> bool:
    return bool(self._ids) or bool(self._appended) or list.__len__(self) > 0


LazyEdges.__bool__ = _bool  # type: ignore[attr-defined]


def edge_changes(anchor: NodeAnchor) -> tuple[tuple[UUID, ...], tuple[UUID, ...]]:
    """(added, removed) edge ids since the node was loaded, in order."""
    d = anchor.__dict__
    edges = d.get("edges")
    if isinstance(edges, LazyEdges) and edges.pending:
        return tuple(e.id for e in edges.appended()), ()
    before: tuple[UUID, ...] = d["_js_edges"]
    current = tuple(e.id for e in anchor.edges)
    if current == before:
        return (), ()
    before_set, current_set = set(before), set(current)
    added = tuple(i for i in current if i not in before_set)
    removed = tuple(i for i in before if i not in current_set)
    return added, removed
