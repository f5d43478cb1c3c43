"""Dirty tracking: proving a loaded anchor unchanged without encoding it.

The program's node, edge and object classes mark their instances dirty on every
attribute write (`track_writes`). A loaded anchor whose archetype is unmarked and
holds only immutable values cannot have changed, so the commit skips it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from jaclang.jac0core.archetype import Anchor

from jacscale_core.memory.lazy_edges import LazyEdges

DIRTY = "__jac_dirty__"
IMMUTABLE_TYPES = (
    str,
    int,
    float,
    bool,
    bytes,
    type(None),
    UUID,
    Enum,
    date,
    time,
    timedelta,
    Decimal,
)


def track_writes(cls: type) -> None:
    """Make attribute writes on instances of `cls` mark them dirty (program classes).

    A loaded anchor whose archetype is tracked, clean, and holds only immutable
    values cannot have changed, so the commit skips encoding it.
    """
    if cls.__dict__.get("__jacscale_tracked__"):
        return
    base_setattr: Callable[[Any, str, Any], None] = cls.__setattr__  # type: ignore[assignment]

    def __setattr__(self: Any, name: str, value: Any) -> None:
        self.__dict__[DIRTY] = True
        base_setattr(self, name, value)

    cls.__setattr__ = __setattr__  # type: ignore[method-assign,assignment]
    cls.__jacscale_tracked__ = True  # type: ignore[attr-defined]


def tracks_writes(cls: type) -> bool:
    """True when an unmarked instance of `cls` provably holds what it was loaded with."""
    return bool(getattr(cls, "__jacscale_tracked__", False)) or not dataclass_fields(cls)


def untouched(d: dict[str, Any]) -> bool:
    """True when a loaded anchor (its __dict__) provably equals its record.

    Its field values are the record's shared immutable ones and nothing was
    assigned (track_writes), its access was not re-put, and its edge list, if a
    node's, was neither appended to nor mutated.
    """
    if not d.get("_js_shared") or "_js_put" in d:
        return False
    if DIRTY in d["archetype"].__dict__:
        return False
    if "edges" in d:
        edges = d["edges"]
        return type(edges) is LazyEdges and not edges.changed
    return True


def may_have_changed(anchor: Anchor) -> bool:
    """False only when the anchor provably equals what was loaded (see track_writes)."""
    d = anchor.__dict__
    if d.get("_js_put"):
        return True
    arch = d["archetype"]
    if not tracks_writes(type(arch)):
        return True
    values = arch.__dict__
    if values.get(DIRTY):
        return True
    return any(
        not isinstance(v, IMMUTABLE_TYPES) for k, v in values.items() if not k.startswith("__jac")
    )


_fields_cache: dict[type, tuple[str, ...]] = {}


def dataclass_fields(cls: type) -> tuple[str, ...]:
    """Names of a dataclass's fields (cached)."""
    found = _fields_cache.get(cls)
    if found is None:
        found = (
            tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
        )
        _fields_cache[cls] = found
    return found
