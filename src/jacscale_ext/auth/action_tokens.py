"""One-time tokens for emailed links: password reset and email verification.

A token is 32 random bytes (url-safe text) handed to the user once. The store
keeps only its SHA-256 (the document id in the "auth_tokens" collection), with
the user, the purpose, the identity it is about and an expiry time. Consuming a
token deletes its document; the delete succeeds for one caller only, so a token
works once even when two requests race. Issuing a token for a purpose revokes
the user's earlier tokens of that purpose.

Blocking (document store calls): run from a worker thread.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from jacscale_core.store import DocumentStore

TOKENS = "auth_tokens"
MAX_TOKEN_CHARS = 128


def token_hash(token: str) -> str:
    """The stored id of a token (its SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ActionToken:
    """What a consumed token stood for."""

    user_id: str
    purpose: str
    identity: str
    expires_at: float


class ActionTokens:
    """Issue and consume single-use, expiring, hashed tokens."""

    def __init__(self, docs: DocumentStore, clock: Callable[[], float] = time.time) -> None:
        self.docs = docs
        self._clock = clock

    def issue(self, user_id: str, purpose: str, identity: str, ttl_seconds: float) -> str:
        """A new token (the only time its text exists); earlier ones of `purpose` die."""
        self.revoke(user_id, purpose)
        token = secrets.token_urlsafe(32)
        self.docs.insert(
            TOKENS,
            {
                "_id": token_hash(token),
                "user_id": user_id,
                "purpose": purpose,
                "identity": identity,
                "expires_at": self._clock() + ttl_seconds,
            },
        )
        return token

    def consume(self, token: str, purpose: str) -> ActionToken | None:
        """What `token` stands for, once; None when unknown, used, expired or of another purpose."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        key = token_hash(token)
        doc = self.docs.get(TOKENS, key)
        if doc is None or doc.get("purpose") != purpose:
            return None
        if not self.docs.delete(TOKENS, key):
            return None  # another request consumed it first
        found = ActionToken(
            user_id=str(doc.get("user_id")),
            purpose=purpose,
            identity=str(doc.get("identity") or ""),
            expires_at=float(doc.get("expires_at") or 0.0),
        )
        return found if found.expires_at > self._clock() else None

    def revoke(self, user_id: str, purpose: str) -> int:
        """Delete the user's outstanding tokens of `purpose`; how many there were."""
        gone = 0
        for doc in self.docs.find(TOKENS, {"user_id": user_id, "purpose": purpose}):
            gone += int(self.docs.delete(TOKENS, str(doc["_id"])))
        return gone
