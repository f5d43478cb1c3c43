"""The jaclang memory bridge: a cheap per-request working set over shared tiers.

Each request gets a `RequestMemory` (jaclang's Memory interface, so the runtime
uses it unchanged). It starts empty and loads anchors on demand from the
process-wide `SharedTier`, which keeps committed records (L1 cache), consults an
optional shared cache (L2) and falls back to the durable store (L3).

One concept per module:

- `lazy_edges`: `LazyEdges`, a node's edge list built only when looked at, and
  `edge_changes`, the delta a commit writes.
- `dirty`: `track_writes` and `may_have_changed`, proving an anchor unchanged
  without encoding it.
- `records`: `encode_state` / `decode_record`, anchors to store records and back.
- `shared_tier`: `RecordCache` and `SharedTier`, committed records for one process.
- `request`: `RequestMemory`, one request's anchors and its one commit.
- `ids`: the well-known root ids and `intern_uuid`.

The names below are the ones the rest of jacscale and the store plugins import
from `jacscale_core.memory`.
"""

from __future__ import annotations

from jacscale_core.memory.dirty import DIRTY, dataclass_fields, may_have_changed, track_writes
from jacscale_core.memory.ids import GUEST_ROOT_ID, SYSTEM_ROOT_ID, intern_uuid
from jacscale_core.memory.lazy_edges import LazyEdges, edge_changes
from jacscale_core.memory.records import anchor_kind, decode_record, encode_state
from jacscale_core.memory.request import RequestMemory, release_walker
from jacscale_core.memory.shared_tier import RECENT_SECONDS, RecordCache, SharedTier, merge_edges

__all__ = [
    "DIRTY",
    "GUEST_ROOT_ID",
    "RECENT_SECONDS",
    "SYSTEM_ROOT_ID",
    "LazyEdges",
    "RecordCache",
    "RequestMemory",
    "SharedTier",
    "anchor_kind",
    "dataclass_fields",
    "decode_record",
    "edge_changes",
    "encode_state",
    "intern_uuid",
    "may_have_changed",
    "merge_edges",
    "release_walker",
    "track_writes",
]
