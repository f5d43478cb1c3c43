"""Typed settings: defaults < jac.toml < environment < CLI flags.

Plugins declare the jac.toml sections they read through the
`jacscale_config_sections` hook; each section is decoded into a msgspec Struct.
Unknown keys are collected in `Settings.warnings` and printed at start-up; a
value of the wrong type stops start-up with a message naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and key."""


class ApiConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.api]`: how walkers are exposed over HTTP."""

    envelope: bool = True
    docs_enabled: bool = True
    max_body_bytes: int = 1024 * 1024
    cors_allow_origins: list[str] = msgspec.field(default_factory=list)
    cors_allow_credentials: bool = False
    max_replays: int = 25
    walker_timeout_seconds: float = 60.0
    strict_fields: bool = False
    stream_idle_seconds: float = 120.0
    stream_total_seconds: float = 1800.0
    max_response_bytes: int = 64 * 1024 * 1024
    max_json_depth: int = 64


class ServerConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.server]`: process settings (the CLI and env override them)."""

    host: str = "0.0.0.0"
    port: int = 8000
    workers: int = 1
    data_dir: str | None = None
    log_format: str = "human"
    thread_pool_size: int = 16
    record_cache_size: int = 200_000  # committed records kept per worker (~1.2 KB each)
    production: bool = False
    shutdown_timeout_seconds: float = 10.0
    shutdown_drain_seconds: float = 3.0
    keep_alive_timeout_seconds: float = 75.0
    body_timeout_seconds: float = 30.0
    min_body_bytes_per_second: float = 1024.0
    server: str = ""  # hypercorn | uvicorn | granian ("" = the default; see launch.py)


class DatabaseConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.database]`: server URIs (MONGODB_URI / REDIS_URL / DATABASE_URL win over these)."""

    mongodb_uri: str | None = None
    database_url: str | None = None
    redis_url: str | None = None


class SchemaConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.schema]`: how records written by older code are read (see schema.py).

    Type names are class names (`Todo`), optionally with their module
    (`app.Todo`); field rules are keyed by the current class name.
    """

    rename_types: dict[str, str] = msgspec.field(default_factory=dict)
    rename_fields: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    drop_fields: dict[str, list[str]] = msgspec.field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)


# Where a database server's URI comes from: the environment, then jac.toml.
DATABASE_ENV: dict[str, str] = {
    "mongodb": "MONGODB_URI",
    "redis": "REDIS_URL",
    "postgres": "DATABASE_URL",
}
DATABASE_KEY: dict[str, str] = {
    "mongodb": "mongodb_uri",
    "redis": "redis_url",
    "postgres": "database_url",
}
DATABASE_SECTION = "plugins.scale.database"


def database_uri(db_type: str, env: Mapping[str, str], toml: Mapping[str, Any]) -> str | None:
    """The URI of the `db_type` server ("mongodb", "redis", "postgres"), or None.

    MONGODB_URI / REDIS_URL / DATABASE_URL in `env` win over `[plugins.scale.database]
    mongodb_uri / redis_url / database_url` in the parsed jac.toml `toml`. A non-string value
    in jac.toml raises ValueError naming the key.
    """
    from_env = env.get(DATABASE_ENV[db_type], "").strip()
    if from_env:
        return from_env
    key = DATABASE_KEY[db_type]
    value = _table(toml, DATABASE_SECTION).get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"jac.toml [{DATABASE_SECTION}] {key} must be a string")
    return value.strip() or None


KERNEL_SECTIONS: dict[str, type] = {
    "plugins.scale.api": ApiConfig,
    "plugins.scale.schema": SchemaConfig,
    "plugins.scale.server": ServerConfig,
    "plugins.scale.database": DatabaseConfig,
}

# Environment variables the kernel reads, mapped to ServerConfig / ApiConfig fields.
ENV_SERVER = {
    "JACSCALE_HOST": "host",
    "JACSCALE_PORT": "port",
    "JACSCALE_WORKERS": "workers",
    "JAC_DATA_PATH": "data_dir",
    "JACSCALE_LOG_FORMAT": "log_format",
    "JACSCALE_THREAD_POOL_SIZE": "thread_pool_size",
    "JACSCALE_RECORD_CACHE_SIZE": "record_cache_size",
    "JACSCALE_SHUTDOWN_DRAIN_SECONDS": "shutdown_drain_seconds",
    "JACSCALE_SERVER": "server",
}
ENV_API = {
    "JACSCALE_MAX_BODY_BYTES": "max_body_bytes",
    "JACSCALE_ENVELOPE": "envelope",
    "JACSCALE_DOCS_ENABLED": "docs_enabled",
    "JACSCALE_MAX_RESPONSE_BYTES": "max_response_bytes",
    "JACSCALE_MAX_JSON_DEPTH": "max_json_depth",
}


@dataclass
class Settings:
    """Everything the server was configured with, resolved once at start-up."""

    app_path: Path
    toml_path: Path | None
    toml: dict[str, Any]
    server: ServerConfig
    api: ApiConfig
    sections: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reload: bool = False
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def app_dir(self) -> Path:
        """The directory holding the Jac program."""
        return self.app_path.parent

    @property
    def data_dir(self) -> Path:
        """Where the embedded store and generated secrets live."""
        if self.server.data_dir:
            path = Path(self.server.data_dir)
            return path if path.is_absolute() else (self.app_dir / path).resolve()
        return self.app_dir / ".jac" / "data"

    @property
    def production(self) -> bool:
        """True under `--production` or JACSCALE_ENV=production."""
        return self.server.production

    def section(self, name: str) -> Any:
        """The decoded jac.toml section `name` (its defaults when absent)."""
        return self.sections[name]


def find_toml(app_path: Path) -> Path | None:
    """The jac.toml beside the app or in the nearest parent directory."""
    for directory in [app_path.parent, *app_path.parent.parents]:
        candidate = directory / "jac.toml"
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path | None) -> dict[str, Any]:
    """Parse jac.toml, naming the file on a syntax error."""
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _table(toml: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    node: Any = toml
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return dict(node) if isinstance(node, Mapping) else {}


def decode_section(
    toml: Mapping[str, Any], name: str, struct: type, where: str, warnings: list[str]
) -> Any:
    """Decode one jac.toml table into `struct`, recording unknown keys as warnings."""
    raw = _table(toml, name)
    if not hasattr(struct, "__struct_fields__"):  # a free-form table, e.g. dict[str, str]
        raw = {k: v for k, v in raw.items() if not isinstance(v, Mapping)}
        try:
            return msgspec.convert(raw, struct, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{where}: [{name}] {exc}") from exc
    known = set(getattr(struct, "__struct_fields__", ()))
    # Nested tables (e.g. [plugins.scale.kubernetes.plugin_versions]) belong to
    # other sections when the struct does not declare them.
    for key in sorted(set(raw) - known):
        if isinstance(raw[key], Mapping):
            raw.pop(key)
            continue
        warnings.append(f"{where}: unknown key [{name}] {key} (ignored)")
        raw.pop(key)
    try:
        return msgspec.convert(raw, struct, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: [{name}] {exc}") from exc


def _unknown_sections(toml: Mapping[str, Any], known: set[str], where: str) -> list[str]:
    scale = _table(toml, "plugins.scale")
    out = []
    for key, value in scale.items():
        name = f"plugins.scale.{key}"
        if not isinstance(value, Mapping):
            out.append(f"{where}: unknown key [plugins.scale] {key} (ignored)")
        elif name not in known and not any(k.startswith(name + ".") for k in known):
            out.append(f"{where}: unknown section [{name}] (no loaded plugin reads it)")
    return out


def merge_struct(
    struct: Any, updates: Mapping[str, Any], where: str, error: type[ConfigError] = ConfigError
) -> Any:
    """`struct` with `updates` (field: value, strings converted) applied.

    A value of the wrong type raises `error` naming `where` (e.g. "environment").
    """
    if not updates:
        return struct
    merged = msgspec.to_builtins(struct) | dict(updates)
    try:
        return msgspec.convert(merged, type(struct), strict=False)
    except msgspec.ValidationError as exc:
        raise error(f"{where}: {exc}") from exc


def _apply_env(struct: Any, mapping: dict[str, str], env: Mapping[str, str]) -> Any:
    updates = {attr: env[var] for var, attr in mapping.items() if env.get(var, "") != ""}
    return merge_struct(struct, updates, "environment")


def default_settings(
    app_path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Settings:
    """Settings of a program outside a server: the defaults, jac.toml not decoded."""
    server, api = ServerConfig(), ApiConfig()
    sections = {
        "plugins.scale.server": server,
        "plugins.scale.api": api,
        "plugins.scale.database": DatabaseConfig(),
    }
    return Settings(
        app_path=Path(app_path).resolve(),
        toml_path=None,
        toml={},
        server=server,
        api=api,
        sections=sections,
        env=os.environ if env is None else env,
    )


def load_settings(
    app_path: str | os.PathLike[str],
    plugin_sections: Mapping[str, type] | None = None,
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings for the program at `app_path` in priority order."""
    env = os.environ if env is None else env
    path = Path(app_path).resolve()
    toml_path = find_toml(path)
    toml = read_toml(toml_path)
    where = str(toml_path) if toml_path else "jac.toml"
    warnings: list[str] = []
    all_sections = {**KERNEL_SECTIONS, **(plugin_sections or {})}
    sections = {
        name: decode_section(toml, name, struct, where, warnings)
        for name, struct in all_sections.items()
    }
    warnings.extend(_unknown_sections(toml, set(all_sections), where))
    server = _apply_env(sections["plugins.scale.server"], ENV_SERVER, env)
    if env.get("JACSCALE_ENV", "").lower() == "production":
        server = msgspec.structs.replace(server, production=True)
    api = _apply_env(sections["plugins.scale.api"], ENV_API, env)
    reload = False
    if cli:
        overrides = {k: v for k, v in cli.items() if v is not None and k != "reload"}
        server = msgspec.structs.replace(server, **overrides)
        reload = bool(cli.get("reload"))
    sections["plugins.scale.server"] = server
    sections["plugins.scale.api"] = api
    if server.workers < 1:
        raise ConfigError("workers must be at least 1")
    if server.record_cache_size < 1:
        raise ConfigError("[plugins.scale.server] record_cache_size must be at least 1")
    if api.max_body_bytes < 1:
        raise ConfigError("[plugins.scale.api] max_body_bytes must be positive")
    for key in ("stream_idle_seconds", "stream_total_seconds"):
        if getattr(api, key) <= 0:
            raise ConfigError(f"[plugins.scale.api] {key} must be positive")
    if api.max_response_bytes < 1 or api.max_json_depth < 1:
        raise ConfigError("[plugins.scale.api] max_response_bytes and max_json_depth must be positive")
    return Settings(
        app_path=path,
        toml_path=toml_path,
        toml=toml,
        server=server,
        api=api,
        sections=sections,
        warnings=warnings,
        reload=reload,
        env=env,
    )
