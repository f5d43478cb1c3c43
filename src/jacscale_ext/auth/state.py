"""What auth builds at start-up, kept in `app.state["auth"]` for routes and hooks."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import msgspec
from starlette.requests import HTTPConnection

from jacscale_core.context import AppContext
from jacscale_core.errors import ApiError
from jacscale_ext.auth.accounts import Accounts
from jacscale_ext.auth.config import (
    AuthConfig,
    JwtConfig,
    SsoConfig,
    auth_from_env,
    hash_params,
    jwt_from_env,
    sso_from_env,
)
from jacscale_ext.auth.passwords import PasswordHasher
from jacscale_ext.auth.schemas import PasswordRules
from jacscale_ext.auth.secret import resolve_secret
from jacscale_ext.auth.throttle import DocumentFailureLog, FailureThrottle, Limit
from jacscale_ext.auth.tokens import TokenService
from jacscale_ext.auth.users import UserStore

log = logging.getLogger("jacscale.auth")

STATE_KEY = "auth"


@dataclass
class AuthState:
    """The auth services of one worker process."""

    jwt: JwtConfig
    auth: AuthConfig
    sso: SsoConfig
    tokens: TokenService
    accounts: Accounts
    rules: PasswordRules
    http: httpx.AsyncClient
    providers: dict[str, Any] = field(default_factory=dict)

    def client_ip(self, conn: HTTPConnection) -> str:
        """The caller's address (the last X-Forwarded-For hop when a proxy is trusted)."""
        if self.auth.trust_forwarded_for:
            forwarded = conn.headers.get("x-forwarded-for", "")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            if hops:
                return hops[-1]
        return conn.client.host if conn.client else "unknown"


def environment(app: AppContext) -> Mapping[str, str]:
    """The environment the app was configured from (the kernel's, else the process's)."""
    env = getattr(app.settings, "env", None)
    return env if isinstance(env, Mapping) else os.environ


async def build_state(app: AppContext) -> AuthState:
    """Resolve configuration and the secret, and make the services (refuses unsafe setups)."""
    env = environment(app)
    jwt_cfg = jwt_from_env(app.config_section("plugins.scale.jwt"), env)
    auth_cfg = auth_from_env(app.config_section("plugins.scale.auth"), env)
    sso_cfg = sso_from_env(app.config_section("plugins.scale.sso"), env)
    production = app.settings.production
    if sso_cfg.allow_loopback_redirects is None:
        # Desktop-app callbacks on 127.0.0.1 are a development convenience.
        sso_cfg = msgspec.structs.replace(sso_cfg, allow_loopback_redirects=not production)
    params = hash_params(auth_cfg, production)
    resolved = await anyio.to_thread.run_sync(
        resolve_secret, jwt_cfg, app.settings.data_dir, production
    )
    for warning in resolved.warnings:
        log.warning(warning)
    previous = [s for s in jwt_cfg.previous_secrets if s]
    tokens = TokenService(
        resolved.secret,
        jwt_cfg.algorithm,
        previous_secrets=previous,
        issuer=jwt_cfg.issuer,
        audience=jwt_cfg.audience,
        lifetime_seconds=max(1, int(jwt_cfg.exp_delta_days * 86400)),
        leeway_seconds=jwt_cfg.leeway_seconds,
    )
    window = auth_cfg.login_window_seconds
    per_account = Limit(auth_cfg.login_max_failures_per_account, window)
    throttle = FailureThrottle(
        {
            "account": per_account,  # password checks of a signed-in user
            "login-pair": per_account,  # one account from one address: refused
            "login-account": per_account,  # one account from anywhere: slowed down
            "ip": Limit(auth_cfg.login_max_failures_per_ip, window),
            "register-ip": Limit(auth_cfg.register_max_per_ip, auth_cfg.register_window_seconds),
        },
        log=DocumentFailureLog(app.store.docs),
    )
    accounts = Accounts(
        store=UserStore(app.store.docs),
        hasher=PasswordHasher(params, auth_cfg.hash_concurrency or None),
        tokens=tokens,
        throttle=throttle,
        create_root=app.executor.create_root,
        user_cache_seconds=auth_cfg.user_cache_seconds,
        max_session_seconds=jwt_cfg.max_session_days * 86400,
        slow_down_seconds=auth_cfg.login_slow_down_seconds,
    )
    log.info(
        "auth: JWT %s from %s, kid %s (+%d previous); password hash %s m=%d t=%d p=%d",
        jwt_cfg.algorithm,
        resolved.source,
        tokens.kid,
        len(tokens.key_ids) - 1,
        auth_cfg.password_hash,
        params.memory_kib,
        params.time_cost,
        params.parallelism,
    )
    http = httpx.AsyncClient(timeout=sso_cfg.http_timeout_seconds, follow_redirects=False)
    rules = PasswordRules(auth_cfg.min_password_length, auth_cfg.max_password_length)
    return AuthState(jwt_cfg, auth_cfg, sso_cfg, tokens, accounts, rules, http)


def get_state(app: AppContext) -> AuthState:
    """The running auth state; 503 if start-up has not run (or failed)."""
    state = app.state.get(STATE_KEY)
    if not isinstance(state, AuthState):
        raise ApiError("UNAVAILABLE", "Authentication is not ready")
    return state
