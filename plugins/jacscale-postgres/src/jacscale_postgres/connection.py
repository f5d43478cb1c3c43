"""Connections to PostgreSQL: the pool, our default deadlines, masked URLs, error translation.

Every call is bounded: connecting (5 s), each statement (`statement_timeout`,
15 s), waiting for a row lock (`lock_timeout`, 10 s), a transaction left idle
(30 s) and waiting for a pooled connection (`pool_timeout_seconds`, 5 s). A
setting the URL gives itself (`?connect_timeout=2`, `?options=-c statement_timeout=500`)
wins over ours.

Failures become exceptions a request can answer with: an unreachable server,
an exhausted pool or a statement that ran out of time answer 503; anything else
the server refused answers 500. None of their messages holds the URL or a
credential: clients see them. The operator's log gets the masked URL and the
server's reason.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from jacscale_core.config import ConfigError
from jacscale_core.store import StoreUnavailable
from jacscale_ext.kvstore import mask_uri, scrub
from jacscale_postgres.settings import POOL_SIZE, POOL_TIMEOUT_SECONDS, STATEMENT_TIMEOUT_MS

log = logging.getLogger("jacscale.postgres")

CONNECT_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT_MS = 10_000
IDLE_IN_TRANSACTION_MS = 30_000


class PostgresUnavailable(StoreUnavailable):
    """PostgreSQL cannot be reached, is busy or too slow; requests that need it answer 503."""

    api_code = "UNAVAILABLE"


class PostgresStoreError(Exception):
    """PostgreSQL refused an operation (not a version conflict); requests answer 500."""

    api_code = "INTERNAL_ERROR"


def server_options(
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS, lock_timeout_ms: int = LOCK_TIMEOUT_MS
) -> str:
    """The `options` connection parameter carrying our server-side deadlines."""
    return (
        f"-c statement_timeout={int(statement_timeout_ms)}"
        f" -c lock_timeout={int(lock_timeout_ms)}"
        f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    )


def connect_kwargs(url: str, application_name: str, options: str | None = None) -> dict[str, Any]:
    """Our defaults for every connection parameter the URL does not set itself.

    A malformed URL raises ConfigError naming it with the password masked.
    """
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"DATABASE_URL {mask_uri(url)} is not a valid PostgreSQL URL: {scrub(str(exc), url)}"
        ) from None
    defaults: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": application_name,
        "options": options if options is not None else server_options(),
    }
    return {k: v for k, v in defaults.items() if k not in given}


def reason(exc: BaseException, url: str) -> str:
    """The driver's message, one line, without credentials."""
    text = scrub(str(exc), url).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def open_pool(
    url: str,
    *,
    name: str,
    max_size: int = POOL_SIZE,
    timeout: float = POOL_TIMEOUT_SECONDS,
    options: str | None = None,
) -> ConnectionPool:
    """A closed pool of `max_size` connections to `url` (open it with `pool.open()`).

    All of them are kept open: a pool that grew on demand made the first
    requests of a busy server wait while connections (each a SCRAM handshake)
    were made one by one.
    """
    return ConnectionPool(
        url,
        min_size=max_size,
        max_size=max_size,
        timeout=timeout,
        kwargs=connect_kwargs(url, name, options),
        name=name,
        open=False,
        reconnect_timeout=24 * 3600.0,  # keep trying: the server may come back
    )


def translate(exc: BaseException, url: str, action: str) -> Exception:
    """The exception a request should see for a driver failure during `action`."""
    where = mask_uri(url)
    if isinstance(exc, PoolTimeout):
        log.warning("PostgreSQL at %s: %s: no free connection in time", where, action)
        return PostgresUnavailable(
            f"the database (PostgreSQL) is busy: no free connection for {action}; retry later"
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        log.warning("PostgreSQL at %s: %s ran out of time: %s", where, action, reason(exc, url))
        return PostgresUnavailable(f"the database (PostgreSQL) took too long for {action}")
    if isinstance(exc, pg_errors.LockNotAvailable):
        log.warning("PostgreSQL at %s: %s waited too long for a lock", where, action)
        return PostgresUnavailable(f"the database (PostgreSQL) is busy: {action} waited for a lock")
    if isinstance(
        exc, psycopg.OperationalError | pg_errors.AdminShutdown | pg_errors.CannotConnectNow
    ):
        log.warning("PostgreSQL at %s: %s failed: %s", where, action, reason(exc, url))
        return PostgresUnavailable(f"the database (PostgreSQL) is unreachable; {action} failed")
    sqlstate = getattr(exc, "sqlstate", None)
    log.error("PostgreSQL at %s: %s failed (%s): %s", where, action, sqlstate, reason(exc, url))
    return PostgresStoreError(f"the database (PostgreSQL) refused {action} (SQLSTATE {sqlstate})")


def unreachable_at_start(exc: BaseException, url: str) -> PostgresUnavailable:
    """The start-up error: names the masked URL and the server's reason."""
    return PostgresUnavailable(f"PostgreSQL at {mask_uri(url)} is unreachable: {reason(exc, url)}")
