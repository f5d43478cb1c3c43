"""`[plugins.scale.webhook]` and the server-wide webhook secret.

Options from the reference (`secret`, `signature_header`, `verify_signature`,
`api_key_expiry_days`) plus ours: the signature `scheme` (per walker under
`[plugins.scale.webhook.walkers.<Walker>]`), the replay window, the body cap.

The server-wide secret (`WEBHOOK_SECRET`, else `secret`) only protects per-key
signing secrets at rest; the reference document's scheme never needs it. It has no usable
default: the reference's example values are refused, as is anything shorter
than 32 characters, and schemes that need signing secrets refuse to start
without it.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

SECTION = "plugins.scale.webhook"
ENV_SECRET = "WEBHOOK_SECRET"
MIN_SECRET_LENGTH = 32
MAX_EXPIRY_DAYS = 36_500
# Values published in the jac-scale documentation: anyone could know them.
PUBLIC_SECRETS = frozenset(
    {"webhook-secret-key", "your-webhook-secret-key", "your-secure-random-secret"}
)


class WalkerWebhookConfig(msgspec.Struct, kw_only=True):
    """`[plugins.scale.webhook.walkers.<Walker>]`: overrides for one webhook walker.

    `ignore_unknown_fields` lets services that post large payloads (GitHub,
    Stripe) call a walker that declares only the fields it wants.
    """

    scheme: str | None = None
    ignore_unknown_fields: bool = False


class WebhookConfig(msgspec.Struct, kw_only=True):
    """The `[plugins.scale.webhook]` section."""

    secret: str = ""
    signature_header: str = "X-Webhook-Signature"
    verify_signature: bool = True
    api_key_expiry_days: int = 365
    scheme: str = "api-key"
    timestamp_header: str = "X-Webhook-Timestamp"
    id_header: str = "X-Webhook-Id"
    replay_window_seconds: int = 300
    max_body_bytes: int = 1024 * 1024
    max_keys_per_user: int = 100
    walkers: dict[str, WalkerWebhookConfig] = msgspec.field(default_factory=dict)

    def problems(self) -> list[str]:
        """What is wrong with these values (empty when usable)."""
        out = []
        if not 0 <= self.api_key_expiry_days <= MAX_EXPIRY_DAYS:
            out.append(f"[{SECTION}] api_key_expiry_days must be 0..{MAX_EXPIRY_DAYS}")
        if self.replay_window_seconds < 1:
            out.append(f"[{SECTION}] replay_window_seconds must be at least 1")
        if self.max_body_bytes < 1:
            out.append(f"[{SECTION}] max_body_bytes must be at least 1")
        if self.max_keys_per_user < 1:
            out.append(f"[{SECTION}] max_keys_per_user must be at least 1")
        for name in ("signature_header", "timestamp_header", "id_header"):
            if not getattr(self, name).strip():
                out.append(f"[{SECTION}] {name} must not be empty")
        return out


def resolve_secret(config: WebhookConfig, env: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The usable server-wide secret (or None) and warnings about refused values."""
    warnings: list[str] = []
    for source, value in ((ENV_SECRET, env.get(ENV_SECRET, "")), (f"[{SECTION}] secret", config.secret)):
        value = value.strip()
        if not value:
            continue
        if value in PUBLIC_SECRETS:
            warnings.append(
                f"{source} is the example value from the documentation; ignored. "
                f"Set {ENV_SECRET} to a random string of at least {MIN_SECRET_LENGTH} characters."
            )
            continue
        if len(value) < MIN_SECRET_LENGTH:
            warnings.append(
                f"{source} is shorter than {MIN_SECRET_LENGTH} characters; ignored."
            )
            continue
        return value, warnings
    return None, warnings
