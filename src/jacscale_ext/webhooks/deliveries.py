"""Remembering recent deliveries, so a replayed webhook is refused on every worker.

A verified request names delivery ids (its signature, the sender's message id).
Each is reserved with an insert into the `webhook_deliveries` collection of the
app's DocumentStore (shared by all workers and, with Mongo, all pods); an id
already there and not yet expired is a replay. A reservation is released when
the walker fails, so the sender's retry goes through. Records expire after
twice the replay window (a request is accepted up to `window` seconds either
side of its timestamp) and are swept periodically. All methods block.
"""

from __future__ import annotations

import logging
import time

from jacscale_core.store import DocumentStore, DuplicateKey

log = logging.getLogger("jacscale.webhooks")

COLLECTION = "webhook_deliveries"


class Replayed(Exception):
    """The request was already delivered within the window."""


class DeliveryLog:
    """Reserve, release and sweep delivery ids (blocking)."""

    def __init__(self, docs: DocumentStore, ttl: float) -> None:
        """Records live `ttl` seconds."""
        self.docs = docs
        self.ttl = ttl

    def reserve(self, key_id: str, delivery_ids: tuple[str, ...], now: float | None = None) -> list[str]:
        """Record every id for this key, or none of them (raise Replayed)."""
        now = time.time() if now is None else now
        taken: list[str] = []
        try:
            for delivery in delivery_ids:
                doc_id = f"{key_id}:{delivery}"
                if not self._insert(doc_id, now):
                    raise Replayed(delivery)
                taken.append(doc_id)
        except BaseException:
            self.release(taken)
            raise
        return taken

    def _insert(self, doc_id: str, now: float) -> bool:
        doc = {"_id": doc_id, "expires": now + self.ttl}
        try:
            self.docs.insert(COLLECTION, doc)
            return True
        except DuplicateKey:
            pass
        existing = self.docs.get(COLLECTION, doc_id)
        if existing is not None and float(existing.get("expires", 0)) > now:
            return False
        # An expired record nobody swept yet: take it over.
        self.docs.delete(COLLECTION, doc_id)
        try:
            self.docs.insert(COLLECTION, doc)
            return True
        except DuplicateKey:
            return False  # another worker took it over first: that one is the delivery

    def release(self, doc_ids: list[str]) -> None:
        """Forget reservations (the walker failed: a retry must be accepted)."""
        for doc_id in doc_ids:
            self.docs.delete(COLLECTION, doc_id)

    def sweep(self, now: float | None = None) -> int:
        """Delete expired records; return how many."""
        now = time.time() if now is None else now
        removed = 0
        for doc in self.docs.find(COLLECTION, {}):
            if float(doc.get("expires", 0)) <= now and self.docs.delete(COLLECTION, str(doc["_id"])):
                removed += 1
        return removed
