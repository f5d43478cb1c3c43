"""The embedded durable store (L3): one SQLite file in WAL mode, shared by all
local workers. No server process is needed.

Tables: `anchors` (one row per anchor: state blob + ordered edge ids), `changes`
(an append-only log other workers poll to invalidate their caches; pruned), and
`docs` (small JSON collections for extensions: users, API keys, ...).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from jacscale_core.context import AppContext
from jacscale_core.deadlines import shielded
from jacscale_core.memory import intern_uuid
from jacscale_core.plugins import hookimpl
from jacscale_core.store import (
    AnchorRecord,
    DuplicateKey,
    RecordWrite,
    StoreFull,
    WriteConflict,
)

log = logging.getLogger("jacscale.sqlite")

BUSY_TIMEOUT_MS = 10_000
CHANGES_KEPT = 100_000
PRUNE_EVERY = 500
# Checkpoint the WAL into the database file once it holds this many pages (SQLite's
# default is 1,000). A commit writes ~12 pages, several of them the same hot pages
# (the change log's tail, interior b-tree pages) again and again; a checkpoint
# copies each page once however often the WAL holds it, so checkpointing 4x less
# often costs ~10% less CPU per commit. 4,000 frames (~16 MB) still fit one
# wal-index hash table (4,096 frames), so page lookups in the WAL stay one probe.
WAL_AUTOCHECKPOINT_PAGES = 4000
# After a checkpoint the WAL file is truncated back to this size (SQLite keeps it
# at its largest otherwise): the autocheckpoint size, so the normal cycle reuses
# the file without shrinking and growing it again.
JOURNAL_SIZE_LIMIT_BYTES = WAL_AUTOCHECKPOINT_PAGES * 4096
# Every this many commits the WAL's size is compared with the disk's free space:
# a WAL over WAL_CHECK_MIN_BYTES and as large as what is left (or over
# WAL_MAX_BYTES, when readers held checkpoints back) is checkpointed and
# truncated to nothing at once, so the WAL alone never fills a small data volume.
WAL_CHECK_EVERY = 8
WAL_CHECK_MIN_BYTES = 1024 * 1024
WAL_MAX_BYTES = 64 * 1024 * 1024
FULL_MESSAGE = "the data volume is full: nothing was written; writes work again once space is freed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS anchors (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    root BLOB,
    is_root INTEGER NOT NULL,
    state BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS anchors_roots ON anchors(is_root) WHERE is_root = 1;
-- A node's edges, in insertion order: an append is one row, not a rewrite.
CREATE TABLE IF NOT EXISTS edges (
    node BLOB NOT NULL,
    pos INTEGER NOT NULL,
    edge BLOB NOT NULL,
    PRIMARY KEY (node, pos)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS edges_by_id ON edges(node, edge);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL,
    writer INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (collection, id)
) WITHOUT ROWID;
"""


_INSERT_ANCHOR = (
    "INSERT INTO anchors (id, kind, version, root, is_root, state) VALUES (?, ?, 1, ?, ?, ?)"
)
# Append an edge after the node's last one, its position computed in the statement
# (MAX over the (node, pos) primary key is one index seek; a scalar subquery in
# VALUES, unlike INSERT ... SELECT from the same table, needs no temporary table).
# Parameters: (node, node, edge).
_APPEND_EDGE = (
    "INSERT INTO edges (node, pos, edge)"
    " VALUES (?, (SELECT COALESCE(MAX(pos), -1) + 1 FROM edges WHERE node = ?), ?)"
)
# The same, but an edge the node already has is skipped: it hits the unique
# (node, edge) index. (The (node, pos) key cannot clash: pos is past the last one.)
_APPEND_EDGE_ONCE = (
    "INSERT OR IGNORE INTO edges (node, pos, edge)"
    " VALUES (?, (SELECT COALESCE(MAX(pos), -1) + 1 FROM edges WHERE node = ?), ?)"
)
# Compare-and-set: check and bump the version in one statement (rowcount 0 = missing
# or moved on). Measured cheaper than `... RETURNING version`, which buffers its row.
_BUMP_IF = "UPDATE anchors SET version = ? WHERE id = ? AND version = ?"
_BUMP_STATE_IF = "UPDATE anchors SET version = ?, state = ? WHERE id = ? AND version = ?"
# The change log rows of a small batch in one statement (larger batches: executemany).
_LOG_ONE_STATEMENT = 8
_LOG_CHANGES = {
    n: "INSERT INTO changes (id, writer) VALUES " + ", ".join(["(?, ?)"] * n)
    for n in range(1, _LOG_ONE_STATEMENT + 1)
}


class SqliteDocuments:
    """DocumentStore over the `docs` table (shares the graph store's connection)."""

    def __init__(self, store: SqliteGraphStore) -> None:
        self._store = store

    def insert(self, collection: str, doc: dict[str, Any]) -> None:
        """Insert `doc`; raise DuplicateKey if its `_id` exists."""
        doc_id = str(doc["_id"])
        with self._store.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO docs (collection, id, doc) VALUES (?, ?, ?)",
                    (collection, doc_id, json.dumps(doc)),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateKey(f"{collection}/{doc_id} exists") from exc

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """Return the document with this `_id`, or None."""
        with self._store.locked() as conn:
            row = conn.execute(
                "SELECT doc FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def find(self, collection: str, where: dict[str, Any]) -> list[dict[str, Any]]:
        """Documents whose top-level fields equal every item of `where`."""
        sql = "SELECT doc FROM docs WHERE collection = ?"
        params: list[Any] = [collection]
        for key, value in where.items():
            if not key.replace("_", "").isalnum():
                raise ValueError(f"invalid field name {key!r}")
            sql += f" AND json_extract(doc, '$.{key}') IS ?"
            params.append(int(value) if isinstance(value, bool) else value)
        with self._store.locked() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [json.loads(r[0]) for r in rows]

    def update(self, collection: str, doc_id: str, fields: dict[str, Any]) -> bool:
        """Set top-level fields; False if the document does not exist."""
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT doc FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)
            ).fetchone()
            if row is None:
                return False
            doc = json.loads(row[0]) | fields
            conn.execute(
                "UPDATE docs SET doc = ? WHERE collection = ? AND id = ?",
                (json.dumps(doc), collection, doc_id),
            )
        return True

    def delete(self, collection: str, doc_id: str) -> bool:
        """Delete a document; False if it did not exist."""
        with self._store.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)
            )
        return cur.rowcount > 0


class SqliteGraphStore:
    """GraphStore on one SQLite file; safe for several worker processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Created private: the file holds the app's data and its users.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.RLock()
        # Batches waiting for the next group commit (see apply).
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        self._conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
        self._wal_path = Path(f"{self.path}-wal")
        self._commits = 0
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(anchors)")}
        if "edges" in columns:
            raise RuntimeError(
                f"{self.path} was written by an early development build of jacscale with"
                " another layout; move it away (the server creates a new one)"
            )
        self._conn.executescript(SCHEMA)
        # Identifies this store's own writes in the change log (one store per process).
        self._writer = secrets.randbits(62)
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        self._last_seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
        self._applies = 0
        self.docs = SqliteDocuments(self)

    # -- connection helpers --------------------------------------------------
    def locked(self) -> _Locked:
        """The connection under this store's lock (reads)."""
        return _Locked(self._lock, self._conn, transaction=False)

    def transaction(self) -> _Locked:
        """The connection under the lock, inside BEGIN IMMEDIATE ... COMMIT."""
        return _Locked(self._lock, self._conn, transaction=True)

    # -- GraphStore ----------------------------------------------------------
    def load(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Stored records among `ids`, nodes with their edges in order."""
        wanted = [i.bytes for i in ids]
        out: dict[UUID, AnchorRecord] = {}
        with self.locked() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT id, kind, version, root, is_root, state FROM anchors"
                    f" WHERE id IN ({marks})",
                    chunk,
                ).fetchall()
                nodes = [r[0] for r in rows if r[1] == "node"]
                edges: dict[bytes, list[UUID]] = {n: [] for n in nodes}
                if nodes:
                    node_marks = ",".join("?" * len(nodes))
                    for node, edge in conn.execute(
                        f"SELECT node, edge FROM edges WHERE node IN ({node_marks})"
                        " ORDER BY node, pos",
                        nodes,
                    ):
                        edges[node].append(intern_uuid(edge))
                for row in rows:
                    rec = _record(row, tuple(edges.get(row[0], ())))
                    out[rec.id] = rec
        return out

    def apply(self, writes: list[RecordWrite]) -> dict[UUID, AnchorRecord | int | None]:
        """Apply every write atomically; WriteConflict means none of them applied.

        Returns new versions (the caller derives the records). Concurrent callers
        share transactions (group commit): a caller that finds the store busy
        queues its batch, and whoever holds the store next commits every queued
        batch in one transaction, each inside its own savepoint, so one batch's
        conflict rolls back only that batch. Committing several requests' writes
        at once writes the pages they share (the root's row, the tail of the edge
        table and the change log) to the WAL once instead of once per request.
        """
        entry = _Pending(writes)
        with self._queue_lock:
            self._queue.append(entry)
        with self._lock:
            while not entry.done:  # a leader before us may already have committed it
                self._commit_queued()
            if isinstance(entry.error, StoreFull):
                # The WAL may be what fills the disk: checkpoint and truncate it, try once more.
                self.checkpoint()
                entry = _Pending(writes)
                with self._queue_lock:
                    self._queue.append(entry)
                while not entry.done:
                    self._commit_queued()
            else:
                self._commits += 1
                if self._commits % WAL_CHECK_EVERY == 0:
                    self._checkpoint_if_large()
        if entry.error is not None:
            raise entry.error
        assert entry.results is not None
        return entry.results

    def _commit_queued(self) -> None:
        """Commit every queued batch in one transaction (the caller holds the store lock)."""
        with self._queue_lock:
            group, self._queue = self._queue, []
        try:
            if len(group) == 1:
                only = group[0]
                with self.transaction() as conn:
                    only.results = self._apply_writes(conn.cursor(), only.writes)
                return
            with self.transaction() as conn:
                cur = conn.cursor()
                for entry in group:
                    cur.execute("SAVEPOINT batch")
                    try:
                        entry.results = self._apply_writes(cur, entry.writes)
                    except Exception as exc:  # noqa: BLE001 - handed to that batch's caller
                        entry.error = StoreFull(FULL_MESSAGE) if _is_full(exc) else exc
                        cur.execute("ROLLBACK TO batch")
                    cur.execute("RELEASE batch")
        except BaseException as exc:
            # BEGIN or COMMIT failed (or one batch alone did): nothing of the group landed.
            full = _is_full(exc) or any(isinstance(e.error, StoreFull) for e in group)
            for entry in group:
                entry.results = None
                if full and not isinstance(exc, StoreFull):
                    entry.error = StoreFull(FULL_MESSAGE)
                else:
                    entry.error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            for entry in group:
                entry.done = True

    def _apply_writes(
        self, cur: sqlite3.Cursor, writes: list[RecordWrite]
    ) -> dict[UUID, AnchorRecord | int | None]:
        """One batch's statements, inside the caller's transaction.

        Edge changes touch only the edge rows they add or remove. Statements are
        kept few: a compare-and-set update is one `UPDATE ... WHERE version = ?`
        (a SELECT only to report a conflict), an edge append computes its
        position inside its INSERT and skips an edge already there by the unique
        index, and the change log gets the batch's ids in one statement.
        """
        results: dict[UUID, AnchorRecord | int | None] = {}
        logged: list[bytes] = []  # ids for the change log, in order
        writer = self._writer
        for w in writes:
            key = w.id.bytes
            op = w.op
            if op == "create":
                try:
                    cur.execute(
                        _INSERT_ANCHOR,
                        (key, w.kind, _blob(w.root), int(w.is_root), w.state or b""),
                    )
                except sqlite3.IntegrityError as exc:
                    raise WriteConflict(w.id, None, -1) from exc
                if w.edges:
                    # A duplicate edge id in a new node is a caller bug: IntegrityError.
                    cur.executemany(_APPEND_EDGE, [(key, key, e.bytes) for e in w.edges])
                results[w.id] = 1
            elif op == "update":
                expect = w.expect_version
                if expect is None:  # a blind edge merge (or state write): no version check
                    row = cur.execute(
                        "SELECT version FROM anchors WHERE id = ?", (key,)
                    ).fetchone()
                    if row is None:
                        raise WriteConflict(w.id, None, None)
                    version = row[0] + 1
                    if w.state is not None:
                        cur.execute(
                            "UPDATE anchors SET version = ?, state = ? WHERE id = ?",
                            (version, w.state, key),
                        )
                    else:
                        cur.execute(
                            "UPDATE anchors SET version = ? WHERE id = ?", (version, key)
                        )
                else:
                    version = expect + 1
                    if w.state is not None:
                        cur.execute(_BUMP_STATE_IF, (version, w.state, key, expect))
                    else:
                        cur.execute(_BUMP_IF, (version, key, expect))
                    if cur.rowcount != 1:  # missing, or another writer moved it on
                        row = cur.execute(
                            "SELECT version FROM anchors WHERE id = ?", (key,)
                        ).fetchone()
                        raise WriteConflict(w.id, expect, None if row is None else row[0])
                if w.edges_removed:
                    cur.executemany(
                        "DELETE FROM edges WHERE node = ? AND edge = ?",
                        [(key, e.bytes) for e in w.edges_removed],
                    )
                if w.edges_added:
                    # Already there: skipped (the (node, edge) index), an append is idempotent.
                    cur.executemany(
                        _APPEND_EDGE_ONCE, [(key, key, e.bytes) for e in w.edges_added]
                    )
                results[w.id] = version
            else:
                cur.execute("DELETE FROM anchors WHERE id = ?", (key,))
                cur.execute("DELETE FROM edges WHERE node = ?", (key,))
                results[w.id] = None
            logged.append(key)
        if len(logged) > _LOG_ONE_STATEMENT:
            cur.executemany(_LOG_CHANGES[1], [(key, writer) for key in logged])
        elif logged:
            cur.execute(_LOG_CHANGES[len(logged)], [v for key in logged for v in (key, writer)])
        self._applies += 1
        if self._applies % PRUNE_EVERY == 0:
            cur.execute(
                "DELETE FROM changes WHERE seq < (SELECT MAX(seq) FROM changes) - ?",
                (CHANGES_KEPT,),
            )
        return results

    def scan_records(self, batch: int = 1000) -> Iterator[list[AnchorRecord]]:
        """Every stored record in id order, in batches (not one snapshot).

        Reads through its own read-only connection, so requests served by this
        store are not held up while a scan runs (`jacscale db`, start-up checks).
        """
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            last = b""
            while True:
                rows = conn.execute(
                    "SELECT id, kind, version, root, is_root, state FROM anchors"
                    " WHERE id > ? ORDER BY id LIMIT ?",
                    (last, batch),
                ).fetchall()
                if not rows:
                    return
                edges: dict[bytes, list[UUID]] = {r[0]: [] for r in rows if r[1] == "node"}
                if edges:
                    marks = ",".join("?" * len(edges))
                    for node, edge in conn.execute(
                        f"SELECT node, edge FROM edges WHERE node IN ({marks}) ORDER BY node, pos",
                        list(edges),
                    ):
                        edges[node].append(intern_uuid(edge))
                yield [_record(row, tuple(edges.get(row[0], ()))) for row in rows]
                last = rows[-1][0]
        finally:
            conn.close()

    def count_by_type_prefix(self) -> dict[bytes, int]:
        """Records per class reference (the pickle bytes that name the class), by SQL.

        The key is the state's bytes after its header up to the first STACK_GLOBAL
        opcode (0x93); `jacscale_core.schema.stored_type` reads the name from it.
        Grouping in SQLite makes the start-up check one query, not a Python loop.
        """
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            rows = conn.execute(
                "SELECT substr(state, 12, instr(substr(state, 12), x'93')) AS head, COUNT(*)"
                " FROM anchors GROUP BY head"
            ).fetchall()
        finally:
            conn.close()
        return {bytes(head): count for head, count in rows}

    def root_ids(self) -> list[UUID]:
        """Ids of every stored root."""
        with self.locked() as conn:
            rows = conn.execute("SELECT id FROM anchors WHERE is_root = 1").fetchall()
        return [UUID(bytes=r[0]) for r in rows]

    def poll_changes(self) -> list[UUID] | None:
        """Ids other processes wrote since the last call (None: the log was pruned past us)."""
        with self.locked() as conn:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return []
            self._data_version = version
            rows = conn.execute(
                "SELECT seq, id, writer FROM changes WHERE seq > ? ORDER BY seq", (self._last_seq,)
            ).fetchall()
            if not rows:
                return []
            # seq is contiguous (AUTOINCREMENT under BEGIN IMMEDIATE): a hole
            # right after our position means the log was pruned past us.
            gap = rows[0][0] > self._last_seq + 1
            self._last_seq = rows[-1][0]
        if gap:
            return None
        return [UUID(bytes=r[1]) for r in rows if r[2] != self._writer]

    def ping(self) -> bool:
        """True when the database answers."""
        with self.locked() as conn:
            return conn.execute("SELECT 1").fetchone()[0] == 1

    def probe_write(self) -> None:
        """Commit one tiny write (for /readyz); raise StoreFull or the error when it cannot."""
        try:
            with self.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO docs (collection, id, doc) VALUES ('_probe', 'ready', '{}')"
                )
        except StoreFull:
            self.checkpoint()  # frees the WAL's space if that is what filled the disk
            raise

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; True when it fully succeeded.

        Fails (False, logged) while the disk cannot take the pages or another
        process still reads an old snapshot; the next write or probe tries again.
        """
        with self._lock:
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("WAL checkpoint failed: %s", exc)
                return False
        return busy == 0

    def _checkpoint_if_large(self) -> None:
        """Checkpoint now when the WAL is as large as the free space left (or very large)."""
        try:
            wal = self._wal_path.stat().st_size
            disk = os.statvfs(self.path.parent)
        except OSError:
            return
        free = disk.f_bavail * disk.f_frsize
        if wal > WAL_MAX_BYTES or (wal > WAL_CHECK_MIN_BYTES and wal >= free):
            self.checkpoint()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


class _Pending:
    """One caller's batch waiting for a group commit, and its outcome."""

    __slots__ = ("writes", "results", "error", "done")

    def __init__(self, writes: list[RecordWrite]) -> None:
        self.writes = writes
        self.results: dict[UUID, AnchorRecord | int | None] | None = None
        self.error: Exception | None = None
        self.done = False


class _Locked:
    def __init__(self, lock: threading.RLock, conn: sqlite3.Connection, transaction: bool) -> None:
        self._lock = lock
        self._conn = conn
        self._transaction = transaction

    def __enter__(self) -> sqlite3.Connection:
        # A walker's deadline is never raised while the store is held (see deadlines).
        self._shield = shielded()
        self._shield.__enter__()
        self._lock.acquire()
        if self._transaction:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self._lock.release()
                self._shield.__exit__(None, None, None)
                raise
        return self._conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._transaction:
                if exc_type is None:
                    try:
                        self._conn.execute("COMMIT")
                    except sqlite3.Error as error:
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
                        if _is_full(error):
                            raise StoreFull(FULL_MESSAGE) from error
                        raise
                elif self._conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    self._conn.execute("ROLLBACK")
            if exc is not None and _is_full(exc):
                raise StoreFull(FULL_MESSAGE) from exc
        finally:
            self._lock.release()
            self._shield.__exit__(None, None, None)


def _is_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full" (SQLITE_FULL), whatever the statement."""
    return isinstance(exc, sqlite3.Error) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or "disk is full" in str(exc)
    )


def _blob(value: UUID | None) -> bytes | None:
    return value.bytes if value is not None else None


def _record(row: tuple[Any, ...], edges: tuple[UUID, ...]) -> AnchorRecord:
    anchor_id, kind, version, root, is_root, state = row
    return AnchorRecord(
        id=intern_uuid(anchor_id),
        kind=kind,
        version=version,
        root=intern_uuid(root) if root else None,
        is_root=bool(is_root),
        state=state,
        edges=edges,
    )


@hookimpl(trylast=True)
def jacscale_graph_store(app: AppContext) -> SqliteGraphStore:
    """The default store: `<data dir>/jacscale.db`."""
    return SqliteGraphStore(app.settings.data_dir / "jacscale.db")
