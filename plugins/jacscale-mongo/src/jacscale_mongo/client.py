"""The graph store's MongoClient: bounded timeouts, masked URIs, errors that say what failed.

Every PyMongo call the store makes is bounded: server selection (5 s unless the
URI says otherwise), connecting (5 s), each socket read (15 s) and waiting for a
pooled connection (10 s). Writes default to `w=majority` unless the URI sets
`w`, so an acknowledged write survives a replica-set fail-over.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError

from jacscale_core.config import ConfigError
from jacscale_core.store import StoreUnavailable
from jacscale_ext.kvstore import mask_uri, scrub

log = logging.getLogger("jacscale.mongo")

DEFAULT_DATABASE = "jacscale"
DEFAULT_OPTIONS: dict[str, Any] = {
    "serverSelectionTimeoutMS": 5_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 15_000,
    "waitQueueTimeoutMS": 10_000,
    "w": "majority",
    "appname": "jacscale",
}
WARN_EVERY_SECONDS = 30.0

Client = MongoClient[dict[str, Any]]


class MongoUnavailable(StoreUnavailable):
    """MongoDB cannot be reached; requests that need it answer 503."""

    api_code = "UNAVAILABLE"


class MongoStoreError(Exception):
    """MongoDB refused an operation (not a version conflict); requests answer 500."""

    api_code = "INTERNAL_ERROR"


def short_reason(exc: BaseException, uri: str) -> str:
    """PyMongo's message without credentials and without the topology dump."""
    text = scrub(str(exc), uri) or type(exc).__name__
    text = text.split(", Timeout:", 1)[0].split("Topology Description", 1)[0]
    text = text.split(" (configured timeouts", 1)[0]
    return text[:300].rstrip(", ")


def client_options(uri: str) -> dict[str, Any]:
    """Our defaults for every option the URI does not set itself."""
    present = {key.lower() for key, _ in parse_qsl(uri.partition("?")[2])}
    return {k: v for k, v in DEFAULT_OPTIONS.items() if k.lower() not in present}


def open_client(uri: str) -> tuple[Client, str]:
    """A MongoClient for `uri` (nothing connects yet) and the database name to use.

    The database is the URI's path (`mongodb://host/mydb`), else `jacscale`. A
    malformed URI raises ConfigError naming the masked URI.
    """
    try:
        client: Client = MongoClient(uri, **client_options(uri))
    except (InvalidURI, ConfigurationError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"MONGODB_URI {mask_uri(uri)} is not a valid MongoDB URI: {short_reason(exc, uri)}"
        ) from None
    database = client.get_default_database(DEFAULT_DATABASE).name
    return client, database


class RateLimitedLog:
    """Logs a warning at most once per WARN_EVERY_SECONDS per key (outages are noisy)."""

    def __init__(self, logger: logging.Logger) -> None:
        """Warn through `logger`."""
        self._logger = logger
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: Any) -> None:
        """Log `message` unless `key` was logged within the last WARN_EVERY_SECONDS."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < WARN_EVERY_SECONDS:
                return
            self._last[key] = now
        self._logger.warning(message, *args)


def translate(exc: PyMongoError, uri: str, action: str) -> Exception:
    """The exception a request should see for a PyMongo failure during `action`.

    Unreachable servers become MongoUnavailable (503); anything else the server
    refused becomes MongoStoreError (500). Neither message holds the URI or a
    credential: clients see them; the operator's log gets the details.
    """
    from pymongo.errors import ConnectionFailure

    reason = short_reason(exc, uri)
    if isinstance(exc, ConnectionFailure):
        log.warning("MongoDB at %s: %s failed: %s", mask_uri(uri), action, reason)
        return MongoUnavailable(f"the database (MongoDB) is unreachable; {action} failed")
    log.error("MongoDB at %s: %s failed: %s", mask_uri(uri), action, reason)
    code = getattr(exc, "code", None)
    return MongoStoreError(f"the database (MongoDB) refused {action} (code {code})")
