"""The PostgreSQL schema as numbered migrations, applied once under an advisory lock.

`jacscale_schema` records every applied version. At start-up each server takes
the session advisory lock MIGRATION_LOCK (servers starting together wait for
one another), applies the versions it lacks, each in its own transaction with
its row in `jacscale_schema`, and releases the lock. A database written by a
newer jacscale (a version we do not know) is refused rather than guessed at.

Add a migration by appending to MIGRATIONS: never edit one that has shipped.
"""

from __future__ import annotations

import logging

import psycopg

log = logging.getLogger("jacscale.postgres")

# The pg_advisory_lock key of migrations, shared by every jacscale server ("jacs" + 1).
MIGRATION_LOCK = 0x6A61_6373_0001

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "graph records, ordered edges, change log, documents",
        """
        CREATE TABLE jacscale_anchors (
            id uuid PRIMARY KEY,
            kind text NOT NULL,
            version bigint NOT NULL,
            root uuid,
            is_root boolean NOT NULL,
            state bytea NOT NULL
        );
        CREATE INDEX jacscale_anchors_roots ON jacscale_anchors (id) WHERE is_root;
        -- A node's edges in insertion order: an append is one row, not a rewrite.
        CREATE TABLE jacscale_edges (
            node uuid NOT NULL,
            pos bigint NOT NULL,
            edge uuid NOT NULL,
            PRIMARY KEY (node, pos),
            UNIQUE (node, edge)
        );
        -- Which records each commit changed, for other servers' caches (pruned).
        CREATE TABLE jacscale_changes (
            seq bigserial PRIMARY KEY,
            id uuid NOT NULL,
            writer bigint NOT NULL
        );
        CREATE TABLE jacscale_docs (
            collection text NOT NULL,
            id text NOT NULL,
            doc jsonb NOT NULL,
            PRIMARY KEY (collection, id)
        );
        """,
    ),
    (
        2,
        "broadcast messages too large for a NOTIFY payload",
        """
        CREATE TABLE jacscale_broadcasts (
            id bigserial PRIMARY KEY,
            body bytea NOT NULL,
            created timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX jacscale_broadcasts_created ON jacscale_broadcasts (created);
        """,
    ),
    (
        3,
        "kvstore(db_type='postgres') entries",
        """
        CREATE TABLE jacscale_kv (
            db_name text NOT NULL,
            col text NOT NULL,
            key text NOT NULL,
            value jsonb NOT NULL,
            expires_at timestamptz,
            PRIMARY KEY (db_name, col, key)
        );
        """,
    ),
    (
        4,
        "scheduler lease and jobs",
        """
        CREATE TABLE jacscale_scheduler_leases (
            name text PRIMARY KEY,
            holder text NOT NULL,
            expires double precision NOT NULL
        );
        CREATE TABLE jacscale_scheduler_jobs (
            id text PRIMARY KEY,
            owner text NOT NULL,
            created_at double precision NOT NULL,
            next_run double precision,
            doc jsonb NOT NULL
        );
        CREATE INDEX jacscale_scheduler_jobs_owner
            ON jacscale_scheduler_jobs (owner, created_at, id);
        CREATE INDEX jacscale_scheduler_jobs_due
            ON jacscale_scheduler_jobs (next_run) WHERE next_run IS NOT NULL;
        """,
    ),
]


class SchemaTooNew(Exception):
    """The database has migrations this jacscale does not know (written by a newer one)."""


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply the missing migrations on `conn` (autocommit) under MIGRATION_LOCK; return them."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS jacscale_schema ("
            " version integer PRIMARY KEY,"
            " description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = conn.execute("SELECT version FROM jacscale_schema").fetchall()
        have = {int(r[0]) for r in rows}
        known = {version for version, _, _ in MIGRATIONS}
        unknown = sorted(have - known)
        if unknown:
            raise SchemaTooNew(
                f"the database has schema version {unknown[-1]}, newer than this jacscale"
                f" knows ({max(known)}): upgrade jacscale"
            )
        applied: list[int] = []
        for version, description, sql in MIGRATIONS:
            if version in have:
                continue
            with conn.transaction():
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO jacscale_schema (version, description) VALUES (%s, %s)",
                    (version, description),
                )
            log.info("PostgreSQL schema: applied version %d (%s)", version, description)
            applied.append(version)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
