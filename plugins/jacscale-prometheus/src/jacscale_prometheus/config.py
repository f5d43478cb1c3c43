"""`[plugins.scale.metrics]`: the reference document's keys plus how /metrics is protected.

The reference document's keys (enabled, endpoint, namespace, walker_metrics, histogram_buckets)
keep their documented defaults. jacscale adds three ways to expose /metrics,
none with a default password:

- `token` (or the METRICS_TOKEN environment variable): scrapers must send
  `Authorization: Bearer <token>`;
- `public = true`: anyone who reaches the port may scrape;
- `bind = "host:port"`: serve /metrics on a separate listener (typically an
  internal interface) instead of the main port.

With none of them, /metrics on the main port answers only direct loopback
clients (403 for others and for proxied requests), and start-up says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from jacscale_core.config import ConfigError, Settings

SECTION = "plugins.scale.metrics"
K8S_SECTION = "plugins.scale.kubernetes"
TOKEN_ENV = "METRICS_TOKEN"
K8S_NAMESPACE_ENV = "K8s_NAMESPACE"
DEFAULT_NAMESPACE = "jac_scale"
MIN_TOKEN_LENGTH = 16
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_ENDPOINT = re.compile(r"^/[A-Za-z0-9._~/-]*$")


class MetricsConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.metrics]` exactly as jac.toml spells it."""

    enabled: bool = False
    endpoint: str = "/metrics"
    namespace: str | None = None
    walker_metrics: bool = False
    histogram_buckets: list[float] = msgspec.field(default_factory=lambda: list(DEFAULT_BUCKETS))
    token: str | None = None
    public: bool = False
    bind: str | None = None


@dataclass(frozen=True)
class ResolvedMetrics:
    """The checked settings the plugin runs with."""

    enabled: bool
    endpoint: str
    namespace: str
    walker_metrics: bool
    buckets: tuple[float, ...]
    token: str | None
    public: bool
    bind: tuple[str, int] | None
    workers: int

    @property
    def access_mode(self) -> str:
        """ "token", "public" or "loopback": who may scrape the endpoint."""
        if self.token:
            return "token"
        if self.public:
            return "public"
        if self.bind is not None:
            return "public"  # the separate listener's address is the protection
        return "loopback"


def sanitize_namespace(name: str) -> str:
    """A valid Prometheus metric prefix from any string (e.g. a Kubernetes namespace)."""
    cleaned = re.sub(r"[^a-zA-Z0-9]", "_", name)
    cleaned = re.sub(r"_+", "_", cleaned).strip("_")
    if cleaned and cleaned[0].isdigit():
        cleaned = f"_{cleaned}"
    return cleaned or DEFAULT_NAMESPACE


def _k8s_namespace(settings: Settings, env: Mapping[str, str]) -> str | None:
    if env.get(K8S_NAMESPACE_ENV):
        return env[K8S_NAMESPACE_ENV]
    table: Any = settings.toml
    for part in K8S_SECTION.split("."):
        table = table.get(part) if isinstance(table, Mapping) else None
    value = table.get("namespace") if isinstance(table, Mapping) else None
    return value if isinstance(value, str) and value else None


def parse_bind(value: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) as a tuple; ConfigError naming the key otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"[{SECTION}] bind must be host:port, got {value!r}")
    return host, int(port)


def resolve(settings: Settings, env: Mapping[str, str]) -> ResolvedMetrics:
    """Check the section and apply the environment; raise ConfigError naming the key."""
    raw: MetricsConfig = settings.section(SECTION)
    if raw.namespace is not None:
        if not _METRIC_NAME.match(raw.namespace):
            raise ConfigError(
                f"[{SECTION}] namespace {raw.namespace!r} is not a valid Prometheus name "
                "(letters, digits, '_' and ':', not starting with a digit)"
            )
        namespace = raw.namespace
    else:
        k8s = _k8s_namespace(settings, env)
        namespace = sanitize_namespace(k8s) if k8s else DEFAULT_NAMESPACE
    if not _ENDPOINT.match(raw.endpoint) or raw.endpoint == "/":
        raise ConfigError(
            f"[{SECTION}] endpoint must be a path like /metrics, got {raw.endpoint!r}"
        )
    buckets = tuple(float(b) for b in raw.histogram_buckets)
    if not buckets or any(b <= a for a, b in zip(buckets, buckets[1:], strict=False)):
        raise ConfigError(f"[{SECTION}] histogram_buckets must be a non-empty increasing list")
    token = env.get(TOKEN_ENV) or raw.token or None
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"[{SECTION}] token (or {TOKEN_ENV}) must be at least {MIN_TOKEN_LENGTH} characters"
        )
    bind = parse_bind(raw.bind) if raw.bind else None
    return ResolvedMetrics(
        enabled=raw.enabled,
        endpoint=raw.endpoint,
        namespace=namespace,
        walker_metrics=raw.walker_metrics,
        buckets=buckets,
        token=token,
        public=raw.public,
        bind=bind,
        workers=settings.server.workers,
    )
