"""Password hashing: argon2id, OWASP parameters by default, off the event loop."""

from __future__ import annotations

import threading

import anyio
import pytest

from jacscale_ext.auth import passwords
from jacscale_ext.auth.config import AuthConfig, AuthConfigError, hash_params
from jacscale_ext.auth.passwords import FAST_FOR_TESTS, OWASP_MINIMUM, HashParams, PasswordHasher


@pytest.fixture(scope="module")
def fast() -> PasswordHasher:
    return PasswordHasher(FAST_FOR_TESTS)


def test_production_default_is_owasp_argon2id_minimum() -> None:
    assert OWASP_MINIMUM == HashParams(memory_kib=19456, time_cost=2, parallelism=1)
    assert hash_params(AuthConfig(), production=True) == OWASP_MINIMUM
    assert hash_params(AuthConfig(), production=False) == OWASP_MINIMUM
    hasher = PasswordHasher()
    assert hasher.params == OWASP_MINIMUM


def test_stored_string_records_algorithm_and_parameters() -> None:
    stored = PasswordHasher().hash_sync("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_verify_right_and_wrong(fast: PasswordHasher) -> None:
    stored = fast.hash_sync("s3cret!")
    assert fast.verify_sync(stored, "s3cret!")
    assert not fast.verify_sync(stored, "s3cret")
    assert not fast.verify_sync(stored, "")


def test_same_password_different_salt(fast: PasswordHasher) -> None:
    assert fast.hash_sync("pw-pw-pw") != fast.hash_sync("pw-pw-pw")


def test_missing_or_garbage_hash_is_a_mismatch(fast: PasswordHasher) -> None:
    assert not fast.verify_sync(None, "x")
    assert not fast.verify_sync("not-a-hash", "x")
    assert not fast.verify_sync("$argon2id$v=19$m=1,t=1,p=1$AAAA$BBBB", "x")


def test_needs_rehash_when_parameters_rise(fast: PasswordHasher) -> None:
    weak = fast.hash_sync("pw123456")
    strong = PasswordHasher(HashParams(memory_kib=128, time_cost=2, parallelism=1))
    assert strong.needs_rehash(weak)
    assert strong.verify_sync(weak, "pw123456"), "old hashes keep verifying"
    assert not strong.needs_rehash(strong.hash_sync("pw123456"))
    assert strong.needs_rehash("garbage")


def test_fast_mode_refused_in_production() -> None:
    assert hash_params(AuthConfig(password_hash="fast"), production=False) == FAST_FOR_TESTS
    with pytest.raises(AuthConfigError, match="refused in production"):
        hash_params(AuthConfig(password_hash="fast"), production=True)


def test_below_owasp_refused_in_production() -> None:
    weak = AuthConfig(hash_memory_kib=4096)
    assert hash_params(weak, production=False).memory_kib == 4096
    with pytest.raises(AuthConfigError, match="OWASP"):
        hash_params(weak, production=True)


def test_bad_parameters_named() -> None:
    with pytest.raises(AuthConfigError, match="parallelism"):
        hash_params(AuthConfig(hash_parallelism=0), production=False)
    with pytest.raises(AuthConfigError, match="password_hash must be"):
        hash_params(AuthConfig(password_hash="md5"), production=False)


def test_async_hash_runs_in_a_worker_thread(
    fast: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = fast.hash_sync

    def spy(password: str) -> str:
        seen.append(threading.current_thread().name)
        return real(password)

    monkeypatch.setattr(fast, "hash_sync", spy)

    async def main() -> tuple[str, bool]:
        stored = await fast.hash("pw-async")
        return stored, await fast.verify(stored, "pw-async")

    stored, ok = anyio.run(main)
    assert ok and stored.startswith("$argon2id$")
    assert seen and seen[0] != threading.main_thread().name


def test_event_loop_stays_responsive_while_hashing() -> None:
    hasher = PasswordHasher()  # the real, slow parameters

    async def main() -> int:
        ticks = 0
        done = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await hasher.hash("slow and steady")
            done.set()
        return ticks

    assert anyio.run(main) >= 3


def test_unknown_user_costs_a_verification(
    fast: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = fast._verify_dummy

    def spy(password: str) -> None:
        calls.append(password)
        real(password)

    monkeypatch.setattr(fast, "_verify_dummy", spy)
    assert not fast.verify_sync(None, "whatever")
    assert not fast.verify_sync("garbage", "whatever")
    assert calls == ["whatever", "whatever"], "a dummy hash is verified for a missing account"
    assert fast._dummy_hash is not None and fast._dummy_hash.startswith("$argon2id$")


def test_default_concurrency_bounded() -> None:
    assert passwords._default_concurrency() >= 2


def test_bcrypt_hashes_imported_from_jac_scale_verify_and_ask_for_a_rehash(
    fast: PasswordHasher,
) -> None:
    import bcrypt

    stored = bcrypt.hashpw(b"old-pass-123", bcrypt.gensalt(rounds=4)).decode()
    assert fast.verify_sync(stored, "old-pass-123") is True
    assert fast.verify_sync(stored, "old-pass-124") is False
    assert fast.needs_rehash(stored) is True  # the login path then stores argon2id
    # bcrypt reads 72 bytes; jac-scale's bcrypt 4 hashed longer passwords cut there.
    long = "x" * 80
    cut = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert fast.verify_sync(cut, long) is True
    assert fast.verify_sync("$2b$12$not-a-real-hash", "old-pass-123") is False
