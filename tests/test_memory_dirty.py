"""jacscale_core.memory.dirty: proving a loaded anchor unchanged without encoding it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import uuid4

import pytest
from jaclang.jac0core.archetype import NodeAnchor

from jacscale_core.memory.dirty import (
    DIRTY,
    dataclass_fields,
    may_have_changed,
    track_writes,
    tracks_writes,
    untouched,
)
from jacscale_core.memory.lazy_edges import LazyEdges


class Colour(Enum):
    RED = "red"


@dataclass
class Note:
    title: str = ""
    count: int = 0
    when: date | None = None
    colour: Colour = Colour.RED
    price: Decimal = Decimal("0")
    tags: list[str] = field(default_factory=list)


@dataclass
class Untracked:
    title: str = ""


track_writes(Note)


def anchor_of(arch: Any, **extra: Any) -> NodeAnchor:
    anchor = object.__new__(NodeAnchor)
    anchor.__dict__.update(id=uuid4(), archetype=arch, **extra)
    return anchor


def loaded(arch: Any) -> Any:
    """An instance as decoding builds it: its fields set without __setattr__."""
    obj = type(arch).__new__(type(arch))
    obj.__dict__.update((k, v) for k, v in arch.__dict__.items() if not k.startswith("__jac"))
    return obj


def test_attribute_writes_mark_tracked_instances_dirty() -> None:
    assert (
        Note(title="new").__dict__[DIRTY] is True
    )  # built by the program: its fields were written
    note = loaded(Note(title="a"))
    assert DIRTY not in note.__dict__
    note.title = "b"
    assert note.__dict__[DIRTY] is True
    assert note.title == "b"


def test_tracking_a_class_twice_wraps_it_once() -> None:
    setter = Note.__setattr__
    track_writes(Note)
    assert Note.__setattr__ is setter
    assert tracks_writes(Note)
    assert not tracks_writes(Untracked)


def test_a_class_that_is_not_a_dataclass_counts_as_tracked() -> None:
    class Plain:
        pass

    assert tracks_writes(Plain)  # no fields: nothing a write could hide


def test_a_clean_immutable_anchor_has_not_changed() -> None:
    note = loaded(Note(title="a", count=2, when=date(2026, 1, 2), price=Decimal("1.5"), tags=None))  # type: ignore[arg-type]
    assert not may_have_changed(anchor_of(note))


@pytest.mark.parametrize(
    "change",
    [
        lambda n: setattr(n, "count", 3),
        lambda n: setattr(n, "title", n.title),  # a write of the same value still counts
    ],
)
def test_a_written_anchor_may_have_changed(change: Any) -> None:
    note = loaded(Note(title="a", tags=None))  # type: ignore[arg-type]
    change(note)
    assert may_have_changed(anchor_of(note))


def test_mutable_values_and_put_anchors_may_have_changed() -> None:
    with_list = loaded(Note(tags=["x"]))
    assert may_have_changed(anchor_of(with_list))  # the list could be mutated in place
    clean = loaded(Note(tags=None))  # type: ignore[arg-type]
    assert may_have_changed(anchor_of(clean, _js_put=True))  # e.g. perm_grant re-put it
    assert may_have_changed(anchor_of(loaded(Untracked(title="a"))))  # writes unseen


def loaded_dict(arch: Any, edges: Any = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"archetype": arch, "_js_shared": True, **extra}
    if edges is not None:
        d["edges"] = edges
    return d


def test_untouched_needs_shared_fields_no_put_no_write_and_unchanged_edges() -> None:
    note = loaded(Note(tags=None))  # type: ignore[arg-type]
    assert untouched(loaded_dict(note))
    assert untouched(loaded_dict(note, LazyEdges((uuid4(),))))
    assert not untouched({**loaded_dict(note), "_js_shared": False})
    assert not untouched(loaded_dict(note, _js_put=True))
    appended = LazyEdges(())
    appended.append(object())
    assert not untouched(loaded_dict(note, appended))
    assert not untouched(loaded_dict(note, []))  # jaclang replaced the list
    note.count = 1
    assert not untouched(loaded_dict(note))


def test_dataclass_fields_names_the_fields_in_order() -> None:
    assert dataclass_fields(Note) == ("title", "count", "when", "colour", "price", "tags")
    assert dataclass_fields(Untracked) == ("title",)
    assert dataclass_fields(int) == ()
