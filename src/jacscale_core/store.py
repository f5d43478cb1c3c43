"""The storage interfaces the kernel talks to: graph records (L3), a shared cache
(L2) and a small document store for extension data (users, API keys, ...).

The executor owns the object-level work (turning jaclang anchors into records and
back, deciding what changed, checking access); a store only keeps records and
applies a batch of writes atomically with version checks. Implementations: the
built-in SQLite store (default), the Mongo and PostgreSQL plugins. Each passes
the contract suite in `jacscale_core.testing`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from uuid import UUID

AnchorKind = Literal["node", "edge", "walker", "object"]


class WriteConflict(Exception):
    """A version check failed: another writer changed a record this batch depends on."""

    def __init__(self, anchor_id: UUID, expected: int | None, actual: int | None) -> None:
        super().__init__(
            f"write conflict on {anchor_id}: expected version {expected}, found {actual}"
        )
        self.anchor_id = anchor_id
        self.expected = expected
        self.actual = actual


class DuplicateKey(Exception):
    """An insert used an `_id` that already exists in the collection."""


class StoreFull(Exception):
    """The store's disk is full: nothing of the write landed; it works again once space is freed."""

    api_code = "INSUFFICIENT_STORAGE"  # a request that meets it answers 507


class StoreUnavailable(Exception):
    """The backing server cannot be reached (the message never holds credentials)."""

    api_code = "UNAVAILABLE"  # a request that meets it answers 503


@dataclass(slots=True)
class AnchorRecord:
    """One stored anchor.

    `state` is opaque to stores (the executor's encoding of the anchor without
    its edge list). `edges` is a node's edge ids in insertion order; stores keep
    that order. `version` increases by one on every applied write.

    `memo` belongs to the executor (its decoded form of `state`, filled on first
    use); stores leave it None and it takes no part in comparisons.
    """

    id: UUID
    kind: AnchorKind
    version: int
    root: UUID | None
    is_root: bool
    state: bytes
    edges: tuple[UUID, ...] = ()
    memo: Any = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class RecordWrite:
    """One change in a commit batch.

    - `op="create"`: insert a new record (fails with WriteConflict if it exists).
    - `op="update"`: `state` (if not None) replaces the stored state;
      `edges_added` are appended in order, `edges_removed` removed. With
      `expect_version` set, the write applies only if the stored version equals it
      (compare-and-set); with None, state-less edge changes merge blindly.
    - `op="delete"`: remove the record (no error if already gone).
    """

    op: Literal["create", "update", "delete"]
    id: UUID
    kind: AnchorKind = "node"
    root: UUID | None = None
    is_root: bool = False
    state: bytes | None = None
    edges: tuple[UUID, ...] = ()
    edges_added: tuple[UUID, ...] = ()
    edges_removed: tuple[UUID, ...] = ()
    expect_version: int | None = None


@runtime_checkable
class DocumentStore(Protocol):
    """Small JSON-document collections for extension data (users, API keys, ...).

    Documents are dicts of JSON values with a string `_id`. `find` matches
    top-level fields by equality. All methods are blocking: call them from a
    worker thread (e.g. `anyio.to_thread.run_sync`), never on the event loop.
    """

    def insert(self, collection: str, doc: dict[str, Any]) -> None:
        """Insert `doc`; raise DuplicateKey if its `_id` exists."""
        ...

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return the document with this `_id`, or None."""
        ...

    def find(self, collection: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        """Return the documents whose top-level fields equal every item of `where`."""
        ...

    def update(self, collection: str, doc_id: str, fields: dict[str, Any]) -> bool:
        """Set top-level `fields` on a document; False if it does not exist."""
        ...

    def delete(self, collection: str, doc_id: str) -> bool:
        """Delete a document; False if it did not exist."""
        ...


@runtime_checkable
class GraphStore(Protocol):
    """The durable tier (L3). Blocking methods: the executor calls them off the loop.

    Optional: `probe_write() -> None`, one tiny committed write that raises when
    the store cannot take writes (StoreFull for a full disk); /readyz uses it
    instead of `ping` when a store has it.
    """

    location: str  # for display: a path or a URI with credentials masked
    docs: DocumentStore

    def load(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Return the stored records among `ids` (missing ids are simply absent)."""
        ...

    def apply(self, writes: list[RecordWrite]) -> dict[UUID, AnchorRecord | int | None]:
        """Apply every write atomically; report each written id's outcome.

        For each id: the new record, or just its new version (an int: the caller
        derives the record from what it had plus the write, which keeps edge appends
        O(1) for stores that do not read the whole edge list back), or None if deleted.

        Raise WriteConflict (and apply nothing) when a version check fails or a
        create finds an existing record.
        """
        ...

    def root_ids(self) -> list[UUID]:
        """Ids of every stored root (user roots, the guest root and the system root)."""
        ...

    def poll_changes(self) -> list[UUID] | None:
        """Ids written by OTHER processes since the last call, for cache invalidation.

        Return None when the store cannot tell (the caller then drops its whole
        cache). Must be cheap: it runs at the start of every request.
        """
        ...

    def ping(self) -> bool:
        """True when the backing storage answers (for /readyz); bounded by a timeout."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class CacheTier(Protocol):
    """A shared cache of records between workers and pods (L2), e.g. Redis.

    Losing it must never lose data: the executor treats every failure as a miss.
    """

    def get_many(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Return cached records among `ids`."""
        ...

    def put_many(self, records: Iterable[AnchorRecord]) -> None:
        """Cache these committed records."""
        ...

    def invalidate(self, ids: Iterable[UUID]) -> None:
        """Drop these ids here and tell every other process to drop them too."""
        ...

    def poll_invalidations(self) -> list[UUID] | None:
        """Ids other processes invalidated since the last call (None: drop everything)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
