"""The webhook extension's hook implementations (a built-in plugin).

`POST /webhook/{walker}` for `@restspec(protocol=APIProtocol.WEBHOOK)` walkers,
API key management under `/api-key/*`, signature schemes through
`jacscale_webhook_scheme` (built-ins in `schemes.py`), and a periodic sweep of
expired replay records.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio

from jacscale_core.context import AppContext
from jacscale_core.plugins import hookimpl
from jacscale_ext.webhooks.config import SECTION, WebhookConfig
from jacscale_ext.webhooks.openapi import webhook_paths
from jacscale_ext.webhooks.routes import key_routes, webhook_route
from jacscale_ext.webhooks.state import STATE_KEY, WebhookState, state_of

log = logging.getLogger("jacscale.webhooks")

SWEEP_EVERY_SECONDS = 60.0


@hookimpl
def jacscale_config_sections() -> dict[str, type]:
    """[plugins.scale.webhook]."""
    return {SECTION: WebhookConfig}


@hookimpl
def jacscale_routes(app: AppContext) -> list[Any]:
    """The API key routes and the webhook route."""
    state = state_of(app)
    return [*key_routes(state), webhook_route(state)]


@hookimpl
def jacscale_openapi_paths(app: AppContext) -> dict[str, Any]:
    """Webhook walkers (with their key and signature headers) and the key endpoints."""
    return webhook_paths(state_of(app))


async def _sweep_forever(state: WebhookState) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_SECONDS)
        try:
            removed = await asyncio.to_thread(state.deliveries.sweep)
        except Exception as exc:  # noqa: BLE001 - logged; the next sweep tries again
            log.error("webhooks: sweeping replay records failed: %s", exc)
            continue
        if removed:
            log.debug("webhooks: swept %d expired replay records", removed)


@hookimpl
def jacscale_startup(app: AppContext) -> None:
    """Start the replay-record sweeper when the program has webhook walkers."""
    state = state_of(app)
    if state.policies and not state.tasks:
        state.tasks.append(asyncio.create_task(_sweep_forever(state), name="webhook-sweeper"))


@hookimpl
async def jacscale_user_deleted(app: AppContext, user_id: str) -> None:
    """A deleted user's API keys stop working at once."""
    keys = state_of(app).keys
    await anyio.to_thread.run_sync(keys.revoke_all, user_id)


@hookimpl
async def jacscale_shutdown(app: AppContext) -> None:
    """Stop the sweeper."""
    state = app.state.get(STATE_KEY)
    if not isinstance(state, WebhookState):
        return
    for task in state.tasks:
        task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)
    state.tasks.clear()
