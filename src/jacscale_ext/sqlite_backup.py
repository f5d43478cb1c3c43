"""Backup and restore of the embedded SQLite store (`jacscale db backup|restore`).

Both use SQLite's online backup API, which copies the database page by page
inside one read transaction: the copy is the database as of one commit, even
while servers keep writing (they are not stopped, and a writer never waits
for more than one step). The backup is one self-contained file (no WAL beside
it), written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from jacscale_core.memory import GUEST_ROOT_ID, SYSTEM_ROOT_ID

TIMEOUT_SECONDS = 30.0
REQUIRED_TABLES = {"anchors", "edges", "docs", "changes"}


class BackupError(Exception):
    """A backup or restore was refused or failed; the message says why."""


@dataclass(frozen=True)
class Counts:
    """What a store file holds."""

    records: int
    documents: int
    bytes: int


def counts(path: Path) -> Counts:
    """Records and documents in a jacscale SQLite file (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = REQUIRED_TABLES - tables
        if missing:
            raise BackupError(
                f"{path.name} is not a jacscale store (no {', '.join(sorted(missing))} table)"
            )
        records = conn.execute("SELECT COUNT(*) FROM anchors").fetchone()[0]
        documents = conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name} is not a readable SQLite database: {exc}") from None
    finally:
        conn.close()
    return Counts(records, documents, path.stat().st_size)


def holds_data(path: Path) -> bool:
    """True when the store has anything beyond the empty system and guest roots."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables & REQUIRED_TABLES:
            return False
        defaults = (SYSTEM_ROOT_ID.bytes, GUEST_ROOT_ID.bytes)
        others = conn.execute(
            "SELECT COUNT(*) FROM anchors WHERE id NOT IN (?, ?)", defaults
        ).fetchone()[0]
        edges = conn.execute("SELECT COUNT(*) FROM edges").fetchone()[0]
        docs = conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
    finally:
        conn.close()
    return bool(others or edges or docs)


def backup(store_path: Path, dest: Path) -> Counts:
    """Copy the live store at `store_path` to `dest` (which must not exist)."""
    if dest.exists():
        raise BackupError(f"{dest} exists; choose a new file name")
    if not store_path.exists():
        raise BackupError(f"there is no store at {store_path}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    source = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS)
    target = sqlite3.connect(tmp, timeout=TIMEOUT_SECONDS)
    try:
        source.backup(target)  # one step: the whole database as of one read transaction
        target.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
        ok = target.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            raise BackupError(f"the copy failed its integrity check: {ok}")
    except sqlite3.Error as exc:
        raise BackupError(f"backup failed: {exc}") from None
    finally:
        target.close()
        source.close()
    try:
        os.chmod(tmp, 0o600)  # it holds the app's data and its users
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return counts(dest)


def restore(source: Path, store_path: Path, force: bool = False) -> Counts:
    """Replace the store at `store_path` with the backup `source`.

    Refuses a store that holds data unless `force`. Stop servers using the
    store first: their caches would still hold what they read before.
    """
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    found = counts(source)
    if holds_data(store_path) and not force:
        raise BackupError(
            f"the store at {store_path} already holds data; pass --force to replace it"
        )
    store_path.parent.mkdir(parents=True, exist_ok=True)
    if not store_path.exists():
        os.close(os.open(store_path, os.O_CREAT | os.O_WRONLY, 0o600))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS)
    dst = sqlite3.connect(store_path, timeout=TIMEOUT_SECONDS)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        raise BackupError(f"restore failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    return found
