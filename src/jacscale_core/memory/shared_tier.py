"""The process-wide tier: committed records from the cache (L1), L2, or the store (L3).

`SharedTier` keeps committed records in a bounded LRU (`RecordCache`), consults
an optional shared cache (L2) and falls back to the durable store (L3). It drops
what other processes wrote before each request, and caches what this process
writes from the write itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from time import monotonic
from uuid import UUID

from jacscale_core.deadlines import shielded
from jacscale_core.schema import Schema
from jacscale_core.store import AnchorRecord, CacheTier, GraphStore, RecordWrite, WriteConflict

RECENT_SECONDS = 2.0


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

    def __init__(
        self, store: GraphStore, l2: CacheTier | None = None, record_cache_size: int = 200_000
    ) -> None:
        self.store = store
        self.l2 = l2
        self.cache = RecordCache(record_cache_size)
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
