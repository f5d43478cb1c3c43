"""Encoding anchors to store records and decoding records into fresh anchors.

A record holds an anchor's state (pickled, without its edge list: what a field
write changes) and its edge ids. Decoding builds a private anchor for one
request; the decoded, shareable parts are memoised on the record, so the next
request that loads it skips the unpickling.
"""

from __future__ import annotations

import pickle
from typing import Any

from jaclang.jac0core.archetype import (
    Access,
    AccessLevel,
    Anchor,
    EdgeAnchor,
    NodeAnchor,
    ObjectAnchor,
    Permission,
    WalkerAnchor,
)

from jacscale_core.memory.dirty import IMMUTABLE_TYPES, tracks_writes
from jacscale_core.memory.ids import intern_uuid
from jacscale_core.memory.lazy_edges import LazyEdges
from jacscale_core.schema import QUARANTINE_KEY, Schema, pack_state
from jacscale_core.store import AnchorKind, AnchorRecord

_ANCHOR_CLASS: dict[str, type[Anchor]] = {
    "node": NodeAnchor,
    "edge": EdgeAnchor,
    "walker": WalkerAnchor,
    "object": ObjectAnchor,
}


def anchor_kind(anchor: Anchor) -> AnchorKind:
    """The record kind for an anchor."""
    if isinstance(anchor, NodeAnchor):
        return "node"
    if isinstance(anchor, EdgeAnchor):
        return "edge"
    if isinstance(anchor, WalkerAnchor):
        return "walker"
    return "object"


def _access_tuple(access: Permission) -> tuple[int, tuple[tuple[str, int], ...]]:
    roots = access.roots.anchors
    return (access.all.value, tuple((k, v.value) for k, v in roots.items()))


_LEVELS: dict[int, AccessLevel] = {level.value: level for level in AccessLevel}


def _permission(data: tuple[int, tuple[tuple[str, int], ...]]) -> Permission:
    # Built without the dataclass __init__ (and Enum lookups by call): this runs
    # for every anchor a request loads.
    level_all, roots = data
    access = object.__new__(Access)
    access.__dict__["anchors"] = {k: _LEVELS[v] for k, v in roots} if roots else {}
    perm = object.__new__(Permission)
    perm.__dict__["all"] = _LEVELS[level_all]
    perm.__dict__["roots"] = access
    return perm


def encode_state(anchor: Anchor) -> bytes:
    """Pickle an anchor's state without its edge list (the part a field write changes)."""
    arch = anchor.archetype
    fields = {k: v for k, v in arch.__dict__.items() if not k.startswith("__jac")}
    extra: tuple[Any, ...] = ()
    if isinstance(anchor, EdgeAnchor):
        extra = (anchor.source.id.bytes, anchor.target.id.bytes, anchor.is_undirected)
    root = anchor.root.bytes if anchor.root is not None else None
    return pack_state((type(arch), fields, root, _access_tuple(anchor.access), extra))


def _memo(record: AnchorRecord, schema: Schema) -> tuple[Any, ...]:
    """The decoded, shareable parts of a record (cached on the record).

    Field values are shared between requests only when every one is immutable
    and the class tracks writes (track_writes): then a request's archetype gets a
    copy of the field dict, and an unmarked archetype provably still equals it.
    Otherwise `fields` is None and every decode unpickles its own values.

    The payload is fitted to the current program first (`Schema.decode`). When
    that changed it, `base` is the fitted payload's encoding: an object nobody
    touches then encodes to it and is not written back (its record keeps the
    stored fields until a real write). A record that cannot be fitted carries
    its quarantine reason and loads as a placeholder.
    """
    decoded = schema.decode(record.state, record.kind)
    cls, fields, extra = decoded.cls, decoded.fields, decoded.extra
    base = record.state
    quarantine = decoded.quarantine
    if quarantine is not None:
        fields = {QUARANTINE_KEY: quarantine}
    elif decoded.changed:
        base = pack_state((cls, fields, decoded.root, decoded.access, extra))
    shareable = tracks_writes(cls) and all(isinstance(v, IMMUTABLE_TYPES) for v in fields.values())
    if record.kind == "edge" and len(extra) == 3:
        source_id, target_id, undirected = extra
        extra = (intern_uuid(source_id), intern_uuid(target_id), undirected)
    return (
        cls,
        fields if shareable else None,
        intern_uuid(decoded.root) if decoded.root is not None else None,
        decoded.access,
        extra,
        base,
        quarantine,
        decoded.changed or quarantine is not None,  # private copies must be fitted again
    )


def decode_record(record: AnchorRecord, schema: Schema | None = None) -> Anchor:
    """Build a fresh, private anchor from a committed record."""
    memo = record.memo
    if memo is None:
        memo = record.memo = _memo(record, schema or Schema())
    cls, shared_fields, root, access, extra, base, quarantine, refit = memo
    arch = cls.__new__(cls)
    if shared_fields is not None:
        arch.__dict__.update(shared_fields)
    elif refit:
        arch.__dict__.update((schema or Schema()).decode(record.state, record.kind).fields)
    else:
        arch.__dict__.update(pickle.loads(record.state)[1])  # stored exactly as the class is
    anchor_cls = _ANCHOR_CLASS[record.kind]
    anchor = object.__new__(anchor_cls)
    d = anchor.__dict__
    d["id"] = record.id
    d["archetype"] = arch
    d["root"] = root
    d["access"] = _permission(access)
    d["persistent"] = True
    d["hash"] = 1  # non-zero: "loaded from the store", which jaclang's access checks rely on
    if record.kind == "node":
        d["edges"] = LazyEdges(record.edges)
        d["topology_index_data"] = None
        d["version"] = record.version
    elif record.kind == "edge":
        source_id, target_id, undirected = extra
        source = object.__new__(NodeAnchor)
        source.__dict__["id"] = source_id
        target = object.__new__(NodeAnchor)
        target.__dict__["id"] = target_id
        d["source"] = source
        d["target"] = target
        d["is_undirected"] = undirected
    elif record.kind == "walker":
        d.update(path=[], next=[], ignores=[], disengaged=False)
    d["_js_state"] = base
    d["_js_edges"] = record.edges
    d["_js_version"] = record.version
    d["_js_shared"] = shared_fields is not None
    if quarantine is not None:
        d["_js_quarantine"] = quarantine
    arch.__dict__["__jac__"] = anchor
    return anchor
