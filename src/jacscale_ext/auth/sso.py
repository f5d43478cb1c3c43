"""Single sign-on: the OpenID Connect authorization-code flow with state, nonce and PKCE.

Providers are plugins: the `jacscale_sso_provider(platform, app)` hook returns an
object with the `SsoProvider` shape (Google is built in, `google.py`). Any
OpenID Connect provider is an `OidcProvider` with its own discovery URL.

The flow keeps no server-side state, so any worker or pod can finish it:
1. `GET /sso/{platform}/login` (or `/register`) makes a random PKCE verifier,
   nonce and flow id. The verifier goes into an HttpOnly cookie named after the
   flow id; the rest (platform, operation, nonce, PKCE challenge, where to send
   the token) goes into `state`, signed by our token service (type "sso_state",
   10 minutes). The browser is redirected to the provider.
2. `GET /sso/{platform}/login/callback?code&state`: the state's signature,
   expiry and platform are checked; the cookie's verifier must hash to the
   challenge in the state (this binds the callback to the browser that started
   the flow: no login CSRF); the code is exchanged for tokens with the verifier;
   the ID token is verified against the provider's JWKS (pinned algorithms,
   issuer, audience, azp, exp, iat, nonce).
3. The account is found by provider subject, else linked by verified email,
   else created; our own access token is then either returned as JSON or handed
   to the single-page app by redirect (in the URL fragment by default, so it
   never reaches a server log).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from jacscale_ext.auth.tokens import TokenError, TokenService, _b64_json

STATE_TOKEN_TYPE = "sso_state"
COOKIE_PREFIX = "jacscale_sso_"
OPERATIONS = ("login", "register")


class SsoError(Exception):
    """The sign-in failed. `public` is safe to show the user; `reason` is for logs."""

    def __init__(self, public: str, reason: str | None = None, *, status: int = 401) -> None:
        super().__init__(reason or public)
        self.public = public
        self.reason = reason or public
        self.status = status
        self.flow: FlowState | None = None


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """Who the provider says signed in."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SsoProvider(Protocol):
    """What a `jacscale_sso_provider` hook returns."""

    name: str

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str, operation: str
    ) -> str:
        """The provider URL the browser is sent to."""
        ...

    async def complete(
        self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str
    ) -> SsoIdentity:
        """Exchange `code` and return the verified identity; raise SsoError otherwise."""
        ...


# --------------------------------------------------------------------------
# PKCE and state
# --------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class FlowStart:
    """What `/sso/{platform}/login` hands the browser: where to go, and the cookie to set."""

    authorization_url: str
    cookie_name: str
    cookie_value: str
    max_age: int


@dataclass(frozen=True, slots=True)
class FlowState:
    """The verified contents of `state` plus the matching cookie's verifier."""

    platform: str
    operation: str
    nonce: str
    code_verifier: str
    redirect: str | None
    cookie_name: str


def state_token(
    tokens: TokenService,
    *,
    platform: str,
    operation: str,
    nonce: str,
    challenge: str,
    flow_id: str,
    redirect: str | None,
    lifetime: int,
) -> str:
    """Sign the flow's public facts into the `state` parameter."""
    claims = {
        "op": operation,
        "nonce": nonce,
        "pkce": challenge,
        "fid": flow_id,
        "rd": redirect or "",
    }
    return tokens.issue(
        platform, token_type=STATE_TOKEN_TYPE, lifetime_seconds=lifetime, claims=claims
    ).token


def read_state(
    tokens: TokenService, platform: str, state: str, cookies: dict[str, str]
) -> FlowState:
    """Check `state` and its cookie; raise SsoError (400) for anything off."""
    try:
        claims = tokens.verify(state, token_types=(STATE_TOKEN_TYPE,))
    except TokenError as exc:
        raise SsoError(
            "Invalid or expired sign-in attempt; start again", exc.reason, status=400
        ) from exc
    if claims.get("sub") != platform:
        raise SsoError("Invalid sign-in attempt", "state is for another platform", status=400)
    fid = str(claims.get("fid", ""))
    cookie_name = COOKIE_PREFIX + fid
    verifier = cookies.get(cookie_name, "")
    if (
        not fid
        or not verifier
        or not secrets.compare_digest(pkce_challenge(verifier), str(claims.get("pkce", "")))
    ):
        raise SsoError(
            "This sign-in was not started in this browser; start again",
            "missing or mismatched PKCE cookie",
            status=400,
        )
    op = str(claims.get("op", "login"))
    return FlowState(
        platform=platform,
        operation=op if op in OPERATIONS else "login",
        nonce=str(claims.get("nonce", "")),
        code_verifier=verifier,
        redirect=str(claims.get("rd") or "") or None,
        cookie_name=cookie_name,
    )


async def start_flow(
    provider: SsoProvider,
    tokens: TokenService,
    *,
    platform: str,
    operation: str,
    callback: str,
    redirect: str | None,
    lifetime: int,
) -> FlowStart:
    """Make a new flow: the provider URL to send the browser to, and its PKCE cookie."""
    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(24)
    flow_id = secrets.token_hex(8)
    state = state_token(
        tokens,
        platform=platform,
        operation=operation,
        nonce=nonce,
        challenge=challenge,
        flow_id=flow_id,
        redirect=redirect,
        lifetime=lifetime,
    )
    url = await provider.authorization_url(
        redirect_uri=callback,
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        operation=operation,
    )
    return FlowStart(url, COOKIE_PREFIX + flow_id, verifier, lifetime)


async def finish_flow(
    provider: SsoProvider,
    tokens: TokenService,
    *,
    platform: str,
    params: dict[str, str],
    cookies: dict[str, str],
    callback: str,
) -> tuple[FlowState, SsoIdentity]:
    """Check the callback's state and cookie, then let the provider verify the sign-in.

    Raises SsoError; when the state itself was valid, `SsoError.flow` carries it so
    the caller can still send the user back to the front end with the error.
    """
    state = params.get("state", "")
    if not state:
        raise SsoError("Missing state parameter", status=400)
    flow = read_state(tokens, platform, state, cookies)
    try:
        if params.get("error"):
            raise SsoError(
                f"{platform} sign-in was not completed ({params['error'][:64]})",
                f"provider error {params['error'][:64]}",
            )
        code = params.get("code", "")
        if not code:
            raise SsoError("Missing code parameter", status=400)
        identity = await provider.complete(
            code=code, code_verifier=flow.code_verifier, redirect_uri=callback, nonce=flow.nonce
        )
    except SsoError as exc:
        exc.flow = flow
        raise
    return flow, identity


# --------------------------------------------------------------------------
# Redirect targets
# --------------------------------------------------------------------------

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs on the local machine (RFC 8252 native-app callbacks)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK_HOSTS


def allowed_redirect(url: str, allowed: Sequence[str], allow_loopback: bool) -> bool:
    """May the token be sent to `url`? Exact match (ignoring query) with an allowed URL, or loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        return False
    if "@" in parts.netloc or "\\" in url:
        return False
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    for item in allowed:
        a = urlsplit(item)
        if base == f"{a.scheme}://{a.netloc}{a.path}":
            return True
    return allow_loopback and is_loopback_url(url)


def callback_url(host: str, platform: str) -> str:
    """The redirect URI registered at the provider: `<host>/sso/<platform>/login/callback`.

    `host` may be given with or without the `/sso` suffix (the jac-scale docs show
    `http://localhost:8000/sso`, its code appends `/sso` itself).
    """
    base = host.rstrip("/")
    if base.endswith("/sso"):
        base = base[: -len("/sso")]
    return f"{base}/sso/{platform}/login/callback"


def token_redirect(target: str, values: dict[str, Any], where: str) -> str:
    """`target` with `values` added in the fragment (default) or the query string."""
    encoded = urlencode({k: str(v) for k, v in values.items()})
    if where == "query":
        sep = "&" if urlsplit(target).query else "?"
        return f"{target}{sep}{encoded}"
    return f"{target.split('#', 1)[0]}#{encoded}"


# --------------------------------------------------------------------------
# A generic OpenID Connect provider
# --------------------------------------------------------------------------


@dataclass(slots=True)
class OidcMetadata:
    """The parts of a discovery document the flow uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class OidcProvider:
    """An OpenID Connect provider found through its discovery document.

    Network calls go through the shared `httpx.AsyncClient` with a timeout each;
    discovery and keys are cached for `cache_seconds`, and an ID token signed by
    an unknown key id triggers one early key refresh (at most once a minute).
    """

    algorithms: tuple[str, ...] = ("RS256",)
    extra_issuers: tuple[str, ...] = ()

    def __init__(
        self,
        name: str,
        *,
        client_id: str,
        client_secret: str,
        discovery_url: str,
        http: httpx.AsyncClient,
        scopes: Sequence[str] = ("openid", "email", "profile"),
        timeout: float = 10.0,
        cache_seconds: float = 3600.0,
        leeway_seconds: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError(f"SSO provider {name!r} needs a client id and a client secret")
        self.name = name
        self.client_id = client_id
        self._client_secret = client_secret
        self.discovery_url = discovery_url
        self.scopes = list(scopes)
        self._http = http
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._leeway = leeway_seconds
        self._clock = clock
        self._meta: OidcMetadata | None = None
        self._meta_until = 0.0
        self._keys: KeySet | None = None
        self._keys_until = 0.0
        self._keys_fetched = 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} client_id={self.client_id}>"

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            resp = await self._http.get(url, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise SsoError(
                f"{self.name} is not reachable", f"GET {url}: {type(exc).__name__}", status=502
            ) from exc
        if resp.status_code != 200:
            raise SsoError(
                f"{self.name} answered an error", f"GET {url}: {resp.status_code}", status=502
            )
        try:
            data = resp.json()
        except ValueError as exc:
            raise SsoError(
                f"{self.name} answered nonsense", f"GET {url}: not JSON", status=502
            ) from exc
        if not isinstance(data, dict):
            raise SsoError(
                f"{self.name} answered nonsense", f"GET {url}: not an object", status=502
            )
        return data

    async def metadata(self) -> OidcMetadata:
        """The discovery document (cached)."""
        now = self._clock()
        if self._meta is not None and now < self._meta_until:
            return self._meta
        doc = await self._get_json(self.discovery_url)
        try:
            meta = OidcMetadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
            )
        except KeyError as exc:
            raise SsoError(
                f"{self.name} discovery is incomplete", f"discovery lacks {exc.args[0]}", status=502
            ) from exc
        self._meta, self._meta_until = meta, now + self._cache_seconds
        return meta

    async def _key_set(self, kid: str | None) -> KeySet:
        now = self._clock()
        stale = self._keys is None or now >= self._keys_until
        unknown = self._keys is not None and kid is not None and not _has_kid(self._keys, kid)
        if stale or (unknown and now - self._keys_fetched > 60):
            meta = await self.metadata()
            doc = await self._get_json(meta.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise SsoError(f"{self.name} keys are unusable", "bad JWKS", status=502) from exc
            self._keys_until = now + self._cache_seconds
            self._keys_fetched = now
        assert self._keys is not None
        return self._keys

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str, operation: str
    ) -> str:
        """The authorize URL with response_type=code, state, nonce and an S256 challenge."""
        meta = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        params.update(self.extra_authorize_params(operation))
        sep = "&" if urlsplit(meta.authorization_endpoint).query else "?"
        return f"{meta.authorization_endpoint}{sep}{urlencode(params)}"

    def extra_authorize_params(self, operation: str) -> dict[str, str]:
        """Provider-specific authorize parameters (e.g. a prompt for "register")."""
        del operation
        return {}

    async def complete(
        self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str
    ) -> SsoIdentity:
        """Exchange the code (with the PKCE verifier) and verify the ID token."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "code_verifier": code_verifier,
        }
        try:
            resp = await self._http.post(
                meta.token_endpoint,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise SsoError(
                f"{self.name} is not reachable", f"token endpoint: {type(exc).__name__}", status=502
            ) from exc
        if resp.status_code != 200:
            raise SsoError(
                f"{self.name} refused the sign-in", f"token endpoint answered {resp.status_code}"
            )
        try:
            body = resp.json()
        except ValueError as exc:
            raise SsoError(
                f"{self.name} answered nonsense", "token response not JSON", status=502
            ) from exc
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str):
            raise SsoError(f"{self.name} sent no ID token", "token response without id_token")
        claims = await self.verify_id_token(id_token, nonce)
        email = claims.get("email")
        verified = claims.get("email_verified")
        return SsoIdentity(
            subject=str(claims["sub"]),
            email=str(email) if isinstance(email, str) and email else None,
            email_verified=verified is True or verified == "true",
            name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            claims=claims,
        )

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of a valid ID token for this client and `nonce`; SsoError otherwise."""
        parts = id_token.split(".")
        if len(parts) != 3:
            raise SsoError(f"{self.name} sent a bad ID token", "id_token is not a JWS")
        try:
            header = _b64_json(parts[0])
        except TokenError as exc:
            raise SsoError(f"{self.name} sent a bad ID token", "id_token header") from exc
        if not isinstance(header, dict) or header.get("alg") not in self.algorithms:
            alg = header.get("alg") if isinstance(header, dict) else None
            raise SsoError(f"{self.name} sent a bad ID token", f"id_token alg {alg!r} not allowed")
        kid = header.get("kid")
        keys = await self._key_set(kid if isinstance(kid, str) else None)
        if isinstance(kid, str) and not _has_kid(keys, kid):
            raise SsoError(f"{self.name} sent a bad ID token", "id_token signed by an unknown key")
        try:
            claims = jwt.decode(id_token, keys, algorithms=list(self.algorithms)).claims
        except (JoseError, ValueError) as exc:
            raise SsoError(
                f"{self.name} sent a bad ID token", f"id_token signature: {type(exc).__name__}"
            ) from exc
        meta = await self.metadata()
        self._check_claims(claims, meta.issuer, nonce)
        return claims

    def _check_claims(self, claims: dict[str, Any], issuer: str, nonce: str) -> None:
        def bad(reason: str) -> SsoError:
            return SsoError(f"{self.name} sent a bad ID token", f"id_token {reason}")

        now = self._clock()
        if claims.get("iss") not in (issuer, *self.extra_issuers):
            raise bad("issuer mismatch")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.client_id not in audiences:
            raise bad("audience mismatch")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.client_id:
            raise bad("azp mismatch")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or now >= exp + self._leeway:
            raise bad("expired or without exp")
        if not isinstance(iat, int | float) or isinstance(iat, bool) or iat > now + self._leeway:
            raise bad("iat missing or in the future")
        if not nonce or not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise bad("nonce mismatch")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise bad("without subject")


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)
