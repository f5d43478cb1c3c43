"""PostgreSQL as the durable graph store (L3), active when DATABASE_URL is a postgresql:// URL.

Tables (schema.py): `jacscale_anchors` (one row per anchor), `jacscale_edges`
(a node's edge ids in order: an append is one row), `jacscale_changes` (the log
other servers read to drop stale cached records, changes.py) and
`jacscale_docs` (users, API keys, ..., documents.py).

A request's batch (`apply`) is one transaction on a pooled connection:
- its first statement takes the transaction id (used to settle a lost COMMIT
  reply and by the change-log readers);
- creates: one multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING id`; an id
  missing from the answer already existed (WriteConflict);
- updates, in id order (fewer deadlocks): `UPDATE ... SET version = version + 1
  WHERE id = ? [AND version = ?] RETURNING version`: compare-and-set when the
  executor read the record, and the row lock it takes serialises edge appends
  to that node until COMMIT; then edge removals and appends (each append after
  the node's last position, an edge already there skipped by the unique index);
- deletes: the rows and their edges;
- the change-log rows of every written id, then COMMIT.
A deadlock the server breaks is a WriteConflict too: the executor replays.

A COMMIT whose reply is lost (the server died, the network broke) is settled
before answering: the store asks `pg_xact_status` of its transaction id, for
up to IN_DOUBT_SECONDS while the server comes back. Committed: the request
succeeds. Aborted, or still unknown: 503, and it really did not commit or the
client is told the outcome is unknown.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from jacscale_core.config import ConfigError
from jacscale_core.memory import intern_uuid
from jacscale_core.store import AnchorRecord, RecordWrite, WriteConflict
from jacscale_ext.kvstore import mask_uri
from jacscale_postgres.changes import ChangeReader
from jacscale_postgres.connection import (
    POOL_SIZE,
    POOL_TIMEOUT_SECONDS,
    STATEMENT_TIMEOUT_MS,
    PostgresUnavailable,
    connect_kwargs,
    open_pool,
    server_options,
    translate,
    unreachable_at_start,
)
from jacscale_postgres.documents import PostgresDocuments
from jacscale_postgres.schema import SchemaTooNew, migrate
from jacscale_postgres.settings import database_url

log = logging.getLogger("jacscale.postgres")
T = TypeVar("T")

PING_TIMEOUT_SECONDS = 2.0
IN_DOUBT_SECONDS = 10.0
PRUNE_EVERY = 500
CHANGES_KEPT = 100_000

_LOAD = """
SELECT a.id, a.kind, a.version, a.root, a.is_root, a.state,
       CASE WHEN a.kind = 'node' THEN
         ARRAY(SELECT e.edge FROM jacscale_edges e WHERE e.node = a.id ORDER BY e.pos)
       END
  FROM jacscale_anchors a WHERE a.id = ANY(%s)
"""
# New records and their edges in one statement; the edges of a record that
# already existed (a conflict: the batch rolls back) are not inserted.
_CREATE = """
WITH made AS (
  INSERT INTO jacscale_anchors (id, kind, version, root, is_root, state)
  SELECT id, kind, 1, root, is_root, state
    FROM unnest(%s::uuid[], %s::text[], %s::uuid[], %s::boolean[], %s::bytea[])
         AS t(id, kind, root, is_root, state)
  ON CONFLICT (id) DO NOTHING RETURNING id
), edges AS (
  INSERT INTO jacscale_edges (node, pos, edge)
  SELECT e.node, e.pos, e.edge
    FROM unnest(%s::uuid[], %s::bigint[], %s::uuid[]) AS e(node, pos, edge)
   WHERE e.node IN (SELECT id FROM made)
)
SELECT id FROM made
"""
_APPEND_EDGES = """
INSERT INTO jacscale_edges (node, pos, edge)
SELECT %(node)s, b.last + t.ord, t.edge
  FROM unnest(%(edges)s::uuid[]) WITH ORDINALITY AS t(edge, ord),
       (SELECT COALESCE(MAX(pos), -1) AS last FROM jacscale_edges WHERE node = %(node)s) AS b
ON CONFLICT (node, edge) DO NOTHING
"""
_LOG = "INSERT INTO jacscale_changes (id, writer) SELECT unnest(%s::uuid[]), %s RETURNING seq, id"


@dataclass
class _Pending:
    """A sent batch's cursors, read back by _check_batch."""

    creates: tuple[list[RecordWrite], psycopg.Cursor] | None = None
    updates: list[tuple[RecordWrite, psycopg.Cursor]] = field(default_factory=list)
    deletes: list[UUID] = field(default_factory=list)
    logged: psycopg.Cursor | None = None  # the change-log rows: (seq, id)
    marks: list[tuple[int, UUID]] = field(default_factory=list)  # read back before COMMIT


class _NotCommitted(Exception):
    """A connection failure before COMMIT was sent: nothing landed, safe to retry."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class PostgresGraphStore:
    """`jacscale_core.store.GraphStore` on one PostgreSQL database (thread-safe)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = POOL_SIZE,
        pool_timeout: float = POOL_TIMEOUT_SECONDS,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    ) -> None:
        """Prepare a pool for `url` (nothing connects before `prepare`)."""
        self.url = url
        self.location = mask_uri(url)
        self._options = server_options(statement_timeout_ms)
        self._pool = open_pool(
            url, name="jacscale", max_size=pool_size, timeout=pool_timeout, options=self._options
        )
        self._writer = secrets.randbits(62)
        self._changes = ChangeReader(self._writer)
        self._poll_lock = threading.Lock()
        self._prepare_lock = threading.Lock()
        self._prepared = False
        self._applies = 0
        self.docs = PostgresDocuments(self)

    # -- start-up ------------------------------------------------------------
    def prepare(self) -> None:
        """Connect, migrate the schema, open the pool and start reading the change log.

        Runs once (the first call of any method does it). Raises
        PostgresUnavailable naming the masked URL when the server does not
        answer within the connect timeout.
        """
        if self._prepared:
            return
        with self._prepare_lock:
            if self._prepared:
                return
            kwargs = connect_kwargs(self.url, "jacscale-migrate", self._options)
            try:
                with psycopg.connect(self.url, autocommit=True, **kwargs) as conn:
                    applied = migrate(conn)
                    self._changes.start(conn)
            except SchemaTooNew as exc:
                raise ConfigError(f"PostgreSQL at {self.location}: {exc}") from None
            except psycopg.Error as exc:
                raise unreachable_at_start(exc, self.url) from None
            self._pool.open(wait=False)
            self._prepared = True
            log.info(
                "graph store: PostgreSQL at %s (schema %s)",
                self.location,
                f"migrated: {applied}" if applied else "up to date",
            )

    def run(self, action: str, fn: Callable[[psycopg.Connection], T]) -> T:
        """`fn(conn)` on a pooled autocommit connection; failures become request errors.

        A connection the server dropped since it was pooled (a restart) is
        replaced and `fn` tried once more: only for work that is safe to repeat
        (every caller's is: reads, or one autocommitted statement that failed to send).
        """
        self.prepare()
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    return fn(conn)
            except psycopg.OperationalError as exc:
                if attempt == 1 and _stale_connection(exc):
                    self._pool.check()
                    continue
                raise translate(exc, self.url, action) from None
            except (PoolTimeout, psycopg.Error) as exc:
                raise translate(exc, self.url, action) from None
        raise AssertionError("unreachable")

    # -- reads ---------------------------------------------------------------
    def load(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Stored records among `ids`, nodes with their edges in order (one statement)."""
        wanted = list(ids)
        if not wanted:
            return {}

        def load(conn: psycopg.Connection) -> dict[UUID, AnchorRecord]:
            out: dict[UUID, AnchorRecord] = {}
            for row in conn.cursor(binary=True).execute(_LOAD, (wanted,)):
                rec = _record(row)
                out[rec.id] = rec
            return out

        return self.run("loading records", load)

    def root_ids(self) -> list[UUID]:
        """Ids of every stored root."""
        return self.run(
            "listing roots",
            lambda conn: [
                r[0] for r in conn.execute("SELECT id FROM jacscale_anchors WHERE is_root")
            ],
        )

    def scan_records(self, batch: int = 1000) -> Iterator[list[AnchorRecord]]:
        """Every stored record in id order, in batches (one statement each, not one snapshot)."""
        last = UUID(int=0)
        first = True
        while True:
            where = "a.id >= %s" if first else "a.id > %s"
            sql = _LOAD.replace("a.id = ANY(%s)", where) + " ORDER BY a.id LIMIT %s"

            def page(conn: psycopg.Connection, after: UUID = last, query: str = sql) -> list[Any]:
                return conn.cursor(binary=True).execute(query.encode(), (after, batch)).fetchall()

            rows = self.run("scanning records", page)
            if not rows:
                return
            records = [_record(row) for row in rows]
            yield records
            last, first = records[-1].id, False

    def poll_changes(self) -> list[UUID] | None:
        """Ids other servers committed since the last call (None: drop the whole cache)."""
        with self._poll_lock:
            return self.run("reading the change log", self._changes.poll)

    def ping(self) -> bool:
        """True when PostgreSQL answers `SELECT 1` within PING_TIMEOUT_SECONDS."""
        if not self._prepared:
            try:
                self.prepare()
            except Exception:  # noqa: BLE001 - readiness reports it; start-up raised it already
                return False
        try:
            with self._pool.connection(timeout=PING_TIMEOUT_SECONDS) as conn:
                conn.execute("SELECT 1").fetchone()
        except (PoolTimeout, psycopg.Error) as exc:
            if isinstance(exc, psycopg.OperationalError):
                self._pool.check()
            log.warning("PostgreSQL at %s: ping failed: %s", self.location, type(exc).__name__)
            return False
        return True

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    # -- writes --------------------------------------------------------------
    def apply(self, writes: list[RecordWrite]) -> dict[UUID, AnchorRecord | int | None]:
        """Apply every write in one transaction; WriteConflict means none applied."""
        self.prepare()
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    return self._apply_on(conn, writes)
            except _NotCommitted as failed:
                if attempt == 1 and _stale_connection(failed.cause):
                    self._pool.check()
                    continue
                raise translate(failed.cause, self.url, "writing records") from None
            except pg_errors.DeadlockDetected:
                raise WriteConflict(writes[0].id, None, None) from None
            except (PoolTimeout, psycopg.Error) as exc:
                raise translate(exc, self.url, "writing records") from None
        raise AssertionError("unreachable")

    def _apply_on(
        self, conn: psycopg.Connection, writes: list[RecordWrite]
    ) -> dict[UUID, AnchorRecord | int | None]:
        xid: int | None = None
        committing = False
        pending = _Pending()
        try:
            # Pipeline mode: every statement is sent at once and read back at once,
            # so a batch costs two round trips (statements, then COMMIT), not one each.
            with conn.pipeline(), conn.transaction():
                xid_cursor = conn.execute("SELECT pg_current_xact_id()::text::bigint")
                pending = self._send_batch(conn, writes)
                row = xid_cursor.fetchone()
                xid = int(row[0]) if row else None
                results = self._check_batch(conn, pending)
                committing = True
        except psycopg.OperationalError as exc:
            if not committing or xid is None:
                raise _NotCommitted(exc) from None
            if self._settle(xid, pending.marks):
                log.warning(
                    "PostgreSQL at %s: COMMIT's reply was lost, but transaction %d committed",
                    self.location,
                    xid,
                )
                return results
            raise
        self._applies += 1
        if self._applies % PRUNE_EVERY == 0:
            self._prune(conn)
        return results

    def _send_batch(self, conn: psycopg.Connection, writes: list[RecordWrite]) -> _Pending:
        """Queue one batch's statements (nothing is read yet)."""
        pending = _Pending()
        creates = [w for w in writes if w.op == "create"]
        updates = sorted((w for w in writes if w.op == "update"), key=lambda w: w.id.bytes)
        deletes = [w.id for w in writes if w.op == "delete"]
        if creates:
            nodes, positions, edges = [], [], []
            for w in creates:
                for pos, edge in enumerate(w.edges):
                    nodes.append(w.id)
                    positions.append(pos)
                    edges.append(edge)
            params = (
                [w.id for w in creates],
                [w.kind for w in creates],
                [w.root for w in creates],
                [w.is_root for w in creates],
                [w.state or b"" for w in creates],
                nodes,
                positions,
                edges,
            )
            pending.creates = (creates, conn.execute(_CREATE, params))
        for w in updates:
            expect = w.expect_version
            sets = "version = version + 1" + (", state = %(state)s" if w.state is not None else "")
            where = "id = %(id)s" + (" AND version = %(expect)s" if expect is not None else "")
            update = f"UPDATE jacscale_anchors SET {sets} WHERE {where} RETURNING version"
            cursor = conn.execute(update.encode(), {"id": w.id, "state": w.state, "expect": expect})
            pending.updates.append((w, cursor))
            # After the UPDATE: its row lock orders concurrent appends to this node.
            if w.edges_removed:
                conn.execute(
                    "DELETE FROM jacscale_edges WHERE node = %s AND edge = ANY(%s)",
                    (w.id, list(w.edges_removed)),
                )
            if w.edges_added:
                added = list(dict.fromkeys(w.edges_added))
                conn.execute(_APPEND_EDGES, {"node": w.id, "edges": added})
        if deletes:
            conn.execute("DELETE FROM jacscale_anchors WHERE id = ANY(%s)", (deletes,))
            conn.execute("DELETE FROM jacscale_edges WHERE node = ANY(%s)", (deletes,))
            pending.deletes = deletes
        ids = [w.id for w in creates] + [w.id for w in updates] + deletes
        pending.logged = conn.execute(_LOG, (ids, self._writer))
        return pending

    @staticmethod
    def _check_batch(
        conn: psycopg.Connection, pending: _Pending
    ) -> dict[UUID, AnchorRecord | int | None]:
        """Read the answers; a create that found its id, or a missed compare-and-set, conflicts.

        Raising inside the transaction rolls every statement of the batch back.
        """
        results: dict[UUID, AnchorRecord | int | None] = {}
        if pending.creates is not None:
            creates, cursor = pending.creates
            made = {r[0] for r in cursor.fetchall()}
            for w in creates:
                if w.id not in made:
                    raise WriteConflict(w.id, None, -1)
                results[w.id] = 1
        for w, cursor in pending.updates:
            row = cursor.fetchone()
            if row is None:
                found = conn.execute(
                    "SELECT version FROM jacscale_anchors WHERE id = %s", (w.id,)
                ).fetchone()
                raise WriteConflict(
                    w.id, w.expect_version, None if found is None else int(found[0])
                )
            results[w.id] = int(row[0])
        for anchor_id in pending.deletes:
            results[anchor_id] = None
        if pending.logged is not None:
            pending.marks = [(int(seq), anchor_id) for seq, anchor_id in pending.logged.fetchall()]
        return results

    def _settle(self, xid: int, marks: list[tuple[int, UUID]]) -> bool:
        """Whether transaction `xid`, which wrote change-log rows `marks`, committed.

        Asks for up to IN_DOUBT_SECONDS (the server may be restarting). Once
        `pg_xact_status` says the transaction ended, it committed exactly when its
        change-log rows (seq, our writer token, id) are there: after a crash the
        server may hand the id of a transaction that never reached the disk to a
        new one, so the status alone could report someone else's commit.
        """
        deadline = time.monotonic() + IN_DOUBT_SECONDS
        kwargs = connect_kwargs(self.url, "jacscale-settle", self._options)
        kwargs["connect_timeout"] = 2
        while True:
            try:
                with psycopg.connect(self.url, autocommit=True, **kwargs) as conn:
                    row = conn.execute(
                        "SELECT pg_xact_status(%s::text::xid8)", (str(xid),)
                    ).fetchone()
                    status = row[0] if row else None
                    if status in ("committed", "aborted"):
                        found = conn.execute(
                            "SELECT count(*) FROM jacscale_changes"
                            " WHERE writer = %s AND (seq, id) IN (SELECT * FROM unnest(%s::bigint[], %s::uuid[]))",
                            (self._writer, [m[0] for m in marks], [m[1] for m in marks]),
                        ).fetchone()
                        return bool(marks) and found is not None and found[0] == len(marks)
            except psycopg.Error as exc:
                log.debug("settling transaction %d: %s", xid, type(exc).__name__)
            if time.monotonic() > deadline:
                log.error(
                    "PostgreSQL at %s: the outcome of transaction %d is unknown", self.location, xid
                )
                return False
            time.sleep(0.2)

    def _prune(self, conn: psycopg.Connection) -> None:
        try:
            conn.execute(
                "DELETE FROM jacscale_changes"
                " WHERE seq < (SELECT MAX(seq) FROM jacscale_changes) - %s",
                (CHANGES_KEPT,),
            )
        except psycopg.Error as exc:
            log.warning("PostgreSQL at %s: pruning the change log failed: %s", self.location, exc)


def _stale_connection(exc: BaseException) -> bool:
    """True for a connection the server closed while it sat in the pool."""
    text = str(exc).lower()
    return "closed" in text or "terminat" in text or "connection" in text


def _record(row: tuple[Any, ...]) -> AnchorRecord:
    anchor_id, kind, version, root, is_root, state, edges = row
    return AnchorRecord(
        id=intern_uuid(anchor_id.bytes),
        kind=kind,
        version=int(version),
        root=root,
        is_root=bool(is_root),
        state=bytes(state),
        edges=tuple(edges) if edges else (),
    )


__all__ = ["PostgresGraphStore", "PostgresUnavailable", "database_url"]
