"""User records in the app's document store (blocking: call from worker threads).

Two collections:
- "users": one document per user, `_id` = user id (32 hex chars);
- "identities": one document per way to find a user, `_id` = "<kind>:<value>"
  ("email:bob@example.com", "username:bob", "sso:google:<subject>"), pointing at
  the user id. The document id is unique in every store, so two concurrent
  registrations of the same email cannot both succeed: the second insert fails.

Registration claims the identities first, then the caller creates the user's
root and writes the user document. If the process dies in between, a claim
points at a user that does not exist; such a claim older than
`STALE_CLAIM_SECONDS` is taken over by the next registration.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jacscale_core.store import DocumentStore, DuplicateKey

USERS = "users"
IDENTITIES = "identities"
STALE_CLAIM_SECONDS = 300.0


class IdentityTaken(Exception):
    """An identity (email, username, SSO subject) already belongs to a user."""

    def __init__(self, key: str) -> None:
        super().__init__(f"identity {key.split(':', 1)[0]} is taken")
        self.key = key

    @property
    def kind(self) -> str:
        """The identity kind: "email", "username" or "sso"."""
        return self.key.split(":", 1)[0]


def identity_key(kind: str, value: str) -> str:
    """The identity document id: kind plus the case-folded value."""
    return f"{kind}:{value.strip().lower()}"


def new_user_id() -> str:
    """A fresh random user id (32 hex chars)."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class UserRecord:
    """One user as stored. `password_hash` is None for SSO-only accounts.

    `session_gen` grows on every password change; tokens carry the value they
    were issued under and stop verifying once it moves on. `role` is "user" or
    "admin" (only the record grants admin, never a token claim); a `disabled`
    user cannot log in.
    """

    user_id: str
    root_id: str
    email: str | None = None
    username: str | None = None
    password_hash: str | None = None
    created_at: float = 0.0
    password_changed_at: float = 0.0
    session_gen: int = 0
    email_verified: bool = False
    sso: dict[str, str] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    role: str = "user"
    disabled: bool = False

    def identity_keys(self) -> list[str]:
        """Every identity document id this user owns."""
        keys = []
        if self.email:
            keys.append(identity_key("email", self.email))
        if self.username:
            keys.append(identity_key("username", self.username))
        keys.extend(f"sso:{platform}:{subject}" for platform, subject in self.sso.items())
        return keys

    def to_doc(self) -> dict[str, Any]:
        """The stored document."""
        return {
            "_id": self.user_id,
            "root_id": self.root_id,
            "email": self.email,
            "username": self.username,
            "password_hash": self.password_hash,
            "created_at": self.created_at,
            "password_changed_at": self.password_changed_at,
            "session_gen": self.session_gen,
            "email_verified": self.email_verified,
            "sso": dict(self.sso),
            "profile": dict(self.profile),
            "role": self.role,
            "disabled": self.disabled,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> UserRecord:
        """Rebuild a record from its stored document."""
        return cls(
            user_id=str(doc["_id"]),
            root_id=str(doc["root_id"]),
            email=doc.get("email"),
            username=doc.get("username"),
            password_hash=doc.get("password_hash"),
            created_at=float(doc.get("created_at") or 0.0),
            password_changed_at=float(doc.get("password_changed_at") or 0.0),
            session_gen=int(doc.get("session_gen") or 0),
            email_verified=bool(doc.get("email_verified")),
            sso=dict(doc.get("sso") or {}),
            profile=dict(doc.get("profile") or {}),
            role=str(doc.get("role") or "user"),
            disabled=bool(doc.get("disabled")),
        )

    def public(self) -> dict[str, Any]:
        """What `GET /user/me` shows (never the password hash)."""
        out: dict[str, Any] = {"user_id": self.user_id, "root_id": self.root_id}
        if self.email:
            out["email"] = self.email
            out["email_verified"] = self.email_verified
        if self.username:
            out["username"] = self.username
        out["created_at"] = _iso(self.created_at)
        out["sso"] = sorted(self.sso)
        if self.profile:
            out["profile"] = dict(self.profile)
        if self.role != "user":
            out["role"] = self.role
        return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class UserStore:
    """Read and write user records. Every method blocks: run it in a worker thread."""

    def __init__(self, docs: DocumentStore) -> None:
        self.docs = docs

    # -- identities ---------------------------------------------------------

    def claim_identities(self, user_id: str, keys: Iterable[str]) -> None:
        """Reserve each identity for `user_id`, all or none; raise IdentityTaken on a clash."""
        claimed: list[str] = []
        try:
            for key in keys:
                self._claim(user_id, key)
                claimed.append(key)
        except IdentityTaken:
            self.release_identities(user_id, claimed)
            raise

    def _claim(self, user_id: str, key: str) -> None:
        doc = {"_id": key, "user_id": user_id, "created_at": time.time()}
        try:
            self.docs.insert(IDENTITIES, doc)
            return
        except DuplicateKey:
            pass
        existing = self.docs.get(IDENTITIES, key)
        if existing is None:  # deleted between our insert and get: try once more
            try:
                self.docs.insert(IDENTITIES, doc)
                return
            except DuplicateKey as exc:
                raise IdentityTaken(key) from exc
        if existing.get("user_id") == user_id:
            return
        stale = time.time() - float(existing.get("created_at") or 0) > STALE_CLAIM_SECONDS
        if stale and self.docs.get(USERS, str(existing.get("user_id"))) is None:
            self.docs.delete(IDENTITIES, key)
            try:
                self.docs.insert(IDENTITIES, doc)
                return
            except DuplicateKey as exc:
                raise IdentityTaken(key) from exc
        raise IdentityTaken(key)

    def release_identities(self, user_id: str, keys: Iterable[str]) -> None:
        """Delete identity claims that belong to `user_id` (others are left alone)."""
        for key in keys:
            existing = self.docs.get(IDENTITIES, key)
            if existing is not None and existing.get("user_id") == user_id:
                self.docs.delete(IDENTITIES, key)

    def user_id_for(self, key: str) -> str | None:
        """The user id an identity points at, or None."""
        existing = self.docs.get(IDENTITIES, key)
        return None if existing is None else str(existing.get("user_id"))

    # -- users --------------------------------------------------------------

    def insert(self, record: UserRecord) -> None:
        """Store a new user (its identities must already be claimed)."""
        self.docs.insert(USERS, record.to_doc())

    def get(self, user_id: str) -> UserRecord | None:
        """The user with this id, or None."""
        doc = self.docs.get(USERS, user_id)
        return None if doc is None else UserRecord.from_doc(doc)

    def find(self, key: str) -> UserRecord | None:
        """The user owning identity `key` ("email:..."), or None."""
        user_id = self.user_id_for(key)
        return None if user_id is None else self.get(user_id)

    def set_password(self, user_id: str, password_hash: str, *, new_session: bool) -> UserRecord:
        """Store a new hash; with `new_session`, also end every earlier token."""
        record = self.get(user_id)
        if record is None:
            raise KeyError(user_id)
        record.password_hash = password_hash
        fields: dict[str, Any] = {"password_hash": password_hash}
        if new_session:
            record.session_gen += 1
            record.password_changed_at = time.time()
            fields["session_gen"] = record.session_gen
            fields["password_changed_at"] = record.password_changed_at
        if not self.docs.update(USERS, user_id, fields):
            raise KeyError(user_id)
        return record

    def update(self, user_id: str, fields: dict[str, Any], *, new_session: bool = False) -> UserRecord:
        """Set stored `fields` of a user; with `new_session`, also end every earlier token."""
        record = self.get(user_id)
        if record is None:
            raise KeyError(user_id)
        fields = dict(fields)
        if new_session:
            fields["session_gen"] = record.session_gen + 1
        if not self.docs.update(USERS, user_id, fields):
            raise KeyError(user_id)
        return UserRecord.from_doc({**record.to_doc(), **fields})

    def all(self) -> list[UserRecord]:
        """Every user (the admin console lists and searches them)."""
        return [UserRecord.from_doc(doc) for doc in self.docs.find(USERS, {})]

    def link(self, user_id: str, key: str, fields: dict[str, Any]) -> None:
        """Claim identity `key` for an existing user and set `fields` on it."""
        self.claim_identities(user_id, [key])
        if not self.docs.update(USERS, user_id, fields):
            self.release_identities(user_id, [key])
            raise KeyError(user_id)

    def delete(self, user_id: str) -> bool:
        """Delete a user and its identities; False if it did not exist."""
        record = self.get(user_id)
        if record is None:
            return False
        self.docs.delete(USERS, user_id)
        self.release_identities(user_id, record.identity_keys())
        return True
