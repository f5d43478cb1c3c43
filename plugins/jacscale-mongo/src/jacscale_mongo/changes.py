"""The change log other processes poll to drop stale records from their caches.

`jacscale_changes` holds `{_id: seq, w: writer token, ids: [16-byte ids]}`
with seq = 1, 2, 3, ... and no holes. A writer, AFTER its data writes, inserts
its entry at the newest seq it
knows plus one; the unique `_id` makes a collision fail with a duplicate key,
after which it reads the newest seq and tries the next one. A seq is only
ever inserted once the one before it exists, so the log has no holes and a
reader never sees seq n+1 without n.

Readers, at the start of every request: one indexed query for the entries
after their cursor. A gap right after the cursor means the entries were pruned
(the reader was idle for KEEP_ENTRIES writes) and a reader more than READ_LIMIT
entries behind does not read them all: both drop their whole cache instead
(poll returns None).

When the insert fails the write is still acknowledged (it landed; an error
would make clients write it twice): the store keeps the ids and logs them at
its next poll, and /readyz is false until then; other processes may serve
their cached copies of those records meanwhile.

Crash window: a process that dies after its data writes and before its entry
leaves no entry; that write was never acknowledged, and other processes keep
their cached copy of those records until their next write to them conflicts
(the store then reports the id at the next poll) or the copy is evicted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

log = logging.getLogger("jacscale.mongo")

MAX_IDS_PER_ENTRY = 20_000  # bigger batches are logged as "drop everything"
READ_LIMIT = 1_000  # entries per poll; a reader further behind drops its cache
KEEP_ENTRIES = 100_000
PRUNE_EVERY = 500
FRESH_SECONDS = 1.0  # how long the newest seq we saw is trusted as a starting guess
INSERT_ATTEMPTS = 100


class ChangeLogFull(Exception):
    """No free sequence number after INSERT_ATTEMPTS tries (extreme write contention)."""


class ChangeLog:
    """Append to and poll one store's change log (thread-safe)."""

    def __init__(self, changes: Collection[dict[str, Any]], writer: int) -> None:
        """Log into `changes`; `writer` marks this process's own entries."""
        self._changes = changes
        self._writer = writer
        self._lock = threading.Lock()
        self._cursor = 0  # every entry <= cursor has been reported
        self._newest = 0  # the newest seq this process knows exists
        self._newest_at = 0.0
        self._appends = 0

    def _note(self, seq: int) -> None:
        with self._lock:
            if seq >= self._newest:
                self._newest = seq
                self._newest_at = time.monotonic()

    def _read_newest(self, at_least: int = 0) -> int:
        query = {"_id": {"$gte": at_least}} if at_least else {}
        doc = self._changes.find_one(query, {"_id": 1}, sort=[("_id", DESCENDING)])
        newest = int(doc["_id"]) if doc else 0
        self._note(newest)
        return newest

    # -- writing ---------------------------------------------------------------
    def start(self) -> None:
        """Begin reading at the newest entry (nothing older can be in our empty cache)."""
        newest = self._read_newest()
        with self._lock:
            self._cursor = newest

    def append(self, ids: Iterable[UUID]) -> int:
        """Log that `ids` changed (call after the data writes); return the entry's seq."""
        id_list = list(dict.fromkeys(ids))
        entry: dict[str, Any] = {"w": self._writer}
        if len(id_list) > MAX_IDS_PER_ENTRY:
            entry["all"] = True
        else:
            entry["ids"] = [i.bytes for i in id_list]
        with self._lock:
            fresh = time.monotonic() - self._newest_at < FRESH_SECONDS
            newest = self._newest
        if not fresh:
            # An old guess could fall below pruned entries: ask for the newest.
            newest = self._read_newest()
        for _ in range(INSERT_ATTEMPTS):
            seq = newest + 1
            try:
                self._changes.insert_one({"_id": seq, **entry})
            except DuplicateKeyError:
                newest = self._read_newest(at_least=seq)
                continue
            self._note(seq)
            self._appends += 1
            if self._appends % PRUNE_EVERY == 0:
                self._changes.delete_many({"_id": {"$lt": seq - KEEP_ENTRIES}})
            return seq
        raise ChangeLogFull(f"change log: no free sequence number after {INSERT_ATTEMPTS} tries")

    # -- reading ---------------------------------------------------------------
    def poll(self) -> list[UUID] | None:
        """Ids other writers changed since the last poll; None: drop the whole cache."""
        with self._lock:
            cursor = self._cursor
        docs = list(
            self._changes.find({"_id": {"$gt": cursor}}, {"_id": 1, "w": 1, "ids": 1, "all": 1})
            .sort("_id", ASCENDING)
            .limit(READ_LIMIT + 1)
        )
        if not docs:
            self._note(cursor)  # nothing after it: the cursor is the newest entry
            return []
        newest = int(docs[-1]["_id"])
        self._note(newest)
        if len(docs) > READ_LIMIT:
            newest = self._read_newest(at_least=newest)
            with self._lock:
                self._cursor = max(self._cursor, newest)
            return None
        changed: list[UUID] = []
        drop_all = int(docs[0]["_id"]) != cursor + 1  # a gap: entries pruned before we read them
        with self._lock:
            # A thread polling at the same time reports the same entries too: each
            # caller must drop them from the cache before it reads.
            self._cursor = max(self._cursor, newest)
        for doc in docs:
            if doc.get("w") == self._writer:
                continue
            if doc.get("all"):
                drop_all = True
            else:
                changed.extend(UUID(bytes=bytes(b)) for b in doc.get("ids") or ())
        return None if drop_all else changed
