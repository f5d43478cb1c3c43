"""What the plugin reads from the environment and jac.toml, without importing psycopg.

The hooks (jacscale_postgres.hooks) decide from these whether PostgreSQL is in
use before they import the driver.
"""

from __future__ import annotations

import msgspec

from jacscale_core.config import ConfigError, database_uri
from jacscale_core.context import AppContext
from jacscale_ext.kvstore import mask_uri

SCHEMES = ("postgresql://", "postgres://")
STATEMENT_TIMEOUT_MS = 15_000
POOL_SIZE = 16  # the walker thread pool's default size: no thread waits for a connection
POOL_TIMEOUT_SECONDS = 5.0
CONFIG_SECTION = "plugins.scale.postgres"


class PostgresConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[plugins.scale.postgres]`: the connection pool and the statement deadline."""

    pool_size: int = POOL_SIZE
    pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS


def is_postgres_url(url: str) -> bool:
    """True for `postgresql://...` and `postgres://...` URLs."""
    return url.startswith(SCHEMES)


def database_url(app: AppContext) -> str | None:
    """DATABASE_URL, else `[plugins.scale.database] database_url`, else None.

    A URL that is not postgresql:// is refused (ConfigError) rather than ignored.
    """
    url = database_uri("postgres", app.settings.env, app.settings.toml)
    if not url:
        return None
    if not is_postgres_url(url):
        raise ConfigError(
            f"DATABASE_URL {mask_uri(url)} is not a PostgreSQL URL (postgresql://user:pass@host/db)"
        )
    return url
