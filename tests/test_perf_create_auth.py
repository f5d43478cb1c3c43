"""Cheaper authenticated requests, same verdicts.

- A remembered token skips parsing and crypto, never a claim check.
- A token older than the cached user's session generation is refused without a
  store read (generations only grow); a newer one still re-reads the user.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import pytest

from jacscale_core.errors import ApiError
from jacscale_core.testing.memory_docs import MemoryDocs
from jacscale_ext.auth import tokens as tokens_module
from jacscale_ext.auth.accounts import Accounts
from jacscale_ext.auth.passwords import FAST_FOR_TESTS, PasswordHasher
from jacscale_ext.auth.schemas import RegisterForm
from jacscale_ext.auth.throttle import FailureThrottle
from jacscale_ext.auth.tokens import TokenError, TokenService
from jacscale_ext.auth.users import UserStore

SECRET = "s" * 48


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_a_remembered_token_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService(SECRET)
    token = service.issue("user-1").token
    calls = []
    real = tokens_module.jwt.decode
    monkeypatch.setattr(
        tokens_module.jwt, "decode", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    for _ in range(3):
        assert service.verify(token)["sub"] == "user-1"
    assert len(calls) == 1


def test_refused_tokens_are_not_remembered() -> None:
    service = TokenService(SECRET)
    head, body, sig = service.issue("user-1").token.split(".")
    forged = f"{head}.{body}.{sig[:-2]}AA"
    for _ in range(2):
        with pytest.raises(TokenError, match="bad signature"):
            service.verify(forged)
    assert forged not in service._verified


def test_another_header_on_a_remembered_token_is_checked_afresh() -> None:
    service = TokenService(SECRET)
    token = service.issue("user-1").token
    service.verify(token)
    head, body, sig = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    for changed, reason in [
        ({**header, "alg": "none"}, "algorithm"),
        ({**header, "alg": "HS512"}, "algorithm"),
        ({**header, "kid": "k0000000000000000"}, "unknown key id"),
        ({**header, "crit": ["exp"]}, "unsupported header"),
        ({**header, "typ": "at+jwt"}, "bad signature"),  # same alg and key: the MAC fails
    ]:
        with pytest.raises(TokenError, match=reason):
            service.verify(f"{_b64(changed)}.{body}.{sig}")
    with pytest.raises(TokenError, match="not a compact JWS"):
        service.verify(f"{head}.{body}")


def test_remembered_tokens_still_meet_every_time_check() -> None:
    now = [1_000_000.0]
    service = TokenService(SECRET, clock=lambda: now[0], lifetime_seconds=60, leeway_seconds=5)
    token = service.issue("user-1").token
    service.verify(token)
    now[0] -= 6  # before iat/nbf, past the leeway
    with pytest.raises(TokenError, match="issued in the future"):
        service.verify(token)
    now[0] += 1  # within the leeway
    assert service.verify(token)["sub"] == "user-1"
    now[0] = 1_000_000.0 + 60 + 4.9  # exp, within the leeway
    assert service.verify(token)["sub"] == "user-1"
    now[0] += 0.1
    with pytest.raises(TokenError, match="expired"):
        service.verify(token)


def test_remembered_tokens_meet_the_claim_checks_of_each_call() -> None:
    service = TokenService(SECRET)
    token = service.issue("user-1", token_type="state").token
    assert service.verify(token, token_types=("state",))["token_type"] == "state"
    with pytest.raises(TokenError, match="wrong token type"):
        service.verify(token)
    other = TokenService(SECRET, issuer="someone-else")
    with pytest.raises(TokenError, match="wrong issuer"):
        other.verify(token, token_types=("state",))


class CountingDocs(MemoryDocs):
    """Counts reads of user documents."""

    def __init__(self) -> None:
        super().__init__()
        self.user_reads = 0

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        if collection == "users":
            self.user_reads += 1
        return super().get(collection, doc_id)


def _accounts(docs: MemoryDocs, cache_seconds: float = 60.0) -> Accounts:
    async def create_root() -> str:
        return "r" * 32

    return Accounts(
        store=UserStore(docs),
        hasher=PasswordHasher(FAST_FOR_TESTS),
        tokens=TokenService(SECRET),
        throttle=FailureThrottle({}),
        create_root=create_root,
        user_cache_seconds=cache_seconds,
    )


def _refused(accounts: Accounts, token: str) -> bool:
    async def main() -> bool:
        try:
            await accounts.verify_token(token)
        except ApiError as exc:
            assert exc.code == "UNAUTHORIZED"
            return True
        return False

    return anyio.run(main)


def test_tokens_from_before_a_password_change_are_refused_without_store_reads() -> None:
    docs = CountingDocs()
    accounts = _accounts(docs)
    user = anyio.run(accounts.register, RegisterForm("a@example.com", None, "pw-123456"))
    old = accounts.issue(user).token.token
    assert not _refused(accounts, old)
    updated = accounts.store.set_password(user.user_id, "h", new_session=True)
    accounts._forget(user.user_id)
    new = accounts.issue(updated).token.token
    assert not _refused(accounts, new)  # caches the record of generation 1
    reads = docs.user_reads
    for _ in range(5):
        assert _refused(accounts, old)
    assert docs.user_reads == reads  # the cached generation is enough to refuse


def test_a_token_newer_than_the_cached_user_still_reads_it_afresh() -> None:
    docs = CountingDocs()
    accounts = _accounts(docs)  # this worker
    elsewhere = _accounts(docs)  # another worker, same users
    user = anyio.run(accounts.register, RegisterForm("b@example.com", None, "pw-123456"))
    old = accounts.issue(user).token.token
    assert not _refused(accounts, old)  # this worker caches generation 0
    # The password changes on the other worker, which hands out a generation-1 token.
    updated = elsewhere.store.set_password(user.user_id, "h", new_session=True)
    new = elsewhere.issue(updated).token.token
    reads = docs.user_reads
    assert not _refused(accounts, new)  # newer than the cache: re-read, accepted
    assert docs.user_reads == reads + 1
    assert _refused(accounts, old)
    # A token whose generation is not a number is refused as before (after a re-read).
    forged_gen = accounts.tokens.issue(user.user_id, claims={"sgen": "1"}).token
    assert _refused(accounts, forged_gen)
    # A deleted user's tokens stop working once the cache entry is re-read.
    elsewhere.store.delete(user.user_id)
    accounts._forget(user.user_id)
    assert _refused(accounts, new)
