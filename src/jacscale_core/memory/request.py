"""The per-request working set: jaclang's Memory interface over the shared tier.

Each request gets a `RequestMemory`, so jaclang's runtime uses it unchanged. It
starts empty and decodes anchors on demand from the `SharedTier`. At commit each
loaded anchor is compared with the bytes it was loaded from: unchanged anchors
are skipped, changed ones become one `RecordWrite`, and the request's writes go
to the store in one atomic batch. Nothing is shared between requests but
immutable records, so a failed request leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, cast
from uuid import UUID

from jaclang import JacRuntime as Jac
from jaclang.jac0core.archetype import Anchor, NodeAnchor, Root
from jaclang.runtimelib.changeset import ChangeSet
from jaclang.runtimelib.memory import TieredMemory

from jacscale_core.deadlines import shielded
from jacscale_core.memory.dirty import may_have_changed, untouched
from jacscale_core.memory.ids import SYSTEM_ROOT_ID
from jacscale_core.memory.lazy_edges import LazyEdges, edge_changes
from jacscale_core.memory.records import anchor_kind, decode_record, encode_state
from jacscale_core.memory.shared_tier import SharedTier
from jacscale_core.store import RecordWrite


def _unlink(anchor: Anchor) -> None:
    """Break the anchor's reference cycles: archetype -> anchor, and its edge list."""
    d = anchor.__dict__
    arch = d.get("archetype")
    if arch is not None and arch.__dict__.get("__jac__") is anchor:
        del arch.__dict__["__jac__"]
    edges = d.get("edges")
    if type(edges) is LazyEdges:
        edges.release()
    elif type(edges) is list:
        edges.clear()


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
            if untouched(d):
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
