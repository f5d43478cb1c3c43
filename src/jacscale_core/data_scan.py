"""Reading a whole store: the start-up check for unloadable records and `jacscale db inspect`.

Stores that can list their records implement `scan_records(batch)` (the SQLite
store and the Mongo plugin do); it yields every record in batches, each read
as it is at that moment (not one snapshot).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from jacscale_core.context import AppContext
from jacscale_core.schema import Schema, stored_type
from jacscale_core.store import AnchorRecord, GraphStore

log = logging.getLogger("jacscale.schema")


class CannotScan(Exception):
    """The store offers no way to list its records."""


def scan(store: GraphStore, batch: int = 1000) -> Iterator[AnchorRecord]:
    """Every record of `store`, one at a time."""
    scanner = getattr(store, "scan_records", None)
    if scanner is None:
        raise CannotScan(f"the store at {store.location} cannot list its records")
    for chunk in scanner(batch):
        yield from chunk


def type_counts(store: GraphStore) -> dict[str, int]:
    """Records per stored type (`module.Class`)."""
    counts: dict[str, int] = {}
    by_prefix = getattr(store, "count_by_type_prefix", None)
    if by_prefix is not None:  # one grouped query (SQLite)
        for head, count in by_prefix().items():
            name = stored_type(b"\x80\x05" + head)
            counts[name] = counts.get(name, 0) + count
        return counts
    for rec in scan(store):
        name = stored_type(rec.state)
        counts[name] = counts.get(name, 0) + 1
    return counts


def missing_types(store: GraphStore, schema: Schema) -> dict[str, int]:
    """Records per stored type the program no longer has (after rename rules)."""
    counts = type_counts(store)
    missing = {}
    for name, count in counts.items():
        module, _, cls = name.partition(".")
        if schema.resolve_class(module, cls) is None:
            missing[name] = count
    return missing


def log_unloadable_records(app: AppContext) -> None:
    """At start-up: log how many records of which types the program cannot load."""
    schema = app.executor.tier.schema
    try:
        missing = missing_types(app.store, schema)
    except CannotScan as exc:
        log.info("schema check skipped: %s", exc)
        return
    for name, count in sorted(missing.items()):
        log.warning(
            "%d stored record(s) of type %r cannot be loaded: the program has no such class;"
            " they are quarantined (skipped by traversals, kept in the store). Renamed it?"
            " Add [plugins.scale.schema.rename_types] and run `jacscale db migrate`.",
            count,
            name,
        )


@dataclass
class Inspection:
    """What `jacscale db inspect` reports."""

    location: str
    records: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    types: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantined: dict[str, dict[str, Any]] = field(default_factory=dict)
    orphan_nodes: int = 0
    dangling_edges: int = 0
    state_bytes: int = 0
    files: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "store": self.location,
            "records": self.records,
            "by_kind": self.by_kind,
            "types": self.types,
            "quarantined": self.quarantined,
            "orphans": {"nodes": self.orphan_nodes, "dangling_edges": self.dangling_edges},
            "sizes": {"state_bytes": self.state_bytes, "files": self.files},
        }


def inspect_store(store: GraphStore, schema: Schema) -> Inspection:
    """Count records per type, quarantined records, orphans and sizes.

    An orphan node is a non-root node no root reaches; a dangling edge names a
    node that is not stored.
    """
    report = Inspection(location=store.location)
    kinds: dict[UUID, str] = {}
    node_edges: dict[UUID, tuple[UUID, ...]] = {}
    ends: dict[UUID, tuple[UUID, UUID]] = {}
    roots: list[UUID] = []
    for rec in scan(store):
        report.records += 1
        report.by_kind[rec.kind] = report.by_kind.get(rec.kind, 0) + 1
        report.state_bytes += len(rec.state)
        kinds[rec.id] = rec.kind
        decoded = schema.decode(rec.state, rec.kind)
        name = decoded.type_name
        entry = report.types.setdefault(name, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += len(rec.state)
        if decoded.quarantine is not None:
            q = report.quarantined.setdefault(name, {"count": 0, "reasons": []})
            q["count"] += 1
            if decoded.quarantine not in q["reasons"] and len(q["reasons"]) < 5:
                q["reasons"].append(decoded.quarantine)
        if rec.is_root:
            roots.append(rec.id)
        if rec.kind == "node":
            node_edges[rec.id] = rec.edges
        elif rec.kind == "edge" and len(decoded.extra) == 3:
            source, target, _ = decoded.extra
            ends[rec.id] = (UUID(bytes=source), UUID(bytes=target))
    for source, target in ends.values():
        if kinds.get(source) != "node" or kinds.get(target) != "node":
            report.dangling_edges += 1
    reached = set(roots)
    todo = list(roots)
    while todo:
        node = todo.pop()
        for edge_id in node_edges.get(node, ()):
            for end in ends.get(edge_id, ()):
                if end not in reached and end in node_edges:
                    reached.add(end)
                    todo.append(end)
    report.orphan_nodes = sum(1 for n in node_edges if n not in reached)
    path = getattr(store, "path", None)
    if isinstance(path, Path):
        for suffix in ("", "-wal", "-shm"):
            candidate = Path(str(path) + suffix)
            if candidate.exists():
                report.files[candidate.name] = candidate.stat().st_size
    return report
