"""API keys for webhooks: durable, hashed, revocable, optionally scoped to walkers.

A key reads `jsk_<api_key_id>_<64 hex digits>`: the id (not secret) finds the
stored document in one lookup, and only the SHA-256 of the whole key is stored
(the key has 256 random bits, so a fast hash is enough). The key itself is
returned once, at creation.

A key may carry a signing secret (`whsec_<base64>`, generated, or supplied by
the caller when a service such as Stripe generates its own) for the stronger
signature schemes. Signing secrets must be readable to verify HMACs, so they
are stored sealed with AES-GCM under a key derived from the server-wide
`WEBHOOK_SECRET`; without that secret, keys have no signing secret.

Documents live in the `api_keys` collection of the app's DocumentStore; every
method here blocks (call from a worker thread).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jacscale_core.store import DocumentStore

COLLECTION = "api_keys"
KEY_PREFIX = "jsk_"
KEY_RE = re.compile(r"^jsk_([0-9a-f]{32})_([0-9a-f]{64})$")
ID_RE = re.compile(r"^[0-9a-f]{32}$")
SIGNING_PREFIX = "whsec_"


def now_utc() -> datetime:
    """The current time, to the second (what keys record)."""
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    """`2024-01-15T10:30:00Z`, the reference document's timestamp format."""
    return moment.isoformat().replace("+00:00", "Z")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key(key: str) -> str | None:
    """The api_key_id inside a well-formed key, else None."""
    match = KEY_RE.match(key.strip())
    return match.group(1) if match else None


def new_signing_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form `whsec_<base64 of 32 bytes>`."""
    return SIGNING_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    """Seals signing secrets at rest with AES-GCM; the key is derived from WEBHOOK_SECRET."""

    def __init__(self, server_secret: str) -> None:
        """Derive the sealing key (HMAC-SHA256 of a fixed label)."""
        key = hmac.new(
            server_secret.encode(), b"jacscale webhook signing secrets v1", hashlib.sha256
        ).digest()
        self._aead = AESGCM(key)

    def seal(self, secret: str, key_id: str) -> str:
        """`v1:<base64(nonce + ciphertext)>`, bound to the key id."""
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), key_id.encode())
        return "v1:" + base64.b64encode(nonce + sealed).decode()

    def open(self, blob: str, key_id: str) -> str:
        """The secret sealed in `blob`; ValueError if it cannot be read (other WEBHOOK_SECRET)."""
        if not blob.startswith("v1:"):
            raise ValueError("unknown sealing format")
        raw = base64.b64decode(blob[3:])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], key_id.encode()).decode()
        except InvalidTag:
            raise ValueError("sealed with another WEBHOOK_SECRET") from None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never the key itself)."""

    id: str
    user_id: str
    root_id: str
    name: str
    key_hash: str
    created_at: str
    expires_at: str | None
    expires_ts: float | None
    revoked: bool
    allowed_walkers: tuple[str, ...]
    signing_secret: str | None  # sealed

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ApiKey:
        """Read a stored document."""
        return cls(
            id=str(doc["_id"]),
            user_id=str(doc["user_id"]),
            root_id=str(doc["root_id"]),
            name=str(doc.get("name", "")),
            key_hash=str(doc["key_hash"]),
            created_at=str(doc["created_at"]),
            expires_at=doc.get("expires_at"),
            expires_ts=doc.get("expires_ts"),
            revoked=bool(doc.get("revoked", False)),
            allowed_walkers=tuple(doc.get("allowed_walkers") or ()),
            signing_secret=doc.get("signing_secret"),
        )

    def expired(self, now: float) -> bool:
        """True once the expiry has passed (permanent keys never expire)."""
        return self.expires_ts is not None and now >= self.expires_ts

    def matches(self, key: str) -> bool:
        """Constant-time check of a presented key against the stored hash."""
        return hmac.compare_digest(self.key_hash, hash_key(key))

    def listing(self, now: float) -> dict[str, Any]:
        """The `GET /api-key/list` item."""
        item: dict[str, Any] = {
            "api_key_id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "active": not self.revoked and not self.expired(now),
        }
        if self.allowed_walkers:
            item["allowed_walkers"] = list(self.allowed_walkers)
        item["has_signing_secret"] = self.signing_secret is not None
        return item


@dataclass(frozen=True, slots=True)
class NewKey:
    """What creation returns: the stored key, the key itself and its plain signing secret."""

    key: ApiKey
    api_key: str
    signing_secret: str | None


class TooManyKeys(Exception):
    """The user already holds the maximum number of active keys."""


class ApiKeyStore:
    """Create, list, find and revoke keys in a DocumentStore (blocking methods)."""

    def __init__(self, docs: DocumentStore, box: SecretBox | None, max_per_user: int) -> None:
        """Keys live in `docs`; `box` seals signing secrets (None: keys get none)."""
        self.docs = docs
        self.box = box
        self.max_per_user = max_per_user

    def create(
        self,
        *,
        user_id: str,
        root_id: str,
        name: str,
        expiry_days: int,
        allowed_walkers: list[str],
        signing_secret: str | None,
    ) -> NewKey:
        """Store a new key; `expiry_days` 0 makes it permanent. Raises TooManyKeys."""
        active = [
            d for d in self.docs.find(COLLECTION, {"user_id": user_id}) if not d.get("revoked")
        ]
        if len(active) >= self.max_per_user:
            raise TooManyKeys(f"you already have {len(active)} active API keys")
        key_id = secrets.token_hex(16)
        api_key = f"{KEY_PREFIX}{key_id}_{secrets.token_hex(32)}"
        created = now_utc()
        expires = created + timedelta(days=expiry_days) if expiry_days > 0 else None
        plain = None
        sealed = None
        if self.box is not None:
            plain = signing_secret or new_signing_secret()
            sealed = self.box.seal(plain, key_id)
        doc = {
            "_id": key_id,
            "user_id": user_id,
            "root_id": root_id,
            "name": name,
            "key_hash": hash_key(api_key),
            "created_at": iso(created),
            "expires_at": iso(expires) if expires else None,
            "expires_ts": expires.timestamp() if expires else None,
            "revoked": False,
            "allowed_walkers": allowed_walkers,
            "signing_secret": sealed,
        }
        self.docs.insert(COLLECTION, doc)
        return NewKey(ApiKey.from_doc(doc), api_key, plain if signing_secret is None else None)

    def get(self, key_id: str) -> ApiKey | None:
        """The stored key with this id (revoked and expired ones included)."""
        if not ID_RE.match(key_id):
            return None
        doc = self.docs.get(COLLECTION, key_id)
        return ApiKey.from_doc(doc) if doc else None

    def list_for(self, user_id: str) -> list[ApiKey]:
        """The user's keys that are not revoked, oldest first."""
        docs = self.docs.find(COLLECTION, {"user_id": user_id})
        keys = [ApiKey.from_doc(d) for d in docs if not d.get("revoked")]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    def revoke(self, key_id: str) -> bool:
        """Mark the key revoked (it stops working at once, on every worker)."""
        return self.docs.update(COLLECTION, key_id, {"revoked": True, "revoked_at": iso(now_utc())})

    def revoke_all(self, user_id: str) -> int:
        """Revoke every key of a user (when the account is deleted); return how many."""
        keys = self.list_for(user_id)
        for key in keys:
            self.revoke(key.id)
        return len(keys)

    def signing_secrets(self, key: ApiKey) -> tuple[str, ...]:
        """The key's plain signing secrets (empty when it has none). ValueError if unreadable."""
        if key.signing_secret is None or self.box is None:
            return ()
        return (self.box.open(key.signing_secret, key.id),)
