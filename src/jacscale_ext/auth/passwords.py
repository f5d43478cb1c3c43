"""Password hashing: argon2id, off the event loop, with parameters recorded in each hash.

The stored string is argon2's PHC format, e.g.
`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`: it names the algorithm and its
parameters, so they can be raised later. `needs_rehash` tells the login path
when a stored hash was made with weaker parameters than today's; the caller
then stores a fresh hash made from the password it just verified.

Hashing is CPU- and memory-hard on purpose (~50 ms and 19 MiB each), so it runs
in worker threads behind its own small limiter: a burst of logins cannot take
every thread of the process or all of its memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

import anyio
from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, slots=True)
class HashParams:
    """argon2id cost parameters: memory in KiB, passes, lanes."""

    memory_kib: int
    time_cost: int
    parallelism: int

    def check(self) -> None:
        """Raise ValueError for parameters argon2 refuses or that are unsafe typos."""
        if self.parallelism < 1:
            raise ValueError("password hash parallelism must be at least 1")
        if self.time_cost < 1:
            raise ValueError("password hash time_cost must be at least 1")
        if self.memory_kib < 8 * self.parallelism:
            raise ValueError("password hash memory_kib must be at least 8 x parallelism")


# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1.
OWASP_MINIMUM = HashParams(memory_kib=19456, time_cost=2, parallelism=1)

# Cheap parameters for test suites only ([plugins.scale.auth] password_hash = "fast").
FAST_FOR_TESTS = HashParams(memory_kib=64, time_cost=1, parallelism=1)


# Hashes imported from jac-scale 0.2.31 (`jacscale import-jac-scale`) are bcrypt;
# they verify as they are, and the first successful login replaces them with
# argon2id (`needs_rehash` is True for anything that is not today's argon2id).
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def _bcrypt_verify(stored: str, password: str) -> bool:
    """True if `password` matches a bcrypt hash (a malformed one never matches)."""
    import bcrypt

    try:
        # bcrypt reads at most 72 bytes; jac-scale's bcrypt 4 cut longer ones silently.
        return bool(bcrypt.checkpw(password.encode()[:72], stored.encode()))
    except ValueError:
        return False


def _default_concurrency() -> int:
    return max(2, os.cpu_count() or 2)


class PasswordHasher:
    """Hash and verify passwords with argon2id; every public call is async and thread-backed."""

    def __init__(self, params: HashParams = OWASP_MINIMUM, concurrency: int | None = None) -> None:
        params.check()
        self.params = params
        self._argon = _Argon2(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._limiter = anyio.CapacityLimiter(concurrency or _default_concurrency())
        # Verified against unknown accounts so that "no such user" costs as much
        # as "wrong password" (no user enumeration through timing). Made lazily,
        # in a worker thread, on first use.
        self._dummy_hash: str | None = None

    def hash_sync(self, password: str) -> str:
        """Hash `password` (blocking; prefer `hash`)."""
        return self._argon.hash(password)

    def verify_sync(self, stored: str | None, password: str) -> bool:
        """True if `password` matches `stored` (blocking; prefer `verify`).

        A missing or malformed stored hash verifies the dummy hash and answers False,
        so the cost is the same as for a wrong password.
        """
        if not stored:
            self._verify_dummy(password)
            return False
        if stored.startswith(BCRYPT_PREFIXES):
            return _bcrypt_verify(stored, password)
        try:
            return self._argon.verify(stored, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError):
            self._verify_dummy(password)
            return False

    def _verify_dummy(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self._argon.hash(os.urandom(16).hex())
        try:
            self._argon.verify(self._dummy_hash, password)
        except VerifyMismatchError:
            return

    def needs_rehash(self, stored: str) -> bool:
        """True when `stored` was made with other parameters than the current ones."""
        try:
            return self._argon.check_needs_rehash(stored)
        except InvalidHashError:
            return True

    async def hash(self, password: str) -> str:
        """Hash `password` in a worker thread."""
        return await anyio.to_thread.run_sync(
            partial(self.hash_sync, password), limiter=self._limiter
        )

    async def verify(self, stored: str | None, password: str) -> bool:
        """Check `password` against `stored` in a worker thread (constant-ish cost)."""
        return await anyio.to_thread.run_sync(
            partial(self.verify_sync, stored, password), limiter=self._limiter
        )

    async def burn(self, password: str) -> None:
        """Spend one verification's time for a caller that has no account to check."""
        await anyio.to_thread.run_sync(partial(self._verify_dummy, password), limiter=self._limiter)
