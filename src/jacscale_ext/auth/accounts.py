"""Account operations: register, log in, verify a session token, change password, SSO sign-in.

This is the async layer between HTTP routes and the blocking user store: every
store call and every password hash runs in a worker thread. It raises
`ApiError` with the codes of the reference document; messages never say whether an
account exists (login answers "Invalid credentials" for both cases, after the
same amount of hashing work).

A session token is a JWT of type "access" whose subject is the user id and
which carries `root` (the user's root id) and `sgen` (the user's session
generation). A token stops verifying when its user is deleted or when the
password changes (the generation moves on).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import anyio

from jacscale_core.errors import ApiError
from jacscale_core.principal import Principal
from jacscale_ext.auth.passwords import PasswordHasher
from jacscale_ext.auth.schemas import LoginForm, PasswordChangeForm, RegisterForm
from jacscale_ext.auth.throttle import FailureThrottle, Throttled
from jacscale_ext.auth.tokens import IssuedToken, TokenError, TokenService
from jacscale_ext.auth.users import (
    IdentityTaken,
    UserRecord,
    UserStore,
    identity_key,
    new_user_id,
)

log = logging.getLogger("jacscale.auth")
T = TypeVar("T")

INVALID_CREDENTIALS = "Invalid credentials"
INVALID_TOKEN = "Invalid or expired token"
ACCOUNT_DISABLED = "This account is disabled"


def invalid_token() -> ApiError:
    """The one 401 every refused token gets (the reason goes to the debug log only)."""
    return ApiError(
        "UNAUTHORIZED",
        INVALID_TOKEN,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def rate_limited(retry_after: int) -> ApiError:
    """429 with Retry-After."""
    return ApiError(
        "RATE_LIMITED",
        "Too many failed attempts; try again later",
        headers={"Retry-After": str(retry_after)},
        details=[{"loc": [], "msg": f"retry after {retry_after} s", "type": "rate_limited"}],
    )


@dataclass(slots=True)
class Session:
    """A signed-in user and the token that proves it."""

    user: UserRecord
    token: IssuedToken

    def answer(self) -> dict[str, Any]:
        """The `POST /user/login` answer."""
        return {
            "access_token": self.token.token,
            "token_type": "bearer",
            "expires_in": self.token.expires_in,
            "user_id": self.user.user_id,
            "root_id": self.user.root_id,
        }


@dataclass(slots=True)
class _Cached:
    user: UserRecord | None
    until: float


@dataclass
class Accounts:
    """Everything auth does with users, over a UserStore, a hasher, tokens and a throttle."""

    store: UserStore
    hasher: PasswordHasher
    tokens: TokenService
    throttle: FailureThrottle
    create_root: Callable[[], Awaitable[str]]
    user_cache_seconds: float = 2.0
    max_session_seconds: float = 30 * 86400.0
    slow_down_seconds: float = 3.0
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _login_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    # -- users ---------------------------------------------------------------

    async def get_user(self, user_id: str, *, fresh: bool = False) -> UserRecord | None:
        """The user record, from a short-lived per-process cache unless `fresh`."""
        now = time.monotonic()
        hit = self._cache.get(user_id)
        if not fresh and hit is not None and hit.until > now:
            return hit.user
        user = await self._run(self.store.get, user_id)
        if self.user_cache_seconds > 0:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[user_id] = _Cached(user, now + self.user_cache_seconds)
        return user

    def _forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def _create(
        self,
        keys: list[str],
        *,
        email: str | None,
        username: str | None,
        password_hash: str | None,
        email_verified: bool = False,
        sso: dict[str, str] | None = None,
        profile: dict[str, Any] | None = None,
    ) -> UserRecord:
        user_id = new_user_id()
        await self._run(self.store.claim_identities, user_id, keys)
        try:
            root_id = await self.create_root()
            now = time.time()
            record = UserRecord(
                user_id=user_id,
                root_id=root_id,
                email=email,
                username=username,
                password_hash=password_hash,
                created_at=now,
                password_changed_at=now,
                email_verified=email_verified,
                sso=dict(sso or {}),
                profile=dict(profile or {}),
            )
            await self._run(self.store.insert, record)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._run(self.store.release_identities, user_id, keys)
            raise
        return record

    async def _check(self, keys: list[str]) -> None:
        """429 when one of `keys` is over its limit (the counters are shared by every worker)."""
        try:
            await self._run(self.throttle.check, keys)
        except Throttled as exc:
            raise rate_limited(exc.retry_after) from exc

    async def register(self, form: RegisterForm, client_ip: str = "unknown") -> UserRecord:
        """Create a user with its own root; 409 IDENTITY_TAKEN if the email/username is used.

        Every attempt counts against the caller's address (`register_max_per_ip`
        per `register_window_seconds`), so one client cannot mass-create accounts.
        """
        ip_key = f"register-ip:{client_ip}"
        await self._check([ip_key])
        await self._run(self.throttle.record_failure, [ip_key])
        keys = []
        if form.email:
            keys.append(identity_key("email", form.email))
        if form.username:
            keys.append(identity_key("username", form.username))
        password_hash = await self.hasher.hash(form.password)
        try:
            return await self._create(
                keys,
                email=form.email.lower() if form.email else None,
                username=form.username,
                password_hash=password_hash,
                profile=form.profile,
            )
        except IdentityTaken as exc:
            raise ApiError(
                "IDENTITY_TAKEN",
                f"This {exc.kind} is already registered",
                details=[
                    {"loc": ["body", exc.kind], "msg": "already registered", "type": "conflict"}
                ],
            ) from exc

    # -- sessions ------------------------------------------------------------

    def issue(self, user: UserRecord, auth_time: int | None = None) -> Session:
        """A new access token for `user` (signing is cheap: no thread needed).

        `auth_time` is when the user last proved who they are (a login); refreshed
        tokens keep the original one, so a session cannot be stretched forever.
        """
        claims = {
            "root": user.root_id,
            "sgen": user.session_gen,
            "auth_time": int(time.time()) if auth_time is None else auth_time,
        }
        token = self.tokens.issue(user.user_id, claims=claims)
        return Session(user=user, token=token)

    async def refresh(self, principal: Principal | None) -> Session:
        """A fresh token for a valid one, within `max_session_seconds` of the last login."""
        user = await self.require_user(principal)
        assert principal is not None
        auth_time = principal.claims.get("auth_time")
        if not isinstance(auth_time, int) or isinstance(auth_time, bool):
            auth_time = int(principal.claims.get("iat") or time.time())
        if self.max_session_seconds > 0 and time.time() - auth_time > self.max_session_seconds:
            raise ApiError(
                "UNAUTHORIZED",
                "Session too old to refresh; log in again",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return self.issue(user, auth_time=auth_time)

    async def login(self, form: LoginForm, client_ip: str) -> Session:
        """Check a password login; 401 "Invalid credentials" or 429 when throttled.

        Failures are counted per address, per (account, address) and per account.
        The first two refuse (429): one address cannot keep guessing. The account
        count only slows down: once it is over the limit, attempts on that account
        run one at a time per worker, each after `slow_down_seconds`, so guesses
        from many addresses crawl while the owner, from an address of their own,
        still gets in.
        """
        ip_key = f"ip:{client_ip}"
        pair_key = f"login-pair:{form.identity}|{client_ip}"
        account_key = f"login-account:{form.identity}"
        await self._check([ip_key, pair_key])
        if await self._run(self.throttle.retry_after, account_key):
            lock = self._login_locks.setdefault(form.identity, asyncio.Lock())
            async with lock:
                await anyio.sleep(self.slow_down_seconds)
                user = await self._verify_password(form, [account_key, pair_key, ip_key])
        else:
            user = await self._verify_password(form, [account_key, pair_key, ip_key])
        await self._run(self.throttle.reset, pair_key)
        if user.disabled:
            raise ApiError("FORBIDDEN", ACCOUNT_DISABLED)
        stored = user.password_hash
        if stored and self.hasher.needs_rehash(stored):
            new_hash = await self.hasher.hash(form.password)
            user = await self._run(
                self.store.set_password, user.user_id, new_hash, new_session=False
            )
        return self.issue(user)

    async def _verify_password(self, form: LoginForm, keys: list[str]) -> UserRecord:
        """The user whose password `form` holds; else count a failure on `keys` and 401."""
        user = await self._run(self.store.find, form.identity)
        if user is None and form.fallback:
            user = await self._run(self.store.find, form.fallback)
        stored = user.password_hash if user is not None else None
        if not await self.hasher.verify(stored, form.password) or user is None:
            await self._run(self.throttle.record_failure, keys)
            raise ApiError("UNAUTHORIZED", INVALID_CREDENTIALS)
        return user

    async def verify_token(self, token: str) -> tuple[UserRecord, dict[str, Any]]:
        """The user and claims of a valid session token; 401 for anything else."""
        try:
            claims = self.tokens.verify(token, token_types=("access",))
        except TokenError as exc:
            log.debug("token refused: %s", exc.reason)
            raise invalid_token() from exc
        user = await self.get_user(str(claims["sub"]))
        if user is None:
            log.debug("token refused: user %s no longer exists", claims["sub"])
            raise invalid_token()
        sgen = claims.get("sgen")
        if sgen != user.session_gen:
            # Generations only grow, so a (possibly stale) cached record can only be
            # behind: a token older than it is revoked for sure, no need to re-read.
            # A newer one may follow a password change made by another worker.
            older = isinstance(sgen, int) and not isinstance(sgen, bool) and sgen < user.session_gen
            if not older:
                user = await self.get_user(user.user_id, fresh=True)
            if older or user is None or sgen != user.session_gen:
                log.debug("token refused: issued before the last password change")
                raise invalid_token()
        if user.disabled:
            log.debug("token refused: user %s is disabled", user.user_id)
            raise invalid_token()
        return user, claims

    async def principal(self, token: str) -> Principal:
        """The Principal a bearer token stands for (401 if it is not valid)."""
        user, claims = await self.verify_token(token)
        return Principal(user_id=user.user_id, root_id=user.root_id, kind="user", claims=claims)

    async def require_user(self, principal: Principal | None) -> UserRecord:
        """The current record of an authenticated user principal, or 401."""
        if principal is None or principal.kind != "user":
            raise ApiError(
                "UNAUTHORIZED", "Authentication required", headers={"WWW-Authenticate": "Bearer"}
            )
        user = await self.get_user(principal.user_id, fresh=True)
        if user is None:
            raise invalid_token()
        return user

    async def change_password(
        self, user: UserRecord, form: PasswordChangeForm, client_ip: str
    ) -> Session:
        """Set a new password after checking the current one; earlier tokens stop working."""
        account_key = f"account:user:{user.user_id}"
        await self._check([account_key, f"ip:{client_ip}"])
        if not await self.hasher.verify(user.password_hash, form.current_password):
            await self._run(self.throttle.record_failure, [account_key, f"ip:{client_ip}"])
            raise ApiError(
                "VALIDATION_ERROR",
                "Invalid value for current_password: does not match",
                details=[
                    {
                        "loc": ["body", "current_password"],
                        "msg": "does not match",
                        "type": "value_error",
                    }
                ],
            )
        await self._run(self.throttle.reset, account_key)
        new_hash = await self.hasher.hash(form.new_password)
        updated = await self._run(self.store.set_password, user.user_id, new_hash, new_session=True)
        self._forget(user.user_id)
        return self.issue(updated)

    async def delete(self, user: UserRecord, password: str, client_ip: str) -> None:
        """Delete the account (its graph stays); needs the password unless SSO-only."""
        if user.password_hash is not None:
            account_key = f"account:user:{user.user_id}"
            await self._check([account_key, f"ip:{client_ip}"])
            if not await self.hasher.verify(user.password_hash, password):
                await self._run(self.throttle.record_failure, [account_key, f"ip:{client_ip}"])
                raise ApiError(
                    "VALIDATION_ERROR",
                    "Invalid value for password: does not match",
                    details=[
                        {
                            "loc": ["body", "password"],
                            "msg": "does not match",
                            "type": "value_error",
                        }
                    ],
                )
        await self._run(self.store.delete, user.user_id)
        self._forget(user.user_id)

    # -- single sign-on ------------------------------------------------------

    async def sso_sign_in(
        self,
        platform: str,
        subject: str,
        email: str | None,
        email_verified: bool,
        *,
        allow_create: bool,
        link_by_email: bool,
    ) -> tuple[UserRecord, bool]:
        """Find, link or create the user for a verified provider identity; (user, created)."""
        sso_key = f"sso:{platform}:{subject}"
        user = await self._run(self.store.find, sso_key)
        if user is not None:
            if user.disabled:
                raise ApiError("FORBIDDEN", ACCOUNT_DISABLED)
            return user, False
        email_key = identity_key("email", email) if email else None
        if email_key and email_verified and link_by_email:
            user = await self._run(self.store.find, email_key)
            if user is not None:
                if user.disabled:
                    raise ApiError("FORBIDDEN", ACCOUNT_DISABLED)
                sso = {**user.sso, platform: subject}
                await self._run(
                    self.store.link, user.user_id, sso_key, {"sso": sso, "email_verified": True}
                )
                self._forget(user.user_id)
                user.sso = sso
                user.email_verified = True
                return user, False
        if not allow_create:
            raise ApiError("NOT_FOUND", f"No account is linked to this {platform} identity")
        keys = [sso_key]
        own_email = None
        if email_key and email_verified:
            existing = await self._run(self.store.user_id_for, email_key)
            if existing is None:
                keys.append(email_key)
                own_email = email.lower() if email else None
        try:
            user = await self._create(
                keys,
                email=own_email,
                username=None,
                password_hash=None,
                email_verified=own_email is not None,
                sso={platform: subject},
            )
        except IdentityTaken as exc:
            if exc.kind == "sso":
                # A concurrent sign-in of the same identity won the race: use its user.
                winner = await self._run(self.store.find, sso_key)
                if winner is None:
                    raise ApiError("CONFLICT", "Sign-in raced with another; try again") from exc
                return winner, False
            # The email was registered meanwhile: create the account without it.
            user = await self._create(
                [sso_key], email=None, username=None, password_hash=None, sso={platform: subject}
            )
        return user, True
