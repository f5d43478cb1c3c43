"""`jacscale import-jac-scale app.jac SOURCE`: move a jac-scale 0.2.31 deployment over.

SOURCE is the jac-scale project folder (its data lives in `.jac/data`:
`anchor_store.db`, jaclang's JSON anchor store, and `users.db`, its users) or
the `mongodb://` URI it used (database `jac_db`: `_anchors`, `users`,
`webhook_api_keys`).

What comes over:
- users, with their identities (email, username, SSO) and their bcrypt
  password hashes (they log in with the same password; the first login
  rehashes it to argon2id), profile and creation time; jac-scale's own
  `__guest__` and `__system__` accounts are not users and are skipped;
- every root and the graph: nodes, edges (order kept), objects, and the
  access grants on each (`perm_grant`); jac-scale's guest root becomes
  jacscale's guest root;
- not API keys: jac-scale keeps only their metadata (the key is a token
  signed with jac-scale's JWT secret, and without MongoDB it keeps them in
  memory only), so there is no secret to bring; the report counts them and
  their owners create new ones. Login sessions do not come over either.

Classes are found in the program (with `[plugins.scale.schema]` rename rules);
a stored type the program lacks stops the import before anything is written.
Running it again adds only what is missing. Graph writes go in one atomic
batch; if writing users then fails, everything this run wrote is undone.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from jacscale_core.context import AppContext
from jacscale_core.memory import GUEST_ROOT_ID
from jacscale_core.schema import Schema, pack_state
from jacscale_core.store import GraphStore, RecordWrite, WriteConflict

RESERVED_USERS = ("__guest__", "__system__")
MONGO_DATABASE = "jac_db"
MONGO_TIMEOUT_MS = 10_000
_KINDS = {
    "NodeAnchor": "node",
    "EdgeAnchor": "edge",
    "ObjectAnchor": "object",
    "WalkerAnchor": "walker",
}


class ImportRefused(Exception):
    """The import cannot run; nothing was written. The message says why."""


@dataclass
class ImportReport:
    """What one run brought over."""

    users: int = 0
    users_present: int = 0
    users_skipped: dict[str, int] = field(default_factory=dict)
    identities: int = 0
    roots: int = 0
    roots_merged: int = 0
    nodes: int = 0
    edges: int = 0
    objects: int = 0
    grants: int = 0
    records_present: int = 0
    walkers_skipped: int = 0
    api_keys_note: str = ""

    def lines(self) -> list[str]:
        """The report, one line per fact."""
        out = [
            f"users: {self.users} imported, {self.users_present} already present",
            f"identities: {self.identities} imported",
            f"roots: {self.roots} imported, {self.roots_merged} merged into existing roots",
            f"graph: {self.nodes} node(s), {self.edges} edge(s), {self.objects} object(s) imported;"
            f" {self.records_present} already present",
            f"access grants: {self.grants} record(s) carry grants",
        ]
        for reason, count in sorted(self.users_skipped.items()):
            out.append(f"users not imported: {count} ({reason})")
        if self.walkers_skipped:
            out.append(f"stored walkers not imported: {self.walkers_skipped}")
        out.append(f"api keys: {self.api_keys_note}")
        return out


@dataclass
class Source:
    """What a jac-scale deployment holds, read-only."""

    anchors: list[dict[str, Any]]
    users: list[dict[str, Any]]
    api_keys: int | None  # None: jac-scale kept them in memory only
    where: str


# --------------------------------------------------------------------------
# Reading jac-scale's data
# --------------------------------------------------------------------------


def _read_sqlite(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ImportRefused(f"{path} is not jac-scale 0.2.31 data: {exc}") from None
    finally:
        conn.close()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def read_folder(folder: Path) -> Source:
    """jac-scale's local data: `<folder>/.jac/data` (or `folder` itself)."""
    data = folder / ".jac" / "data"
    if not (data / "anchor_store.db").exists() and (folder / "anchor_store.db").exists():
        data = folder
    anchors_db, users_db = data / "anchor_store.db", data / "users.db"
    if not anchors_db.exists():
        raise ImportRefused(f"no jac-scale data in {folder} (looked for {anchors_db})")
    anchors = [json.loads(row[0]) for row in _read_sqlite(anchors_db, "SELECT data FROM anchors")]
    users: list[dict[str, Any]] = []
    if users_db.exists():
        columns = "user_id, status, identities, credentials, root_id, profile, created_at"
        for row in _read_sqlite(users_db, f"SELECT {columns} FROM identity_users"):
            user_id, status, identities, credentials, root_id, profile, created = row
            users.append({
                "user_id": user_id, "status": status, "identities": _json(identities) or [],
                "credentials": _json(credentials) or [], "root_id": root_id,
                "profile": _json(profile) or {}, "created_at": created,
            })  # fmt: skip
    return Source(anchors, users, None, str(folder))


def read_mongo(uri: str) -> Source:
    """jac-scale's MongoDB data (database `jac_db`)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from jacscale_ext.kvstore import mask_uri

    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS, socketTimeoutMS=MONGO_TIMEOUT_MS
    )
    try:
        db = client[MONGO_DATABASE]
        anchors = [_json(doc["data"]) for doc in db["_anchors"].find({}) if doc.get("data")]
        users = [dict(doc) for doc in db["users"].find({}, {"_id": 0})]
        api_keys = db["webhook_api_keys"].count_documents({})
    except PyMongoError as exc:
        raise ImportRefused(
            f"cannot read jac-scale's MongoDB at {mask_uri(uri)}: {type(exc).__name__}"
        ) from None
    finally:
        client.close()
    return Source(anchors, users, api_keys, mask_uri(uri))


# --------------------------------------------------------------------------
# Turning it into jacscale records and documents
# --------------------------------------------------------------------------


@dataclass
class _Plan:
    creates: list[RecordWrite] = field(default_factory=list)
    merges: list[RecordWrite] = field(default_factory=list)
    docs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _uuid(value: Any, remap: dict[UUID, UUID]) -> UUID:
    found = UUID(str(value))
    return remap.get(found, found)


def _access(
    data: dict[str, Any], remap: dict[UUID, UUID]
) -> tuple[int, tuple[tuple[str, int], ...]]:
    access = data.get("access") or {}
    level_all = int(access.get("all", -1))
    grants = (access.get("roots") or {}).get("anchors") or {}
    roots = []
    for root_id, level in grants.items():
        try:
            key = str(_uuid(root_id, remap))
        except ValueError:
            key = str(root_id)
        roots.append((key, int(level)))
    return (level_all, tuple(roots))


def _fields(arch: dict[str, Any]) -> dict[str, Any]:
    from jaclang.runtimelib.serializer import Serializer

    return {
        k: Serializer._deserialize_value(v)
        for k, v in arch.items()
        if k not in ("__type__", "__module__") and not k.startswith("__jac")
    }


def _record_write(
    data: dict[str, Any], schema: Schema, remap: dict[UUID, UUID], report: ImportReport
) -> RecordWrite | None:
    kind = _KINDS.get(str(data.get("__type__")))
    if kind is None or kind == "walker":
        report.walkers_skipped += kind == "walker"
        return None
    arch = data.get("archetype") or {}
    module, name = str(arch.get("__module__")), str(arch.get("__type__"))
    cls = schema.resolve_class(module, name)
    if cls is None:
        raise ImportRefused(
            f"the program has no class {name} (stored as {module}.{name}); add it, or map it"
            f" with [plugins.scale.schema.rename_types]"
        )
    anchor_id = _uuid(data["id"], remap)
    root = _uuid(data["root"], remap).bytes if data.get("root") else None
    access = _access(data, remap)
    extra: tuple[Any, ...] = ()
    edges: tuple[UUID, ...] = ()
    if kind == "edge":
        extra = (
            _uuid(data["source"], remap).bytes,
            _uuid(data["target"], remap).bytes,
            bool(data.get("is_undirected")),
        )
    elif kind == "node":
        edges = tuple(_uuid(e, remap) for e in data.get("edges") or ())
    state = pack_state((cls, _fields(arch), root, access, extra))
    decoded = schema.decode(state, kind, for_load=False)  # rules and lossless conversions
    if decoded.quarantine is None and decoded.changed:
        state = pack_state((decoded.cls, decoded.fields, root, access, extra))
    if access[0] != -1 or access[1]:
        report.grants += 1
    is_root = name == "Root" and module.startswith("jaclang")
    return RecordWrite(
        op="create", id=anchor_id, kind=kind,  # type: ignore[arg-type]
        root=UUID(bytes=root) if root else None, is_root=is_root, state=state, edges=edges,
    )  # fmt: skip


def _empty_root(root_id: UUID) -> RecordWrite:
    from jaclang.jac0core.archetype import Root

    return RecordWrite(
        op="create", id=root_id, kind="node", is_root=True,
        state=pack_state((Root, {}, None, (-1, ()), ())),
    )  # fmt: skip


def _user_docs(user: dict[str, Any], remap: dict[UUID, UUID]) -> tuple[dict[str, Any], list[str]]:
    """Our user document and identity keys for one jac-scale user."""
    from jacscale_ext.auth.users import identity_key

    user_id = UUID(str(user["user_id"])).hex
    email = username = None
    verified = False
    sso: dict[str, str] = {}
    for ident in user.get("identities") or []:
        kind, value = ident.get("type"), ident.get("value_raw") or ident.get("value_normalized")
        if kind == "email" and value and email is None:
            email, verified = str(value), bool(ident.get("verified"))
        elif kind == "username" and value and username is None:
            username = str(value)
        elif kind == "sso" and ident.get("provider"):
            sso[str(ident["provider"])] = str(ident.get("external_id") or "")
    password = next(
        (
            c.get("password_hash")
            for c in user.get("credentials") or []
            if c.get("type") == "password"
        ),
        None,
    )
    created = 0.0
    if user.get("created_at"):
        try:
            created = datetime.fromisoformat(str(user["created_at"])).timestamp()
        except ValueError:
            created = 0.0
    root_id = _uuid(user["root_id"], remap).hex
    doc = {
        "_id": user_id, "root_id": root_id, "email": email, "username": username,
        "password_hash": password, "created_at": created, "password_changed_at": created,
        "session_gen": 0, "email_verified": verified, "sso": sso,
        "profile": dict(user.get("profile") or {}),
    }  # fmt: skip
    keys = []
    if email:
        keys.append(identity_key("email", email))
    if username:
        keys.append(identity_key("username", username))
    keys.extend(f"sso:{p}:{s}" for p, s in sso.items())
    return doc, keys


def _reserved(user: dict[str, Any]) -> bool:
    values = {str(i.get("value_normalized")) for i in user.get("identities") or []}
    return bool(values & set(RESERVED_USERS))


def _plan(ctx: AppContext, source: Source, report: ImportReport) -> _Plan:
    from jacscale_ext.auth.users import IDENTITIES, USERS

    store: GraphStore = ctx.store
    schema = ctx.executor.tier.schema
    docs = store.docs
    remap: dict[UUID, UUID] = {}
    for user in source.users:
        if "__guest__" in {str(i.get("value_normalized")) for i in user.get("identities") or []}:
            if user.get("root_id"):
                remap[UUID(str(user["root_id"]))] = GUEST_ROOT_ID
    plan = _Plan()
    writes = [w for data in source.anchors if (w := _record_write(data, schema, remap, report))]
    wanted_roots = set()
    for user in source.users:
        if (
            not _reserved(user)
            and user.get("root_id")
            and user.get("status", "active") != "disabled"
        ):
            wanted_roots.add(_uuid(user["root_id"], remap))
    have_ids = {w.id for w in writes}
    writes.extend(_empty_root(r) for r in sorted(wanted_roots - have_ids))
    existing = store.load([w.id for w in writes]) if writes else {}
    for write in writes:
        current = existing.get(write.id)
        if current is None:
            plan.creates.append(write)
            if write.is_root:
                report.roots += 1
            elif write.kind == "node":
                report.nodes += 1
            elif write.kind == "edge":
                report.edges += 1
            else:
                report.objects += 1
            continue
        new_edges = tuple(e for e in write.edges if e not in set(current.edges))
        if current.is_root and new_edges:
            plan.merges.append(RecordWrite(
                op="update", id=write.id, kind="node", is_root=True,
                edges_added=new_edges, expect_version=current.version,
            ))  # fmt: skip
            report.roots_merged += 1
        else:
            report.records_present += 1
    for user in source.users:
        if _reserved(user):
            continue
        if user.get("status", "active") == "disabled":
            report.users_skipped["disabled in jac-scale"] = (
                report.users_skipped.get("disabled in jac-scale", 0) + 1
            )
            continue
        doc, keys = _user_docs(user, remap)
        if docs.get(USERS, doc["_id"]) is not None:
            report.users_present += 1
            continue
        for key in keys:
            owner = docs.get(IDENTITIES, key)
            if owner is not None and owner.get("user_id") != doc["_id"]:
                raise ImportRefused(
                    f"identity {key.split(':', 1)[0]} of jac-scale user {doc['_id']} already"
                    " belongs to another jacscale user; nothing was imported"
                )
            if owner is None:
                plan.docs.append(
                    (
                        IDENTITIES,
                        {"_id": key, "user_id": doc["_id"], "created_at": doc["created_at"]},
                    )
                )
                report.identities += 1
        plan.docs.append((USERS, doc))
        report.users += 1
    return plan


def _undo(store: GraphStore, plan: _Plan, inserted: list[tuple[str, str]]) -> None:
    for collection, doc_id in reversed(inserted):
        store.docs.delete(collection, doc_id)
    undo = [RecordWrite(op="delete", id=w.id, kind=w.kind) for w in plan.creates]
    undo += [
        RecordWrite(op="update", id=w.id, kind="node", is_root=True, edges_removed=w.edges_added)
        for w in plan.merges
    ]
    if undo:
        store.apply(undo)


def import_jac_scale(ctx: AppContext, source_ref: str) -> ImportReport:
    """Bring a jac-scale 0.2.31 deployment's data into `ctx`'s store; see the module docstring."""
    if source_ref.startswith(("mongodb://", "mongodb+srv://")):
        source = read_mongo(source_ref)
    else:
        folder = Path(source_ref)
        if not folder.is_dir():
            raise ImportRefused(f"{source_ref} is neither a folder nor a mongodb:// URI")
        source = read_folder(folder)
    report = ImportReport()
    if source.api_keys is None:
        report.api_keys_note = (
            "none to import: without MongoDB jac-scale 0.2.31 keeps API keys in memory only"
        )
    else:
        report.api_keys_note = (
            f"{source.api_keys} not imported: jac-scale stores only their metadata (each key is"
            " a token signed with jac-scale's JWT secret); their owners create new ones"
        )
    plan = _plan(ctx, source, report)
    store = ctx.store
    graph = plan.creates + plan.merges
    if graph:
        try:
            store.apply(graph)
        except WriteConflict as exc:
            raise ImportRefused(
                f"the store changed while importing ({exc}); nothing was imported, run it again"
            ) from None
    inserted: list[tuple[str, str]] = []
    try:
        for collection, doc in plan.docs:
            store.docs.insert(collection, doc)
            inserted.append((collection, str(doc["_id"])))
    except Exception as exc:  # noqa: BLE001 - any failure: undo this run's writes, then report
        _undo(store, plan, inserted)
        raise ImportRefused(
            f"writing users failed ({exc}); everything this run wrote was undone"
        ) from None
    return report
