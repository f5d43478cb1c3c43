"""The jaclang memory bridge: a cheap per-request working set over shared tiers.

Each request gets a `RequestMemory` (jaclang's Memory interface, so the runtime
uses it unchanged). It starts empty and loads anchors on demand from the
process-wide `SharedTier`, which keeps committed records (L1 cache), consults an
optional shared cache (L2) and falls back to the durable store (L3).

Records hold an anchor's state (pickled, without its edge list) and its edge ids.
A request decodes only the anchors it touches, and a node's edge stubs are built
only when the walker looks at the edges (`LazyEdges`), so a walker that touches
nothing costs the same on a root with 0 or 10,000 children. At commit each loaded
anchor is encoded once and compared with the bytes it was loaded from: unchanged
anchors cost one pickle, changed ones become one `RecordWrite`. Nothing is shared
between requests but immutable records, so a failed request leaves nothing behind.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import date, time, timedelta
from decimal import Decimal
from enum import Enum
from time import monotonic
from typing import Any, cast
from uuid import UUID

from jaclang import JacRuntime as Jac
from jaclang.jac0core.archetype import (
    Access,
    AccessLevel,
    Anchor,
    EdgeAnchor,
    NodeAnchor,
    ObjectAnchor,
    Permission,
    Root,
    WalkerAnchor,
)
from jaclang.runtimelib.changeset import ChangeSet
from jaclang.runtimelib.memory import TieredMemory

from jacscale_core.deadlines import shielded
from jacscale_core.schema import QUARANTINE_KEY, Schema, pack_state
from jacscale_core.store import (
    AnchorKind,
    AnchorRecord,
    CacheTier,
    GraphStore,
    RecordWrite,
    WriteConflict,
)

RECENT_SECONDS = 2.0
SYSTEM_ROOT_ID = UUID(int=0)
GUEST_ROOT_ID = UUID(int=1)
PICKLE_PROTOCOL = 5

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


# --------------------------------------------------------------------------
# Lazy edge lists
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Dirty tracking
# --------------------------------------------------------------------------

DIRTY = "__jac_dirty__"
_IMMUTABLE = (str, int, float, bool, bytes, type(None), UUID, Enum, date, time, timedelta, Decimal)


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


def _tracked(cls: type) -> bool:
    return bool(getattr(cls, "__jacscale_tracked__", False)) or not dataclass_fields(cls)


def _untouched(d: dict[str, Any]) -> bool:
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
    if not _tracked(type(arch)):
        return True
    values = arch.__dict__
    if values.get(DIRTY):
        return True
    return any(not isinstance(v, _IMMUTABLE) for k, v in values.items() if not k.startswith("__jac"))


_fields_cache: dict[type, tuple[str, ...]] = {}


def dataclass_fields(cls: type) -> tuple[str, ...]:
    """Names of a dataclass's fields (cached)."""
    found = _fields_cache.get(cls)
    if found is None:
        import dataclasses

        found = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
        _fields_cache[cls] = found
    return found


# --------------------------------------------------------------------------
# Encoding anchors to records and back
# --------------------------------------------------------------------------


_UUIDS: dict[bytes, UUID] = {}


def intern_uuid(raw: bytes) -> UUID:
    """A UUID for 16 raw bytes, shared between records (UUIDs are immutable)."""
    found = _UUIDS.get(raw)
    if found is None:
        if len(_UUIDS) > 500_000:
            _UUIDS.clear()
        found = _UUIDS[raw] = UUID(bytes=raw)
    return found


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
    shareable = _tracked(cls) and all(isinstance(v, _IMMUTABLE) for v in fields.values())
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


def _unlink(anchor: Anchor) -> None:
    """Break the anchor's reference cycles: archetype -> anchor, and its edge list."""
    d = anchor.__dict__
    arch = d.get("archetype")
    if arch is not None and arch.__dict__.get("__jac__") is anchor:
        del arch.__dict__["__jac__"]
    edges = d.get("edges")
    if type(edges) is LazyEdges:
        edges._ids = None
        edges._appended = []
        list.clear(edges)
    elif type(edges) is list:
        edges.clear()


# --------------------------------------------------------------------------
# The process-wide tier
# --------------------------------------------------------------------------


class RecordCache:
    """A bounded, thread-safe LRU of committed records keyed by anchor id."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[UUID, AnchorRecord] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every drop: a load that began before a drop must not put back
        # what it read (it may be the very record the drop was for).
        self.generation = 0

    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Cached records among `ids`."""
        out = {}
        with self._lock:
            items = self._items
            for i in ids:
                rec = items.get(i)
                if rec is not None:
                    out[i] = rec
        return out

    def split(self, ids: Iterable[UUID]) -> tuple[list[AnchorRecord], list[UUID]]:
        """(cached records among `ids`, the ids not cached), in `ids` order."""
        found: list[AnchorRecord] = []
        missing: list[UUID] = []
        with self._lock:
            items = self._items
            for i in ids:
                rec = items.get(i)
                if rec is None:
                    missing.append(i)
                else:
                    found.append(rec)
        return found, missing

    def put(self, record: AnchorRecord, generation: int | None = None) -> None:
        """Cache a record unless a newer version is cached (or, given `generation`, a drop happened since)."""
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            current = self._items.get(record.id)
            if current is not None and current.version > record.version:
                return
            self._items[record.id] = record
            self._items.move_to_end(record.id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def drop(self, ids: Iterable[UUID]) -> None:
        """Forget these ids."""
        with self._lock:
            self.generation += 1
            for i in ids:
                self._items.pop(i, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self.generation += 1
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class SharedTier:
    """Committed records for one worker process: cache (L1), optional L2, store (L3)."""

    def __init__(self, store: GraphStore, l2: CacheTier | None = None) -> None:
        self.store = store
        self.l2 = l2
        self.cache = RecordCache()
        self.schema = Schema()  # the app replaces it with one that knows the program
        self._refresh_lock = threading.Lock()
        # Ids other processes just wrote: read them from the store, not from L2, for
        # a moment (the writer invalidates L2 only after its write is visible).
        self._recent: dict[UUID, float] = {}

    def refresh(self) -> None:
        """Drop cached records other processes have written since the last refresh."""
        with self._refresh_lock:
            changed = self.store.poll_changes()
            if changed is None:
                self.cache.clear()
            elif changed:
                self.cache.drop(changed)
                if self.l2 is not None:
                    until = monotonic() + RECENT_SECONDS
                    if len(self._recent) > 50_000:
                        self._recent.clear()
                    for anchor_id in changed:
                        self._recent[anchor_id] = until
        if self.l2 is not None:
            dropped = self.l2.poll_invalidations()
            if dropped is None:
                self.cache.clear()
            elif dropped:
                self.cache.drop(dropped)

    def load(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Records for `ids` from the first tier that has them."""
        return {rec.id: rec for rec in self.load_records(ids)}

    def load_records(self, ids: Iterable[UUID]) -> list[AnchorRecord]:
        """The records that exist among `ids` (any order), from the first tier that has them."""
        with shielded():  # a walker's deadline never interrupts the shared caches or the store
            return self._load_records(ids)

    def _load_records(self, ids: Iterable[UUID]) -> list[AnchorRecord]:
        generation = self.cache.generation
        found, missing = self.cache.split(ids)
        if missing and self.l2 is not None:
            now = monotonic()
            cacheable = [i for i in missing if self._recent.get(i, 0.0) < now]
            from_l2 = self.l2.get_many(cacheable) if cacheable else {}
            for rec in from_l2.values():
                self.cache.put(rec, generation)
            found.extend(from_l2.values())
            missing = [i for i in missing if i not in from_l2]
        if missing:
            from_store = self.store.load(missing)
            for rec in from_store.values():
                self.cache.put(rec, generation)
            if self.l2 is not None and from_store:
                self.l2.put_many(from_store.values())
            found.extend(from_store.values())
        return found

    def apply(self, writes: list[RecordWrite]) -> None:
        """Write a batch to the store (raises WriteConflict) and refresh the caches."""
        try:
            results = self.store.apply(writes)
        except WriteConflict as conflict:
            # Whatever we cached for it is stale: the replay must read it afresh.
            self.cache.drop([conflict.anchor_id])
            if self.l2 is not None:
                self.l2.invalidate([conflict.anchor_id])
            raise
        by_id = {w.id: w for w in writes}
        for anchor_id, outcome in results.items():
            if outcome is None:
                self.cache.drop([anchor_id])
            elif isinstance(outcome, AnchorRecord):
                self.cache.put(outcome)
            else:
                self._derive(by_id[anchor_id], outcome)
        if self.l2 is not None:
            self.l2.invalidate(results.keys())

    def _derive(self, write: RecordWrite, version: int) -> None:
        """Cache the record a write produced, from the write and the record it changed."""
        if write.op == "create":
            self.cache.put(
                AnchorRecord(write.id, write.kind, version, write.root, write.is_root,
                             write.state or b"", write.edges)
            )  # fmt: skip
            return
        before = self.cache.get_many([write.id]).get(write.id)
        if before is None or before.version != version - 1:
            self.cache.drop([write.id])  # someone else wrote in between: reload when needed
            return
        edges = before.edges
        if write.edges_removed:
            edges = merge_edges(edges, write.edges_added, write.edges_removed)
        elif write.edges_added:
            edges = edges + write.edges_added  # new edges: appended in order
        state = write.state if write.state is not None else before.state
        self.cache.put(
            AnchorRecord(before.id, before.kind, version, before.root, before.is_root, state, edges)
        )


def merge_edges(
    stored: tuple[UUID, ...], added: tuple[UUID, ...], removed: tuple[UUID, ...]
) -> tuple[UUID, ...]:
    """Apply an edge delta to an ordered edge list."""
    gone = set(removed)
    present = set(stored)
    out = [i for i in stored if i not in gone]
    out.extend(i for i in added if i not in present and i not in gone)
    return tuple(out)


# --------------------------------------------------------------------------
# The per-request working set
# --------------------------------------------------------------------------


def release_walker(walker: Any) -> None:
    """Break a finished walker's cycle (walker <-> anchor) so it is freed at once.

    Its reports would otherwise keep the request's nodes alive until the garbage
    collector ran (see RequestMemory.abort).
    """
    anchor = walker.__dict__.pop("__jac__", None)
    if anchor is not None:
        anchor.__dict__.pop("archetype", None)


class RequestMemory(TieredMemory):  # type: ignore[misc]
    """One request's anchors; jaclang's runtime reads and writes the graph through it.

    jaclang calls `commit()` at the end of every spawn and for the `commit()`
    builtin; those are deferred to the request boundary, where the executor calls
    `flush()` once, so a request is all-or-nothing.
    """

    __jac_base__ = True

    def __init__(self, tier: SharedTier) -> None:  # noqa: D107 - jaclang obj: no super().__init__
        self.__mem__: dict[UUID, Anchor] = {}
        self.l2 = None
        self.l3 = None
        self.base_path = None
        self.target_path = None
        self.use_cache = False
        self.changes = ChangeSet()
        self.tier = tier
        self.deleted: dict[UUID, Anchor] = {}
        # Set when a stream took this request's graph over (jacscale_core.streaming):
        # the stream then commits and aborts it, not the executor.
        self.streaming = False

    # -- reads -------------------------------------------------------------
    def get(self, id: UUID) -> Anchor | None:
        """The anchor with this id: this request's copy, else a fresh one from the tiers."""
        anchor = self.__mem__.get(id)
        if anchor is not None:
            return anchor
        if id in self.deleted:
            return None
        rec = self.tier.load([id]).get(id)
        if rec is None:
            return None
        anchor = decode_record(rec, self.tier.schema)
        self.__mem__[id] = anchor
        return anchor

    async def aget(self, id: UUID) -> Anchor | None:
        """Async mirror of `get` (records are usually cached in-process)."""
        return self.get(id)

    def batch_get(self, ids: list[UUID]) -> dict[UUID, Anchor]:
        """Load several anchors with one store round trip for the misses."""
        self.prefetch(ids)
        loaded = self.__mem__
        return {i: loaded[i] for i in ids if i in loaded}

    def prefetch(self, ids: Iterable[UUID]) -> None:
        """Load the anchors among `ids` this request does not hold yet (one batch)."""
        loaded = self.__mem__
        deleted = self.deleted
        missing = [i for i in ids if i not in loaded and (not deleted or i not in deleted)]
        if missing:
            for rec in self.tier.load_records(missing):
                loaded[rec.id] = decode_record(rec, self.tier.schema)

    def has(self, id: UUID) -> bool:  # jaclang calls it `has`
        """True if the anchor exists in this request or the tiers."""
        if id in self.__mem__:
            return True
        if id in self.deleted:
            return False
        return bool(self.tier.load([id]))

    def get_roots(self) -> Generator[Root, None, None]:
        """Every user root (the system root excluded), each once."""
        seen: set[UUID] = set()
        for anchor in list(self.__mem__.values()):
            if isinstance(anchor.archetype, Root) and anchor.id != SYSTEM_ROOT_ID:
                seen.add(anchor.id)
                yield cast(Root, anchor.archetype)
        with shielded():
            root_ids = self.tier.store.root_ids()
        for root_id in root_ids:
            if root_id in seen or root_id == SYSTEM_ROOT_ID:
                continue
            seen.add(root_id)
            anchor = self.get(root_id)
            if anchor is not None:
                yield cast(Root, anchor.archetype)

    def query(
        self, filter: Callable[[Anchor], bool] | None = None
    ) -> Generator[Anchor, None, None]:
        """Anchors in this request's working set (jaclang's VolatileMemory semantics)."""
        for anchor in list(self.__mem__.values()):
            if filter is None or filter(anchor):
                yield anchor

    # -- writes ------------------------------------------------------------
    def put(self, anchor: Anchor) -> None:
        """Track an anchor in this request (written at the request's commit)."""
        self.__mem__[anchor.id] = anchor
        if "_js_state" in anchor.__dict__:
            anchor.__dict__["_js_put"] = True  # e.g. perm_grant: access changed

    def delete(self, id: UUID) -> None:
        """Mark an anchor deleted; the store row goes at the request's commit."""
        anchor = self.__mem__.pop(id, None)
        if anchor is None:
            anchor = self.get(id)
            self.__mem__.pop(id, None)
        if anchor is not None and "_js_state" in anchor.__dict__:
            self.deleted[id] = anchor

    def commit(self, anchor: Anchor | None = None) -> None:
        """Deferred: the executor commits once per request (see `flush`)."""

    async def acommit(self, anchor: Anchor | None = None) -> None:
        """Deferred, like `commit`."""

    def abort(self) -> None:
        """Drop everything this request loaded or changed, and let it be freed at once.

        A request's anchors reference each other in cycles (anchor <-> archetype,
        node -> edge list -> edge -> node), which only the garbage collector could
        free: listing ten todos left ~200 such objects per request, and the young
        collections they caused were a tenth of the CPU and most of the p99
        latency. Breaking the two links here lets reference counting free them.
        Call it only when nothing of the request's graph is used any more (the
        executor renders reports first).
        """
        anchors = [*self.__mem__.values(), *self.deleted.values()]
        self.__mem__.clear()
        self.deleted.clear()
        self.changes.clear()
        for anchor in anchors:
            _unlink(anchor)

    def close(self) -> None:
        """Same as abort: a request's memory owns no connections."""
        self.abort()

    def quarantine_ref(self, referrer: Anchor | None, stub: Anchor) -> None:
        """Drop a dangling edge reference from the referrer (repaired at commit)."""
        if isinstance(referrer, NodeAnchor):
            referrer.edges[:] = [e for e in referrer.edges if e.id != stub.id]

    def is_recoverable_quarantine(self, id: UUID) -> bool:
        """We keep no quarantine: unreadable records fail loudly instead."""
        return False

    # -- commit ------------------------------------------------------------
    def collect_writes(self, read_versions: dict[UUID, int]) -> list[RecordWrite]:
        """Turn this request's changes into store writes, with access checks.

        Denied changes are dropped here and reported by jaclang's access checks as
        diagnostics (or PermissionError under JAC_STRICT_PERMISSIONS=1).
        """
        writes: list[RecordWrite] = []
        for anchor in list(self.__mem__.values()):
            d = anchor.__dict__
            if _untouched(d):
                continue
            if not d.get("persistent") or not anchor.is_populated():
                continue
            if anchor.id in self.deleted:
                continue
            base_state: bytes | None = d.get("_js_state")
            is_node = isinstance(anchor, NodeAnchor)
            if base_state is None:
                writes.extend(self._create(anchor, is_node))
                continue
            # A quarantined placeholder's record is never rewritten (its data stays).
            changed = "_js_quarantine" not in d and may_have_changed(anchor)
            state = encode_state(anchor) if changed else base_state
            state_changed = changed and state != base_state
            added: tuple[UUID, ...] = ()
            removed: tuple[UUID, ...] = ()
            if is_node:
                added, removed = edge_changes(cast(NodeAnchor, anchor))
            if state_changed and not Jac.check_write_access(anchor, op_hint="field_write"):
                state_changed = False
            if (added or removed) and not Jac.check_connect_access(anchor):
                added = removed = ()
            if not state_changed and not added and not removed:
                continue
            expect = d["_js_version"] if state_changed else read_versions.get(anchor.id)
            writes.append(
                RecordWrite(
                    op="update",
                    id=anchor.id,
                    kind=anchor_kind(anchor),
                    root=anchor.root,
                    is_root=isinstance(anchor.archetype, Root),
                    state=state if state_changed else None,
                    edges_added=added,
                    edges_removed=removed,
                    expect_version=expect,
                )
            )
        for anchor in self.deleted.values():
            if Jac.check_write_access(anchor, op_hint="delete"):
                writes.append(RecordWrite(op="delete", id=anchor.id, kind=anchor_kind(anchor)))
        return writes

    def _create(self, anchor: Anchor, is_node: bool) -> Iterator[RecordWrite]:
        edges: tuple[UUID, ...] = ()
        is_root = isinstance(anchor.archetype, Root)
        if is_node:
            edges = tuple(e.id for e in cast(NodeAnchor, anchor).edges)
            if not is_root and not edges:
                return  # jaclang's rule: an unreachable new node is garbage, not data
        yield RecordWrite(
            op="create",
            id=anchor.id,
            kind=anchor_kind(anchor),
            root=anchor.root,
            is_root=is_root,
            state=encode_state(anchor),
            edges=edges,
        )

    def flush(self, read_versions: dict[UUID, int]) -> int:
        """Commit this request's changes in one atomic batch; return how many writes."""
        writes = self.collect_writes(read_versions)
        if writes:
            self.tier.apply(writes)
        return len(writes)
