"""`jacscale db migrate`: rewrite every record the `[plugins.scale.schema]` rules change.

Each changed record is written with a compare-and-set on the version it was
read at, in batches applied under the store's write lock, so a server running
on the same store meanwhile loses nothing: a record it wrote in between is
read again and migrated from its new state. Running it twice changes nothing
the second time. Quarantined records are left as they are and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jacscale_core.data_scan import scan
from jacscale_core.schema import Schema, pack_state
from jacscale_core.store import AnchorRecord, GraphStore, RecordWrite, WriteConflict

BATCH = 200
ATTEMPTS = 5


@dataclass
class MigrationReport:
    """How many records `migrate` rewrote, left alone, or could not read."""

    migrated: int = 0
    unchanged: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def _write_for(rec: AnchorRecord, schema: Schema, report: MigrationReport) -> RecordWrite | None:
    decoded = schema.decode(rec.state, rec.kind, for_load=False)
    if decoded.quarantine is not None:
        report.quarantined[decoded.type_name] = report.quarantined.get(decoded.type_name, 0) + 1
        report.reasons.setdefault(decoded.type_name, decoded.quarantine)
        return None
    if not decoded.changed:
        return None
    state = pack_state((decoded.cls, decoded.fields, decoded.root, decoded.access, decoded.extra))
    if state == rec.state:
        return None
    return RecordWrite(
        op="update", id=rec.id, kind=rec.kind, root=rec.root, is_root=rec.is_root,
        state=state, expect_version=rec.version,
    )  # fmt: skip


def migrate(store: GraphStore, schema: Schema) -> MigrationReport:
    """Apply the schema rules to every stored record; see the module docstring."""
    report = MigrationReport()
    pending: list[AnchorRecord] = []
    seen = 0
    for rec in scan(store):
        seen += 1
        pending.append(rec)
        if len(pending) >= BATCH:
            _migrate_batch(store, schema, pending, report)
            pending = []
    if pending:
        _migrate_batch(store, schema, pending, report)
    report.unchanged = seen - report.migrated - sum(report.quarantined.values())
    return report


def _migrate_batch(
    store: GraphStore, schema: Schema, records: list[AnchorRecord], report: MigrationReport
) -> None:
    writes = [w for rec in records if (w := _write_for(rec, schema, report)) is not None]
    if not writes:
        return
    try:
        store.apply(writes)
        report.migrated += len(writes)
        return
    except WriteConflict:
        pass  # someone wrote one of them meanwhile: redo one by one from fresh reads
    for write in writes:
        _migrate_one(store, schema, write, report)


def _migrate_one(
    store: GraphStore, schema: Schema, write: RecordWrite, report: MigrationReport
) -> None:
    for _ in range(ATTEMPTS):
        rec = store.load([write.id]).get(write.id)
        if rec is None:
            return  # deleted meanwhile
        fresh = _write_for(rec, schema, MigrationReport())
        if fresh is None:
            return
        try:
            store.apply([fresh])
            report.migrated += 1
            return
        except WriteConflict:
            continue
    raise RuntimeError(f"record {write.id} kept changing while being migrated; run migrate again")
