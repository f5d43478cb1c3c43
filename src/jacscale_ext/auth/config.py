"""The jac.toml sections auth reads, and how the environment overrides them.

Priority (the reference document): CLI > environment > jac.toml > default.

- `[plugins.scale.jwt]`: JWT_SECRET, JWT_ALGORITHM, JWT_EXP_DELTA_DAYS,
  JWT_PREVIOUS_SECRETS (comma-separated), JWT_ISSUER, JWT_AUDIENCE.
- `[plugins.scale.auth]`: password hashing, password rules, login throttling.
  JACSCALE_PASSWORD_HASH=fast selects cheap hashing for test suites (refused
  in production).
- `[plugins.scale.sso]` with one sub-table per provider (`[plugins.scale.sso.google]`):
  SSO_HOST, SSO_FRONTEND_REDIRECT, SSO_GOOGLE_CLIENT_ID,
  SSO_GOOGLE_CLIENT_SECRET, SSO_GOOGLE_DISCOVERY_URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from jacscale_core.config import ConfigError, merge_struct
from jacscale_ext.auth.passwords import FAST_FOR_TESTS, OWASP_MINIMUM, HashParams


class JwtConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.jwt]`."""

    secret: str = ""
    algorithm: str = "HS256"
    exp_delta_days: float = 7.0
    issuer: str = "jacscale"
    audience: str = "jacscale"
    previous_secrets: list[str] = msgspec.field(default_factory=list)
    leeway_seconds: int = 30
    secret_file: str = ""
    max_session_days: float = 30.0  # refresh stops this long after the login (0: never)


class AuthConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.auth]`: passwords and login throttling."""

    password_hash: str = "argon2id"  # "argon2id" | "fast" (tests only)
    hash_memory_kib: int = OWASP_MINIMUM.memory_kib
    hash_time_cost: int = OWASP_MINIMUM.time_cost
    hash_parallelism: int = OWASP_MINIMUM.parallelism
    hash_concurrency: int = 0  # 0: max(2, CPU count)
    min_password_length: int = 6
    max_password_length: int = 1024
    login_max_failures_per_account: int = 10
    login_max_failures_per_ip: int = 50
    login_window_seconds: float = 900.0
    login_slow_down_seconds: float = 3.0
    register_max_per_ip: int = 20
    register_window_seconds: float = 600.0
    trust_forwarded_for: bool = False
    user_cache_seconds: float = 2.0
    # Account flows (jacscale_ext.auth.account_flows): emailed one-time links.
    reset_token_ttl_seconds: int = 1800
    verify_token_ttl_seconds: int = 86400
    reset_url_template: str = ""  # e.g. "https://app.example.com/reset#token={token}"
    verify_url_template: str = ""
    email_max_per_identity: int = 5  # reset/verification emails per address per window
    email_window_seconds: float = 3600.0


class SsoProviderConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.sso.<platform>]`: one OpenID Connect client registration."""

    client_id: str = ""
    client_secret: str = ""
    discovery_url: str = ""
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "email", "profile"])


class SsoConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.sso]`."""

    host: str = "http://localhost:8000"
    frontend_redirect: str = ""
    client_auth_callback_url: str = ""  # jac-scale's name for frontend_redirect
    allowed_redirects: list[str] = msgspec.field(default_factory=list)
    allow_loopback_redirects: bool | None = None  # None: true in development, false in production
    token_in: str = "fragment"  # "fragment" | "query"
    auto_register: bool = True
    link_by_email: bool = True
    flow_timeout_seconds: int = 600
    http_timeout_seconds: float = 10.0
    google: SsoProviderConfig = msgspec.field(default_factory=SsoProviderConfig)


SECTIONS: dict[str, type] = {
    "plugins.scale.jwt": JwtConfig,
    "plugins.scale.auth": AuthConfig,
    "plugins.scale.sso": SsoConfig,
}


class AuthConfigError(ConfigError):
    """Auth cannot start with this configuration; the message says what to change."""


def _replace(struct: Any, updates: dict[str, Any], where: str) -> Any:
    return merge_struct(struct, updates, where, AuthConfigError)


def jwt_from_env(base: JwtConfig, env: Mapping[str, str]) -> JwtConfig:
    """Apply the JWT_* environment variables over the jac.toml values."""
    names = {
        "JWT_SECRET": "secret",
        "JWT_ALGORITHM": "algorithm",
        "JWT_EXP_DELTA_DAYS": "exp_delta_days",
        "JWT_ISSUER": "issuer",
        "JWT_AUDIENCE": "audience",
        "JWT_SECRET_FILE": "secret_file",
    }
    updates: dict[str, Any] = {attr: env[var] for var, attr in names.items() if env.get(var)}
    if env.get("JWT_PREVIOUS_SECRETS"):
        updates["previous_secrets"] = [
            s.strip() for s in env["JWT_PREVIOUS_SECRETS"].split(",") if s.strip()
        ]
    config: JwtConfig = _replace(base, updates, "environment JWT_*")
    if config.exp_delta_days <= 0:
        raise AuthConfigError("JWT_EXP_DELTA_DAYS / exp_delta_days must be positive")
    return config


def auth_from_env(base: AuthConfig, env: Mapping[str, str]) -> AuthConfig:
    """Apply JACSCALE_PASSWORD_HASH and JACSCALE_REGISTER_MAX_PER_IP over the jac.toml values."""
    updates: dict[str, Any] = {}
    if env.get("JACSCALE_PASSWORD_HASH"):
        updates["password_hash"] = env["JACSCALE_PASSWORD_HASH"]
    if env.get("JACSCALE_REGISTER_MAX_PER_IP"):
        updates["register_max_per_ip"] = env["JACSCALE_REGISTER_MAX_PER_IP"]
    config: AuthConfig = _replace(base, updates, "environment JACSCALE_*")
    return config


def sso_from_env(base: SsoConfig, env: Mapping[str, str]) -> SsoConfig:
    """Apply SSO_HOST, SSO_FRONTEND_REDIRECT and SSO_GOOGLE_* over the jac.toml values."""
    updates: dict[str, Any] = {}
    if env.get("SSO_HOST"):
        updates["host"] = env["SSO_HOST"]
    if env.get("SSO_FRONTEND_REDIRECT"):
        updates["frontend_redirect"] = env["SSO_FRONTEND_REDIRECT"]
    google = msgspec.to_builtins(base.google)
    for var, attr in (
        ("SSO_GOOGLE_CLIENT_ID", "client_id"),
        ("SSO_GOOGLE_CLIENT_SECRET", "client_secret"),
        ("SSO_GOOGLE_DISCOVERY_URL", "discovery_url"),
    ):
        if env.get(var):
            google[attr] = env[var]
    updates["google"] = google
    return _replace(base, updates, "environment SSO_*")


def hash_params(config: AuthConfig, production: bool) -> HashParams:
    """The argon2id parameters to hash with; refuse weak ones in production."""
    mode = config.password_hash.lower()
    if mode == "fast":
        if production:
            raise AuthConfigError(
                "password_hash = 'fast' (JACSCALE_PASSWORD_HASH=fast) is for tests; "
                "it is refused in production"
            )
        return FAST_FOR_TESTS
    if mode != "argon2id":
        raise AuthConfigError(
            f"[plugins.scale.auth] password_hash must be 'argon2id' or 'fast', not {mode!r}"
        )
    params = HashParams(
        memory_kib=config.hash_memory_kib,
        time_cost=config.hash_time_cost,
        parallelism=config.hash_parallelism,
    )
    try:
        params.check()
    except ValueError as exc:
        raise AuthConfigError(f"[plugins.scale.auth] {exc}") from exc
    weaker = (
        params.memory_kib < OWASP_MINIMUM.memory_kib or params.time_cost < OWASP_MINIMUM.time_cost
    )
    if production and weaker:
        raise AuthConfigError(
            "[plugins.scale.auth] password hash parameters are below the OWASP minimum "
            "(m=19456 KiB, t=2, p=1); refused in production"
        )
    return params
