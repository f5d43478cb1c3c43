"""MongoDB as the durable graph store (L3), active when MONGODB_URI is set.

One document per anchor in `jacscale_anchors`:
`{_id: <16 uuid bytes>, kind, version, root, is_root, state: <bytes>, edges: [<16 bytes>, ...]}`.
Users, identities and API keys live in their own collections (`documents.py`);
other processes learn what changed from `jacscale_changes` (`changes.py`).

Writes (`apply`):
- create: `insert_one`; an existing `_id` is a WriteConflict;
- update: one `find_one_and_update` filtered on `version` when the executor
  read it (compare-and-set), `$set` for the state, `$addToSet` / `$pull` for
  blind edge merges, `$inc` on the version; an update that both adds and
  removes edges is a read-modify-write guarded by the version it read;
- delete: `find_one_and_delete` (already gone is fine);
- a writer that lost a compare-and-set leases the record briefly so its replay
  wins (see "hot-record leases" below).

A batch is all-or-nothing:
- on a replica set or sharded cluster, inside one multi-document transaction
  (retried on MongoDB's transient transaction errors, bounded by a timeout);
- on a standalone mongod (no transactions), ordered per-document writes
  (creates, then updates, then deletes); when one fails, the writes already
  applied are undone in reverse order, each guarded by the version it set.
  Crash window: a process killed in the middle of such a batch leaves the
  writes made so far in place (each document stays whole and versioned, and the
  request was not acknowledged). A compensation that finds its document changed
  again by someone else is logged as an error and left alone. Use a replica set
  (even of one member) for batches that are atomic under crashes too.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from uuid import UUID

import pymongo
from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from jacscale_core.memory import merge_edges
from jacscale_core.store import AnchorRecord, RecordWrite, WriteConflict
from jacscale_ext.kvstore import mask_uri
from jacscale_mongo.changes import ChangeLog, ChangeLogFull
from jacscale_mongo.client import (
    MongoStoreError,
    MongoUnavailable,
    RateLimitedLog,
    open_client,
    short_reason,
    translate,
)
from jacscale_mongo.documents import MongoDocuments

log = logging.getLogger("jacscale.mongo")
T = TypeVar("T")

ANCHORS = "jacscale_anchors"
CHANGES = "jacscale_changes"
PROBE = "jacscale_probe"  # one document /readyz rewrites to check writes go through
LOAD_CHUNK = 1_000
PING_TIMEOUT_SECONDS = 2.0
TRANSACTION_TIMEOUT_SECONDS = 15.0
MERGE_ATTEMPTS = 20
RELOAD_ATTEMPTS = 3
LEASE_SECONDS = 0.25  # how long a hot-record lease keeps other writers off
LEASE_WAIT_SECONDS = 1.0  # how long a writer that lost waits for the current lease
LEASE_POLL_SECONDS = 0.003
_UNLEASE = {"lk": "", "lu": ""}
_OP_ORDER = {"create": 0, "update": 1, "delete": 2}

Doc = dict[str, Any]
Undo = Callable[[], None]


def _add_to_set(stored: list[bytes], added: Iterable[bytes]) -> list[bytes]:
    """What MongoDB's `$addToSet: {$each: added}` leaves in the array."""
    out = list(stored)
    for item in added:
        if item not in out:
            out.append(item)
    return out


def _record(doc: Doc) -> AnchorRecord:
    root = doc.get("root")
    return AnchorRecord(
        id=UUID(bytes=bytes(doc["_id"])),
        kind=doc["kind"],
        version=int(doc["version"]),
        root=UUID(bytes=bytes(root)) if root else None,
        is_root=bool(doc.get("is_root")),
        state=bytes(doc["state"]),
        edges=tuple(UUID(bytes=bytes(e)) for e in doc.get("edges") or ()),
    )


def _bytes_list(ids: Iterable[UUID]) -> list[bytes]:
    return [i.bytes for i in ids]


def _now_ms() -> int:
    return int(time.time() * 1000)


class PollHistory:
    """Which ids recent polls reported as changed, by poll generation (thread-safe)."""

    KEEP = 10_000

    def __init__(self) -> None:
        """Start at generation 0 with nothing reported."""
        self.generation = 0
        self._cleared = 0  # the last generation that said "drop everything"
        self._reported: OrderedDict[UUID, int] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, changed: list[UUID] | None) -> None:
        """Remember one poll's answer (None: everything changed)."""
        if changed == []:
            return
        with self._lock:
            self.generation += 1
            if changed is None:
                self._cleared = self.generation
                self._reported.clear()
                return
            for anchor_id in changed:
                self._reported[anchor_id] = self.generation
                self._reported.move_to_end(anchor_id)
            while len(self._reported) > self.KEEP:
                self._reported.popitem(last=False)
                self._cleared = max(self._cleared, self.generation - 1)

    def reported_since(self, generation: int, ids: list[UUID]) -> list[UUID]:
        """Those of `ids` a poll after `generation` reported as changed."""
        if self.generation == generation:
            return []
        with self._lock:
            if self._cleared > generation:
                return list(ids)
            return [i for i in ids if self._reported.get(i, 0) > generation]


class MongoGraphStore:
    """`jacscale_core.store.GraphStore` on one MongoDB database (thread-safe)."""

    def __init__(self, uri: str) -> None:
        """Prepare a client for `uri` (nothing connects until the first call)."""
        self.uri = uri
        self.location = mask_uri(uri)
        self._client, self.database = open_client(uri)
        db = self._client[self.database]
        self._anchors: Collection[Doc] = db[ANCHORS]
        self._writer = secrets.randbits(62)
        self._changes = ChangeLog(db[CHANGES], self._writer)
        self.docs = MongoDocuments(db, uri)
        self.transactions: bool | None = None  # known after the first contact
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._unlogged: set[UUID] = set()  # written, but the change log missed them
        self._polls = PollHistory()
        self._stale: set[UUID] = set()  # ids a WriteConflict showed we hold old copies of
        self._unlogged_lock = threading.Lock()
        self._warn = RateLimitedLog(log)

    # -- start-up ------------------------------------------------------------
    def prepare(self) -> None:
        """Connect, create indexes, learn whether transactions exist, start the change cursor.

        Runs once (the first call of any method does it). Raises MongoUnavailable
        naming the masked URI when the server does not answer in time.
        """
        if self._prepared:
            return
        with self._prepare_lock:
            if self._prepared:
                return
            try:
                hello = self._client.admin.command("hello")
                self._anchors.create_index([("is_root", 1)], name="is_root")
                self._changes.start()
            except ConnectionFailure as exc:
                raise MongoUnavailable(
                    f"MongoDB at {self.location} is unreachable: {short_reason(exc, self.uri)}"
                ) from None
            except PyMongoError as exc:
                raise MongoStoreError(
                    f"MongoDB at {self.location} refused start-up: {short_reason(exc, self.uri)}"
                ) from None
            replicated = "setName" in hello or hello.get("msg") == "isdbgrid"
            self.transactions = replicated and "logicalSessionTimeoutMinutes" in hello
            self._prepared = True
            log.info(
                "graph store: MongoDB at %s, database %s (%s)",
                self.location,
                self.database,
                "multi-document transactions"
                if self.transactions
                else "standalone: compensated batches",
            )

    def _run(self, action: str, fn: Callable[[], T]) -> T:
        self.prepare()
        try:
            return fn()
        except PyMongoError as exc:
            raise translate(exc, self.uri, action) from None

    # -- reads ---------------------------------------------------------------
    def load(self, ids: Iterable[UUID]) -> dict[UUID, AnchorRecord]:
        """Stored records among `ids`.

        A poll in another thread may report one of these ids as changed while the
        query runs; the caller would then cache what we return AFTER that poll's
        cache drop. Such ids are read again, so a load never returns a record
        older than a change a finished poll reported.
        """
        wanted = [i.bytes for i in ids]

        def fetch(keys: list[bytes]) -> dict[UUID, AnchorRecord]:
            out: dict[UUID, AnchorRecord] = {}
            for start in range(0, len(keys), LOAD_CHUNK):
                chunk = keys[start : start + LOAD_CHUNK]
                query = {"_id": chunk[0]} if len(chunk) == 1 else {"_id": {"$in": chunk}}
                for doc in self._anchors.find(query):
                    rec = _record(doc)
                    out[rec.id] = rec
            return out

        if not wanted:
            return {}
        started = self._polls.generation
        found = self._run("loading records", functools.partial(fetch, wanted))
        for _ in range(RELOAD_ATTEMPTS):
            again = self._polls.reported_since(started, [UUID(bytes=k) for k in wanted])
            if not again:
                break
            started = self._polls.generation
            fresh = self._run("loading records", functools.partial(fetch, [i.bytes for i in again]))
            for anchor_id in again:
                found.pop(anchor_id, None)
            found.update(fresh)
        return found

    def scan_records(self, batch: int = 1000) -> Iterator[list[AnchorRecord]]:
        """Every stored record in `_id` order, in batches (not one snapshot)."""
        last: bytes | None = None
        while True:
            where: Doc = {} if last is None else {"_id": {"$gt": last}}

            def page(where: Doc = where) -> list[Doc]:
                return list(self._anchors.find(where).sort("_id", 1).limit(batch))

            docs = self._run("scanning records", page)
            if not docs:
                return
            yield [_record(d) for d in docs]
            last = bytes(docs[-1]["_id"])

    def root_ids(self) -> list[UUID]:
        """Ids of every stored root."""
        return self._run(
            "listing roots",
            lambda: [
                UUID(bytes=bytes(d["_id"]))
                for d in self._anchors.find({"is_root": True}, {"_id": 1})
            ],
        )

    def poll_changes(self) -> list[UUID] | None:
        """Ids other processes wrote since the last call (None: drop the whole cache)."""
        self._retry_unlogged()
        changed = self._run("reading the change log", self._changes.poll)
        if self._stale:
            with self._unlogged_lock:
                stale = list(self._stale)
                self._stale.clear()
            if changed is not None:
                changed.extend(stale)
        self._polls.record(changed)
        return changed

    def ping(self) -> bool:
        """True when MongoDB answers a ping within PING_TIMEOUT_SECONDS (or server selection's)."""
        limit = min(PING_TIMEOUT_SECONDS, self._client.options.server_selection_timeout)
        try:
            with pymongo.timeout(limit):
                self._client.admin.command("ping")
        except PyMongoError as exc:
            self._warn.warning(
                "ping", "MongoDB at %s: ping failed: %s", self.location, short_reason(exc, self.uri)
            )
            return False
        return True

    def probe_write(self) -> None:
        """Upsert one tiny document (for /readyz): raises while MongoDB cannot take writes."""
        limit = min(PING_TIMEOUT_SECONDS, self._client.options.server_selection_timeout)

        def write() -> None:
            with pymongo.timeout(limit):
                self._anchors.database[PROBE].update_one(
                    {"_id": "ready"}, {"$set": {"at": _now_ms(), "w": self._writer}}, upsert=True
                )

        self._run("probing a write", write)

    def health(self) -> tuple[bool, str]:
        """Readiness without I/O: False while written ids wait to reach the change log."""
        with self._unlogged_lock:
            pending = len(self._unlogged)
        if pending:
            return (
                False,
                f"{pending} written ids not yet in the change log (other workers may serve old copies)",
            )
        mode = {None: "not connected yet", True: "transactions", False: "standalone"}[
            self.transactions
        ]
        return True, f"{self.location} ({mode})"

    def close(self) -> None:
        """Close the client (its pools and monitor threads)."""
        self._client.close()

    # -- writes --------------------------------------------------------------
    def apply(self, writes: list[RecordWrite]) -> dict[UUID, AnchorRecord | None]:
        """Apply every write atomically; WriteConflict (or any error) leaves none of it applied."""
        self.prepare()
        ordered = sorted(writes, key=lambda w: _OP_ORDER[w.op])
        touched: list[UUID] = []
        try:
            if self.transactions:
                results = self._apply_in_transaction(ordered, touched)
            else:
                results = self._apply_compensated(ordered, touched)
        except WriteConflict as conflict:
            self._log_changes(touched)
            if conflict.actual is not None and conflict.actual >= 0:
                self._take_lease(conflict.anchor_id)
            with self._unlogged_lock:
                # Our caller's copy is older than the store's: report it at the next
                # poll, so the replay reloads it instead of failing on the same copy
                # while the other writer's change-log entry is still on its way.
                self._stale.add(conflict.anchor_id)
            raise
        except PyMongoError as exc:
            self._log_changes(touched)
            raise translate(exc, self.uri, "writing records") from None
        except BaseException:
            self._log_changes(touched)
            raise
        # The records are written: the answer is theirs. A change-log failure never
        # turns a committed write into an error (a client retrying it would write it
        # twice); the ids are published at the next poll instead, and /readyz is
        # false until they are.
        self._log_changes(list(results))
        return results

    def _apply_in_transaction(
        self, ordered: list[RecordWrite], touched: list[UUID]
    ) -> dict[UUID, AnchorRecord | None]:
        results: dict[UUID, AnchorRecord | None] = {}

        def body(session: ClientSession) -> None:
            results.clear()
            for w in ordered:
                results[w.id] = self._write(w, session)[0]

        with pymongo.timeout(TRANSACTION_TIMEOUT_SECONDS), self._client.start_session() as session:
            session.with_transaction(body)
        return results

    def _apply_compensated(
        self, ordered: list[RecordWrite], touched: list[UUID]
    ) -> dict[UUID, AnchorRecord | None]:
        results: dict[UUID, AnchorRecord | None] = {}
        undo: list[tuple[UUID, Undo]] = []
        current: UUID | None = None
        try:
            for w in ordered:
                current = w.id
                record, reverse = self._write(w, None)
                touched.append(w.id)  # applied: other workers must hear of it, even if undone
                results[w.id] = record
                if reverse is not None:
                    undo.append((w.id, reverse))
        except BaseException as exc:
            if current is not None and not isinstance(exc, WriteConflict):
                touched.append(current)  # a lost reply: it may have been applied
            self._compensate(undo)
            raise
        return results

    def _compensate(self, undo: list[tuple[UUID, Undo]]) -> None:
        for anchor_id, reverse in reversed(undo):
            try:
                reverse()
            except (PyMongoError, WriteConflict) as exc:
                log.error(
                    "MongoDB at %s: could not undo the write to %s of a failed batch: %s",
                    self.location,
                    anchor_id.hex,
                    exc if isinstance(exc, WriteConflict) else short_reason(exc, self.uri),
                )

    # One write; returns the new record and how to undo it (None: nothing to undo).
    def _write(
        self, w: RecordWrite, session: ClientSession | None
    ) -> tuple[AnchorRecord | None, Undo | None]:
        if w.op == "create":
            return self._create(w, session)
        if w.op == "update":
            if w.edges_added and w.edges_removed:
                return self._read_modify_write(w, session)
            return self._update(w, session)
        return self._delete(w, session)

    def _create(self, w: RecordWrite, session: ClientSession | None) -> tuple[AnchorRecord, Undo]:
        doc: Doc = {
            "_id": w.id.bytes,
            "kind": w.kind,
            "version": 1,
            "root": w.root.bytes if w.root else None,
            "is_root": w.is_root,
            "state": w.state or b"",
            "edges": _bytes_list(w.edges),
        }
        try:
            self._anchors.insert_one(doc, session=session)
        except DuplicateKeyError:
            raise WriteConflict(w.id, None, -1) from None
        key = w.id.bytes

        def undo() -> None:
            # The batch failed: a record it created must not outlive it.
            self._anchors.delete_one({"_id": key})

        return _record(doc), undo

    def _update(self, w: RecordWrite, session: ClientSession | None) -> tuple[AnchorRecord, Undo]:
        key = w.id.bytes
        query: Doc = {"_id": key, **self._unleased()}
        if w.expect_version is not None:
            query["version"] = w.expect_version
        change: Doc = {"$inc": {"version": 1}, "$unset": _UNLEASE}
        if w.state is not None:
            change["$set"] = {"state": w.state}
        added, removed = _bytes_list(w.edges_added), _bytes_list(w.edges_removed)
        if added:
            change["$addToSet"] = {"edges": {"$each": added}}
        if removed:
            change["$pull"] = {"edges": {"$in": removed}}
        before = self._anchors.find_one_and_update(
            query, change, return_document=ReturnDocument.BEFORE, session=session
        )
        if before is None:
            raise self._conflict(w, session)
        after = dict(before)
        after["version"] = int(before["version"]) + 1
        if w.state is not None:
            after["state"] = w.state
        edges = [bytes(e) for e in before.get("edges") or ()]
        if added:
            edges = _add_to_set(edges, added)
        if removed:
            gone = set(removed)
            edges = [e for e in edges if e not in gone]
        after["edges"] = edges
        new_version = after["version"]
        old_edges = [bytes(e) for e in before.get("edges") or ()]

        if w.state is not None:
            undo = self._restorer(w.id, new_version, before)
        else:
            put_back = [e for e in old_edges if e not in edges]
            take_out = [e for e in edges if e not in old_edges]

            def undo() -> None:
                # A blind merge is undone by the inverse merge (others may have merged too).
                if take_out:
                    self._anchors.update_one(
                        {"_id": key},
                        {"$pull": {"edges": {"$in": take_out}}, "$inc": {"version": 1}},
                    )
                if put_back:
                    self._anchors.update_one(
                        {"_id": key},
                        {"$addToSet": {"edges": {"$each": put_back}}, "$inc": {"version": 1}},
                    )

        return _record(after), undo

    def _read_modify_write(
        self, w: RecordWrite, session: ClientSession | None
    ) -> tuple[AnchorRecord, Undo]:
        key = w.id.bytes
        for _ in range(MERGE_ATTEMPTS):
            current = self._anchors.find_one({"_id": key}, session=session)
            if current is None:
                raise WriteConflict(w.id, w.expect_version, None)
            version = int(current["version"])
            if w.expect_version is not None and version != w.expect_version:
                raise WriteConflict(w.id, w.expect_version, version)
            if self._leased_to_another(current):
                raise WriteConflict(w.id, w.expect_version, version)
            before = _record(current)
            edges = merge_edges(before.edges, w.edges_added, w.edges_removed)
            fields: Doc = {"edges": _bytes_list(edges), "version": version + 1}
            if w.state is not None:
                fields["state"] = w.state
            done = self._anchors.update_one(
                {"_id": key, "version": version, **self._unleased()},
                {"$set": fields, "$unset": _UNLEASE},
                session=session,
            )
            if done.matched_count == 1:
                after = dict(current) | fields
                return _record(after), self._restorer(w.id, version + 1, current)
            if w.expect_version is not None:
                raise WriteConflict(w.id, w.expect_version, None)
        raise WriteConflict(w.id, None, None)  # a very hot node: the executor replays

    def _restorer(self, anchor_id: UUID, version_set: int, previous: Doc) -> Undo:
        """Undo for a state write: put `previous` back, only if nobody wrote after us."""
        key = anchor_id.bytes
        state = previous["state"]
        edges = list(previous.get("edges") or ())

        def undo() -> None:
            restored = self._anchors.update_one(
                {"_id": key, "version": version_set},
                {"$set": {"state": state, "edges": edges, "version": version_set + 1}},
            )
            if restored.matched_count == 0:
                raise WriteConflict(anchor_id, version_set, None)

        return undo

    def _delete(self, w: RecordWrite, session: ClientSession | None) -> tuple[None, Undo | None]:
        gone = self._anchors.find_one_and_delete({"_id": w.id.bytes}, session=session)
        if gone is None:
            return None, None
        restore = dict(gone)
        restore["version"] = int(gone["version"]) + 1

        def undo() -> None:
            try:
                self._anchors.insert_one(restore)
            except DuplicateKeyError:
                log.error("MongoDB: %s was recreated before its delete could be undone", w.id.hex)

        return None, undo

    # -- hot-record leases ----------------------------------------------------
    # A writer that lost a compare-and-set takes a short lease on the record
    # (fields `lk` owner, `lu` expiry in ms) before its replay: while it holds it,
    # every other writer's update filter fails, so the replay reads a record
    # nobody else can change and wins; its write removes the lease. Without
    # this, a busy record shared by several workers can make one of them lose
    # every replay (the executor answers 409). Leases never decide correctness
    # (the version check does): an expired or unreleased one only costs time.

    def _unleased(self) -> Doc:
        """Filter: nobody else holds a live lease on the record."""
        return {
            "$or": [{"lk": {"$exists": False}}, {"lk": self._writer}, {"lu": {"$lt": _now_ms()}}]
        }

    def _leased_to_another(self, doc: Doc) -> bool:
        owner = doc.get("lk")
        return owner is not None and owner != self._writer and int(doc.get("lu") or 0) >= _now_ms()

    def _take_lease(self, anchor_id: UUID) -> bool:
        """Wait (at most LEASE_WAIT_SECONDS) for a lease on a record we lost; True if we got it."""
        key = anchor_id.bytes
        deadline = time.monotonic() + LEASE_WAIT_SECONDS
        checked = False
        while True:
            try:
                taken = self._anchors.update_one(
                    {"_id": key, **self._unleased()},
                    {"$set": {"lk": self._writer, "lu": _now_ms() + int(LEASE_SECONDS * 1000)}},
                )
            except PyMongoError:
                return False  # the replay will find out what is wrong
            if taken.matched_count or time.monotonic() > deadline:
                return bool(taken.matched_count)
            if not checked:
                if self._anchors.count_documents({"_id": key}, limit=1) == 0:
                    return False  # deleted: nothing to wait for
                checked = True
            time.sleep(LEASE_POLL_SECONDS)

    def _conflict(self, w: RecordWrite, session: ClientSession | None) -> WriteConflict:
        current = self._anchors.find_one({"_id": w.id.bytes}, {"version": 1}, session=session)
        actual = int(current["version"]) if current else None
        return WriteConflict(w.id, w.expect_version, actual)

    # -- the change log ------------------------------------------------------
    def _log_changes(self, ids: list[UUID]) -> None:
        """Tell other processes `ids` changed; on failure keep them for the next poll.

        Never raised: the records are written whatever happens here. Until the ids
        are logged /readyz is false (other workers may serve old copies meanwhile).
        """
        if not ids:
            return
        with self._unlogged_lock:
            pending = list(self._unlogged)
            self._unlogged.clear()
        try:
            self._changes.append([*pending, *ids])
        except (PyMongoError, ChangeLogFull) as exc:
            with self._unlogged_lock:
                self._unlogged.update(pending)
                self._unlogged.update(ids)
            self._warn.warning(
                "changelog",
                "MongoDB at %s: recording changed ids failed (will retry): %s",
                self.location,
                short_reason(exc, self.uri),
            )

    def _retry_unlogged(self) -> None:
        """Log ids an earlier failure kept back; while MongoDB still refuses, keep them.

        Not raised: this process's own copies are current, and failing its
        requests would not publish the ids any sooner (/readyz is false meanwhile).
        """
        if not self._unlogged:
            return
        self.prepare()
        with self._unlogged_lock:
            pending = list(self._unlogged)
            self._unlogged.clear()
        if not pending:
            return
        try:
            self._changes.append(pending)
        except (PyMongoError, ChangeLogFull) as exc:
            with self._unlogged_lock:
                self._unlogged.update(pending)
            self._warn.warning(
                "changelog",
                "MongoDB at %s: recording changed ids failed (will retry): %s",
                self.location,
                short_reason(exc, self.uri),
            )
