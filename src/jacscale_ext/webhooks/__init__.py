"""Webhooks: `POST /webhook/{walker}` authenticated by API key and signature.

The plugin module listed in `jacscale_ext.BUILTINS`; its hooks
live in `plugin.py` (and the built-in schemes' hook in `schemes.py`). Pieces:
`config` ([plugins.scale.webhook], WEBHOOK_SECRET), `keys` (durable hashed API
keys, sealed signing secrets), `schemes` (signature checks), `deliveries`
(replay records), `routes`, `openapi`, `state`.
"""

from jacscale_ext.webhooks.plugin import (
    jacscale_config_sections,
    jacscale_openapi_paths,
    jacscale_routes,
    jacscale_shutdown,
    jacscale_startup,
    jacscale_user_deleted,
)
from jacscale_ext.webhooks.schemes import jacscale_webhook_scheme

__all__ = [
    "jacscale_config_sections",
    "jacscale_openapi_paths",
    "jacscale_routes",
    "jacscale_user_deleted",
    "jacscale_shutdown",
    "jacscale_startup",
    "jacscale_webhook_scheme",
]
