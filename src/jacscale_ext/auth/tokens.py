"""Signed tokens (JWT, HMAC) with joserfc, checked strictly.

joserfc's `jwt.decode` verifies the signature only; every claim is checked here:
the algorithm is pinned (the header must name exactly the configured one, so
`alg: none` and algorithm confusion are refused before any crypto runs), the
key is chosen by the header's `kid`, and `exp` (required), `iat` (required),
`nbf`, `iss`, `aud` and our `token_type` claim must all hold.

Key rotation: the current secret signs; `previous_secrets` still verify, so
tokens made before a secret change keep working until they expire. A key's id
is derived from its secret, so changing the secret changes the id by itself.

The service is generic: it signs any subject for any `token_type` ("access"
for user sessions; an API-key feature may issue its own type). Callers add
their own claims (root id, session generation) and their own revocation checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import secrets
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

# Algorithm -> minimum key length in bytes (RFC 7518 3.2: at least the hash size).
HMAC_ALGORITHMS: dict[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}

# Claims the service sets and owns; callers cannot override them via `claims=`.
RESERVED_CLAIMS = frozenset({"sub", "iss", "aud", "iat", "nbf", "exp", "jti", "token_type"})

MAX_TOKEN_BYTES = 8192
_NUMBER = (int, float)  # a tuple: isinstance checks it faster than `int | float`
VERIFIED_CACHE_SIZE = 10_000


class TokenError(Exception):
    """A token was refused. `reason` is for server logs and tests, never for clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly signed token, its lifetime in seconds and the claims it carries."""

    token: str
    expires_in: int
    claims: dict[str, Any]


def key_id(secret: str | bytes) -> str:
    """A stable, non-reversible id for a secret (goes in the `kid` header)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return "k" + hashlib.sha256(b"jacscale-jwt-kid\x00" + raw).hexdigest()[:16]


def weak_secret_reason(secret: str, algorithm: str) -> str | None:
    """Why `secret` is too short for `algorithm` (RFC 7518 3.2), or None when it is fine."""
    need = HMAC_ALGORITHMS.get(algorithm, 32)
    have = len(secret.encode())
    if have < need:
        return f"{algorithm} needs a secret of at least {need} bytes, this one has {have}"
    return None


def generate_secret() -> str:
    """A new random secret long enough for every supported algorithm (64 bytes, urlsafe)."""
    return secrets.token_urlsafe(64)


def _import_key(secret: str, kid: str) -> OctKey:
    with warnings.catch_warnings():
        # joserfc warns on short HMAC keys; start-up reports (or refuses) those itself.
        warnings.simplefilter("ignore")
        return OctKey.import_key(secret, {"kid": kid})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        return json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, binascii.Error, UnicodeError, RecursionError) as exc:
        raise TokenError("malformed token segment") from exc


def _is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float (not a bool, NaN or infinity)."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        return False
    return isinstance(value, int) or math.isfinite(value)


class TokenService:
    """Issue and verify HMAC-signed JWTs for one issuer/audience."""

    def __init__(
        self,
        secret: str,
        algorithm: str = "HS256",
        *,
        previous_secrets: Sequence[str] = (),
        issuer: str = "jacscale",
        audience: str = "jacscale",
        lifetime_seconds: int = 7 * 86400,
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in HMAC_ALGORITHMS:
            supported = ", ".join(HMAC_ALGORITHMS)
            raise ValueError(
                f"JWT algorithm {algorithm!r} is not supported (use one of {supported})"
            )
        if not secret:
            raise ValueError("JWT secret must not be empty")
        if lifetime_seconds <= 0:
            raise ValueError("token lifetime must be positive")
        self.algorithm = algorithm
        self.issuer = issuer
        self.audience = audience
        self.lifetime_seconds = int(lifetime_seconds)
        self.leeway_seconds = leeway_seconds
        self._clock = clock
        self.kid = key_id(secret)
        self._keys: dict[str, OctKey] = {self.kid: _import_key(secret, self.kid)}
        # token -> claims whose signature was checked (bounded; claims re-checked per use)
        self._verified: dict[str, dict[str, Any]] = {}
        for old in previous_secrets:
            if old and old != secret:
                kid = key_id(old)
                self._keys.setdefault(kid, _import_key(old, kid))

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key that verifies (the signing key first)."""
        return list(self._keys)

    def issue(
        self,
        subject: str,
        *,
        token_type: str = "access",
        lifetime_seconds: int | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> IssuedToken:
        """Sign a token for `subject` of `token_type`, valid for `lifetime_seconds`."""
        lifetime = self.lifetime_seconds if lifetime_seconds is None else int(lifetime_seconds)
        if lifetime <= 0:
            raise ValueError("token lifetime must be positive")
        extra = dict(claims or {})
        clash = RESERVED_CLAIMS.intersection(extra)
        if clash:
            raise ValueError(f"claims {sorted(clash)} are set by the token service")
        now = int(self._clock())
        body: dict[str, Any] = {
            **extra,
            "sub": subject,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_hex(12),
            "token_type": token_type,
        }
        header = {"alg": self.algorithm, "kid": self.kid, "typ": "JWT"}
        token = jwt.encode(header, body, self._keys[self.kid], algorithms=[self.algorithm])
        return IssuedToken(token=token, expires_in=lifetime, claims=body)

    def verify(self, token: str, *, token_types: Collection[str] = ("access",)) -> dict[str, Any]:
        """Return the claims of a valid token of one of `token_types`; raise TokenError otherwise."""
        # A remembered token is this exact string, whose header and signature were
        # checked under this service's algorithm and keys (both fixed at construction):
        # those checks would pass again. The claims are checked on every use.
        if not isinstance(token, str):
            raise TokenError("token is not a string")
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
        self._check_claims(claims, token_types)
        return dict(claims)

    def _check_signature(self, token: str) -> dict[str, Any]:
        """The claims of a token whose header and signature hold (then remembered)."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token empty or too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a compact JWS")
        header = _b64_json(parts[0])
        if not isinstance(header, dict):
            raise TokenError("header is not an object")
        alg = header.get("alg")
        if alg != self.algorithm:
            raise TokenError(f"algorithm {alg!r} is not the configured one")
        if "crit" in header or "jku" in header or "jwk" in header or "x5u" in header:
            raise TokenError("unsupported header parameters")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown key id")
        try:
            decoded = jwt.decode(token, key, algorithms=[self.algorithm]).claims
        except (JoseError, ValueError, TypeError, RecursionError) as exc:
            raise TokenError(f"bad signature or encoding: {type(exc).__name__}") from exc
        if not isinstance(decoded, dict):
            raise TokenError("claims are not an object")
        claims: dict[str, Any] = decoded
        # Remember the checked signature (not the verdict): the claims are checked
        # on every use, so expiry and the rest still apply at once.
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _check_claims(self, claims: dict[str, Any], token_types: Collection[str]) -> None:
        now = self._clock()
        leeway = self.leeway_seconds
        exp = claims.get("exp")
        if not _is_number(exp):
            raise TokenError("missing or invalid exp")
        if now >= exp + leeway:
            raise TokenError("expired")
        iat = claims.get("iat")
        if not _is_number(iat):
            raise TokenError("missing or invalid iat")
        if iat > now + leeway:
            raise TokenError("issued in the future")
        if "nbf" in claims:
            nbf = claims["nbf"]
            if not _is_number(nbf):
                raise TokenError("invalid nbf")
            if nbf > now + leeway:
                raise TokenError("not yet valid")
        if claims.get("iss") != self.issuer:
            raise TokenError("wrong issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a == self.audience for a in audiences):
            raise TokenError("wrong audience")
        token_type = claims.get("token_type")
        if not isinstance(token_type, str) or token_type not in token_types:
            raise TokenError("wrong token type")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenError("missing subject")
