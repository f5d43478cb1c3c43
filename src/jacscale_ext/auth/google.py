"""Google as an OpenID Connect provider (the built-in SSO platform).

Configure with SSO_GOOGLE_CLIENT_ID / SSO_GOOGLE_CLIENT_SECRET or
`[plugins.scale.sso.google] client_id / client_secret`. `discovery_url`
(SSO_GOOGLE_DISCOVERY_URL) points somewhere else only for tests.
"""

from __future__ import annotations

import httpx

from jacscale_ext.auth.config import SsoConfig
from jacscale_ext.auth.sso import OidcProvider

GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"


class GoogleProvider(OidcProvider):
    """Google Sign-In. Google's ID tokens name their issuer with or without https://."""

    extra_issuers = ("accounts.google.com", "https://accounts.google.com")

    def extra_authorize_params(self, operation: str) -> dict[str, str]:
        """Let the user pick an account; ask for consent when registering."""
        return {"prompt": "consent select_account" if operation == "register" else "select_account"}


def google_provider(config: SsoConfig, http: httpx.AsyncClient) -> GoogleProvider | None:
    """The Google provider when a client id and secret are configured, else None."""
    google = config.google
    if not google.client_id or not google.client_secret:
        return None
    return GoogleProvider(
        "google",
        client_id=google.client_id,
        client_secret=google.client_secret,
        discovery_url=google.discovery_url or GOOGLE_DISCOVERY_URL,
        http=http,
        scopes=google.scopes,
        timeout=config.http_timeout_seconds,
    )
