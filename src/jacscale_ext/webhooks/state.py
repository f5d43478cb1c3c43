"""The webhook extension's per-worker state, built once from configuration.

Building it resolves every walker's signature scheme through the
`jacscale_webhook_scheme` hook and refuses configurations that cannot work
(an unknown scheme, a scheme that needs signing secrets without WEBHOOK_SECRET,
overrides for walkers that are not webhooks) with a ConfigError naming the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jacscale_core.config import ConfigError
from jacscale_core.context import AppContext
from jacscale_core.program import Endpoint
from jacscale_ext.webhooks.config import ENV_SECRET, SECTION, WebhookConfig, resolve_secret
from jacscale_ext.webhooks.deliveries import DeliveryLog
from jacscale_ext.webhooks.keys import ApiKeyStore, SecretBox
from jacscale_ext.webhooks.schemes import BUILT_IN, WebhookScheme

log = logging.getLogger("jacscale.webhooks")

STATE_KEY = "jacscale_ext.webhooks"


@dataclass
class WalkerPolicy:
    """How one webhook walker is called: its scheme and whether unknown fields are dropped."""

    endpoint: Endpoint
    scheme: WebhookScheme
    ignore_unknown_fields: bool = False


@dataclass
class WebhookState:
    """Keys, deliveries and per-walker policies for this worker."""

    app: AppContext
    config: WebhookConfig
    keys: ApiKeyStore
    deliveries: DeliveryLog
    policies: dict[str, WalkerPolicy]
    signing_enabled: bool
    tasks: list[Any] = field(default_factory=list)

    @property
    def header_names(self) -> dict[str, str]:
        """The configurable header names, for schemes and docs."""
        c = self.config
        return {
            "signature_header": c.signature_header,
            "timestamp_header": c.timestamp_header,
            "id_header": c.id_header,
        }


def _scheme(app: AppContext, name: str, where: str) -> WebhookScheme:
    found = app.pm.hook.jacscale_webhook_scheme(name=name)
    if found is None:
        known = ", ".join(sorted(n for n in BUILT_IN if n != "none"))
        raise ConfigError(f"{where}: unknown webhook scheme {name!r} (known: {known})")
    return found  # type: ignore[no-any-return]


def build_state(app: AppContext, env: Mapping[str, str] | None = None) -> WebhookState:
    """Resolve the configuration into a WebhookState (ConfigError when unusable)."""
    env = os.environ if env is None else env
    config: WebhookConfig = app.config_section(SECTION)
    problems = config.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    secret, warnings = resolve_secret(config, env)
    for warning in warnings:
        log.warning("webhooks: %s", warning)
    webhooks = {e.name: e for e in app.program.endpoints.values() if e.protocol == "webhook"}
    for name in config.walkers:
        if name not in webhooks:
            raise ConfigError(
                f"[{SECTION}.walkers.{name}]: {name} is not a webhook walker of this program"
            )
    policies: dict[str, WalkerPolicy] = {}
    for name, endpoint in webhooks.items():
        override = config.walkers.get(name)
        restspec_scheme = getattr(getattr(endpoint.target, "restspec", None), "webhook_scheme", None)
        chosen = (override.scheme if override else None) or restspec_scheme or config.scheme
        where = f"[{SECTION}.walkers.{name}] scheme" if override and override.scheme else f"[{SECTION}] scheme"
        if not config.verify_signature:
            chosen = "none"
        scheme = _scheme(app, chosen, where)
        if scheme.needs_signing_secret and secret is None:
            raise ConfigError(
                f"{where} = {chosen!r} verifies with per-key signing secrets, which need "
                f"{ENV_SECRET} (or [{SECTION}] secret): a random string of at least 32 characters"
            )
        policies[name] = WalkerPolicy(
            endpoint, scheme, bool(override and override.ignore_unknown_fields)
        )
    if webhooks and not config.verify_signature:
        log.warning(
            "webhooks: verify_signature = false: any holder of an API key can call webhooks "
            "without signing (do not use in production)"
        )
    box = SecretBox(secret) if secret else None
    return WebhookState(
        app=app,
        config=config,
        keys=ApiKeyStore(app.store.docs, box, config.max_keys_per_user),
        deliveries=DeliveryLog(app.store.docs, ttl=2 * config.replay_window_seconds),
        policies=policies,
        signing_enabled=box is not None,
    )


def state_of(app: AppContext) -> WebhookState:
    """The worker's WebhookState, built on first use."""
    state = app.state.get(STATE_KEY)
    if state is None:
        state = build_state(app)
        app.state[STATE_KEY] = state
    return state  # type: ignore[no-any-return]
