"""The verified-signature cache changes speed only: expiry, type and tampering still fail."""

from __future__ import annotations

import pytest

from jacscale_ext.auth.tokens import TokenError, TokenService


def test_cached_tokens_are_still_checked_on_every_use() -> None:
    now = [1_000_000.0]
    service = TokenService("s" * 48, clock=lambda: now[0], lifetime_seconds=60, leeway_seconds=0)
    token = service.issue("user-1").token
    assert service.verify(token)["sub"] == "user-1"
    assert service.verify(token)["sub"] == "user-1"  # second use: from the cache
    with pytest.raises(TokenError, match="wrong token type"):
        service.verify(token, token_types=("refresh",))
    head, body, sig = token.split(".")
    with pytest.raises(TokenError):
        service.verify(f"{head}.{body}.{sig[:-2]}AA")
    claims = service.verify(token)
    claims["sub"] = "someone-else"  # callers get a copy, never the cached claims
    assert service.verify(token)["sub"] == "user-1"
    now[0] += 61
    with pytest.raises(TokenError, match="expired"):
        service.verify(token)


def test_another_secret_does_not_accept_a_cached_token() -> None:
    token = TokenService("a" * 48).issue("user-1").token
    TokenService("a" * 48).verify(token)
    with pytest.raises(TokenError):
        TokenService("b" * 48).verify(token)
