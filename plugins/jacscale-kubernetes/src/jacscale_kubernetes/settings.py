"""Kubernetes deploy settings: defaults < jac.toml `[plugins.scale.kubernetes]` < environment.

The environment variables are the ones jac-scale documents (APP_NAME, K8s_NAMESPACE,
K8s_NODE_PORT ...), plus a few jacscale additions with the same `K8s_` prefix.
Every value is checked here, so a bad one stops the deploy with a message that
names the variable or jac.toml key it came from, before anything is built or sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from jacscale_core.config import Settings
from jacscale_core.deploy import DeployError

SECTION = "plugins.scale.kubernetes"
VERSIONS_SECTION = "plugins.scale.kubernetes.plugin_versions"
SECRETS_SECTION = "plugins.scale.secrets"

# Pinned third-party images. Bump deliberately, never to a floating tag.
BASE_IMAGE = "python:3.12.12-slim-bookworm"
MONGODB_IMAGE = "mongo:7.0.14"
REDIS_IMAGE = "redis:7.4.1-alpine"
POSTGRES_IMAGE = "postgres:15.10-bookworm"
DATABASE_CHOICES = ("postgres", "mongodb")
RUNTIME_IMAGE = "docker.io/jacscale/jacscale"


class KubernetesConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.kubernetes]` in jac.toml; each key's environment variable wins."""

    app_name: str = "jaseci"
    namespace: str = "default"
    context: str | None = None
    service_type: str = "NodePort"
    node_port: int = 30001
    replicas: int = 1
    max_replicas: int = 3
    target_cpu_utilization: int = 70
    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    readiness_initial_delay: int = 10
    readiness_period: int = 20
    liveness_initial_delay: int = 10
    liveness_period: int = 20
    liveness_failure_threshold: int = 80
    mongodb: bool = False
    redis: bool = False
    postgres: bool = False
    database: str | None = None  # "postgres" or "mongodb": the same as postgres / mongodb = true
    image: str | None = None
    runtime_image: str = RUNTIME_IMAGE
    base_image: str = BASE_IMAGE
    mongodb_image: str = MONGODB_IMAGE
    redis_image: str = REDIS_IMAGE
    postgres_image: str = POSTGRES_IMAGE
    mongodb_storage: str = "1Gi"
    postgres_storage: str = "1Gi"
    storage_class: str | None = None
    platform: str | None = None
    poll_interval_seconds: float = 1.0


# Environment variable -> KubernetesConfig field. The first block is jac-scale's.
ENV_VARS: dict[str, str] = {
    "APP_NAME": "app_name",
    "K8s_NAMESPACE": "namespace",
    "K8s_NODE_PORT": "node_port",
    "K8s_CPU_REQUEST": "cpu_request",
    "K8s_CPU_LIMIT": "cpu_limit",
    "K8s_MEMORY_REQUEST": "memory_request",
    "K8s_MEMORY_LIMIT": "memory_limit",
    "K8s_READINESS_INITIAL_DELAY": "readiness_initial_delay",
    "K8s_READINESS_PERIOD": "readiness_period",
    "K8s_LIVENESS_INITIAL_DELAY": "liveness_initial_delay",
    "K8s_LIVENESS_PERIOD": "liveness_period",
    "K8s_LIVENESS_FAILURE_THRESHOLD": "liveness_failure_threshold",
    "K8s_MONGODB": "mongodb",
    "K8s_REDIS": "redis",
    # jacscale additions
    "K8s_CONTEXT": "context",
    "K8s_SERVICE_TYPE": "service_type",
    "K8s_REPLICAS": "replicas",
    "K8s_MAX_REPLICAS": "max_replicas",
    "K8s_IMAGE": "image",
    "K8s_STORAGE_CLASS": "storage_class",
    "K8s_POSTGRES": "postgres",
}

# Defaults that jac-scale leaves empty but a scheduler and an HPA need.
DEFAULT_CPU_REQUEST = "250m"
DEFAULT_MEMORY_REQUEST = "512Mi"

SERVICE_TYPES = ("NodePort", "ClusterIP", "LoadBalancer")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PACKAGE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]*$")
_SPECIFIER = re.compile(r"^(==|>=|<=|~=|!=|<|>)\s*[0-9][0-9A-Za-z.*+!-]*(\s*,\s*(==|>=|<=|~=|!=|<|>)\s*[0-9][0-9A-Za-z.*+!-]*)*$")
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
MAX_APP_NAME = 40  # leaves room for "-mongodb" and the StatefulSet revision hash


@dataclass(frozen=True)
class KubeSettings:
    """Resolved, validated settings for one deploy of one app."""

    app_name: str
    namespace: str
    context: str | None
    service_type: str
    node_port: int
    replicas: int
    max_replicas: int
    target_cpu_utilization: int
    cpu_request: str
    cpu_limit: str | None
    memory_request: str
    memory_limit: str | None
    readiness_initial_delay: int
    readiness_period: int
    liveness_initial_delay: int
    liveness_period: int
    liveness_failure_threshold: int
    mongodb: bool
    redis: bool
    postgres: bool
    database: str | None
    image: str | None
    runtime_image: str
    base_image: str
    mongodb_image: str
    redis_image: str
    postgres_image: str
    mongodb_storage: str
    postgres_storage: str
    storage_class: str | None
    platform: str | None
    poll_interval_seconds: float
    plugin_versions: dict[str, str]
    secrets: dict[str, str]

    @property
    def shared_store(self) -> bool:
        """True when every replica sees the same data (MongoDB or PostgreSQL, in or outside the cluster)."""
        return (
            self.mongodb
            or self.postgres
            or "MONGODB_URI" in self.secrets
            or "DATABASE_URL" in self.secrets
        )


def _raw_table(toml: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    node: Any = toml
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    if not isinstance(node, Mapping):
        raise DeployError(f"jac.toml: [{dotted}] must be a table")
    return {k: v for k, v in node.items() if not isinstance(v, Mapping)}


def _parse_bool(var: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise DeployError(f"{var}={value!r} is not a boolean (use true or false)")


def _parse_env(var: str, value: str, kind: type) -> Any:
    if kind is bool:
        return _parse_bool(var, value)
    if kind is int:
        try:
            return int(value.strip())
        except ValueError:
            raise DeployError(f"{var}={value!r} is not an integer") from None
    return value.strip()


def _field_types() -> dict[str, type]:
    types: dict[str, type] = {}
    for info in msgspec.structs.fields(KubernetesConfig):
        types[info.name] = info.type if isinstance(info.type, type) else str
    return types


def resolve_secrets(raw: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """`[plugins.scale.secrets]` with every `${VAR}` replaced from `env`."""
    resolved: dict[str, str] = {}
    for key, value in raw.items():
        where = f"[{SECRETS_SECTION}] {key}"
        if not _ENV_NAME.match(key):
            raise DeployError(f"{where}: not a valid environment variable name")
        if not isinstance(value, str):
            raise DeployError(f"{where}: must be a string")

        def substitute(match: re.Match[str], where: str = where) -> str:
            name = match.group(1)
            if not _ENV_NAME.match(name):
                raise DeployError(f"{where}: ${{{name}}} is not a valid variable reference")
            if name not in env:
                raise DeployError(f"{where} needs ${{{name}}}, which is not set in the environment")
            return env[name]

        resolved[key] = _ENV_REF.sub(substitute, value)
    return resolved


def parse_plugin_versions(raw: Mapping[str, Any]) -> dict[str, str]:
    """`[plugins.scale.kubernetes.plugin_versions]`, checked: {package: version|latest|none}."""
    versions: dict[str, str] = {}
    for key, value in raw.items():
        where = f"[{VERSIONS_SECTION}] {key}"
        if not _PACKAGE.match(key):
            raise DeployError(f"{where}: not a valid package name")
        if not isinstance(value, str):
            raise DeployError(f"{where}: must be a string (a version, \"latest\" or \"none\")")
        text = value.strip()
        if text not in ("latest", "none") and not (_VERSION.match(text) or _SPECIFIER.match(text)):
            raise DeployError(f"{where}={value!r}: not a version, \"latest\" or \"none\"")
        versions[key] = text
    return versions


def _check(settings: KubernetesConfig, source: dict[str, str]) -> None:
    def name(field: str) -> str:
        return source.get(field, f"[{SECTION}] {field}")

    app = settings.app_name
    if len(app) > MAX_APP_NAME or not _DNS_1035.match(app):
        raise DeployError(
            f"{name('app_name')}={app!r}: use lowercase letters, digits and '-', starting with "
            f"a letter, at most {MAX_APP_NAME} characters (it names Kubernetes objects)")
    if len(settings.namespace) > 63 or not _DNS_1123.match(settings.namespace):
        raise DeployError(f"{name('namespace')}={settings.namespace!r}: not a valid namespace name")
    if settings.service_type not in SERVICE_TYPES:
        raise DeployError(f"{name('service_type')}={settings.service_type!r}: use one of "
                          + ", ".join(SERVICE_TYPES))
    if settings.service_type != "ClusterIP" and not 30000 <= settings.node_port <= 32767:
        raise DeployError(f"{name('node_port')}={settings.node_port}: a NodePort must be in "
                          "30000-32767")
    for field in ("cpu_request", "cpu_limit", "memory_request", "memory_limit",
                  "mongodb_storage", "postgres_storage"):
        value = getattr(settings, field)
        if value is not None and not _QUANTITY.match(value):
            raise DeployError(f"{name(field)}={value!r}: not a Kubernetes quantity "
                              "(e.g. 250m, 0.5, 512Mi, 1Gi)")
    for field in ("readiness_initial_delay", "liveness_initial_delay"):
        if getattr(settings, field) < 0:
            raise DeployError(f"{name(field)}: must be 0 or more seconds")
    for field in ("readiness_period", "liveness_period", "liveness_failure_threshold",
                  "replicas"):
        if getattr(settings, field) < 1:
            raise DeployError(f"{name(field)}: must be at least 1")
    if settings.max_replicas < settings.replicas:
        raise DeployError(f"{name('max_replicas')}={settings.max_replicas}: must be at least "
                          f"the replicas ({settings.replicas})")
    if not 1 <= settings.target_cpu_utilization <= 100:
        raise DeployError(f"{name('target_cpu_utilization')}: must be a percentage 1-100")
    for field in ("image", "runtime_image", "base_image", "mongodb_image", "redis_image",
                  "postgres_image"):
        value = getattr(settings, field)
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise DeployError(f"{name(field)}={value!r}: not an image reference")
    if settings.poll_interval_seconds <= 0:
        raise DeployError(f"{name('poll_interval_seconds')}: must be positive")
    if settings.database is not None and settings.database not in DATABASE_CHOICES:
        raise DeployError(f"{name('database')}={settings.database!r}: use one of "
                          + ", ".join(DATABASE_CHOICES))
    if settings.mongodb and settings.postgres:
        raise DeployError(f"{name('mongodb')} and {name('postgres')}: choose one graph store")


def resolve(settings: Settings, env: Mapping[str, str], *, secrets: bool = True) -> KubeSettings:
    """Combine jac.toml and the environment into checked KubeSettings.

    With `secrets=False` (destroy) the secret values are not resolved, so a
    variable that is no longer set does not stop a clean-up.
    """
    section = settings.sections.get(SECTION)
    config = section if isinstance(section, KubernetesConfig) else KubernetesConfig()
    values = msgspec.structs.asdict(config)
    types = _field_types()
    source: dict[str, str] = {}
    for var, field in ENV_VARS.items():
        for spelling in (var, var.upper()):
            if env.get(spelling, "").strip():  # an empty variable counts as unset
                values[field] = _parse_env(spelling, env[spelling], types.get(field, str))
                source[field] = spelling
                break
    if values.get("database") == "postgres":
        values["postgres"] = True
    elif values.get("database") == "mongodb":
        values["mongodb"] = True
    checked = KubernetesConfig(**values)
    _check(checked, source)
    resolved = msgspec.structs.asdict(checked)
    resolved["cpu_request"] = checked.cpu_request or DEFAULT_CPU_REQUEST
    resolved["memory_request"] = checked.memory_request or DEFAULT_MEMORY_REQUEST
    versions = parse_plugin_versions(_raw_table(settings.toml, VERSIONS_SECTION))
    raw_secrets = _raw_table(settings.toml, SECRETS_SECTION)
    values = resolve_secrets(raw_secrets, env) if secrets else dict.fromkeys(raw_secrets, "")
    kube = KubeSettings(**resolved, plugin_versions=versions, secrets=values)
    if kube.replicas > 1 and not kube.shared_store:
        raise DeployError(
            f"{source.get('replicas', f'[{SECTION}] replicas')}={kube.replicas} needs a shared "
            "store (each pod of the embedded SQLite store has its own data): set K8s_POSTGRES=true, "
            f"K8s_MONGODB=true, or DATABASE_URL / MONGODB_URI in [{SECRETS_SECTION}]")
    return kube
