"""Fixtures for the auth tests."""

from __future__ import annotations

import os

import pytest

AUTH_ENV_PREFIXES = ("JWT_", "SSO_", "JACSCALE_PASSWORD_HASH", "JACSCALE_ENV", "JACSCALE_REGISTER_")


@pytest.fixture(autouse=True)
def clean_auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without auth environment variables (a module-wide TestApp sets them)."""
    for name in list(os.environ):
        if name.startswith(AUTH_ENV_PREFIXES):
            monkeypatch.delenv(name)
