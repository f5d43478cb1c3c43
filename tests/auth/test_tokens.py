"""JWT issuing and strict verification; the signing secret's origin."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from jacscale_ext.auth.config import AuthConfigError, JwtConfig, jwt_from_env
from jacscale_ext.auth.secret import SECRET_FILE_NAME, resolve_secret
from jacscale_ext.auth.tokens import TokenError, TokenService, generate_secret, key_id

SECRET = "x" * 40


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(clock: Clock) -> TokenService:
    return TokenService(SECRET, clock=clock, lifetime_seconds=3600, leeway_seconds=30)


def b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], secret: str = SECRET) -> str:
    key = OctKey.import_key(secret)
    return jwt.encode(header, claims, key, algorithms=[header["alg"]])


def good_claims(clock: Clock, **over: Any) -> dict[str, Any]:
    now = int(clock.now)
    claims = {
        "sub": "u1",
        "iss": "jacscale",
        "aud": "jacscale",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "token_type": "access",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def test_roundtrip_carries_claims(svc: TokenService, clock: Clock) -> None:
    issued = svc.issue("u1", claims={"root": "r1", "sgen": 0})
    assert issued.expires_in == 3600
    claims = svc.verify(issued.token)
    assert claims["sub"] == "u1" and claims["root"] == "r1" and claims["sgen"] == 0
    assert claims["exp"] == int(clock.now) + 3600 and claims["iat"] == int(clock.now)
    header = json.loads(base64.urlsafe_b64decode(issued.token.split(".")[0] + "=="))
    assert header == {"typ": "JWT", "alg": "HS256", "kid": key_id(SECRET)}


def test_hand_made_token_with_all_claims_verifies(svc: TokenService, clock: Clock) -> None:
    token = forge({"alg": "HS256", "kid": svc.kid}, good_claims(clock))
    assert svc.verify(token)["sub"] == "u1"


def test_expired(svc: TokenService, clock: Clock) -> None:
    token = svc.issue("u1").token
    clock.now += 3600 + 29
    svc.verify(token)  # within leeway
    clock.now += 2
    with pytest.raises(TokenError, match="expired"):
        svc.verify(token)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"exp": None}, "exp"),
        ({"exp": "9999999999"}, "exp"),
        ({"exp": True}, "exp"),
        ({"iat": None}, "iat"),
        ({"iat": 10**10}, "future"),
        ({"nbf": 10**10}, "not yet valid"),
        ({"nbf": "soon"}, "nbf"),
        ({"iss": "someone-else"}, "issuer"),
        ({"iss": None}, "issuer"),
        ({"aud": "other-app"}, "audience"),
        ({"aud": ["a", "b"]}, "audience"),
        ({"token_type": "refresh"}, "token type"),
        ({"token_type": None}, "token type"),
        ({"sub": ""}, "subject"),
        ({"sub": 7}, "subject"),
    ],
)
def test_claims_checked_explicitly(
    svc: TokenService, clock: Clock, over: dict[str, Any], reason: str
) -> None:
    token = forge({"alg": "HS256", "kid": svc.kid}, good_claims(clock, **over))
    with pytest.raises(TokenError, match=reason):
        svc.verify(token)


def test_audience_list_containing_ours_is_accepted(svc: TokenService, clock: Clock) -> None:
    token = forge({"alg": "HS256", "kid": svc.kid}, good_claims(clock, aud=["x", "jacscale"]))
    assert svc.verify(token)["sub"] == "u1"


def test_wrong_type_refused_and_expected_type_accepted(svc: TokenService) -> None:
    state = svc.issue("google", token_type="sso_state").token
    with pytest.raises(TokenError, match="token type"):
        svc.verify(state)
    assert svc.verify(state, token_types=("sso_state",))["sub"] == "google"
    access = svc.issue("u1").token
    with pytest.raises(TokenError, match="token type"):
        svc.verify(access, token_types=("sso_state",))


def test_forged_with_another_secret(svc: TokenService, clock: Clock) -> None:
    token = forge({"alg": "HS256", "kid": svc.kid}, good_claims(clock), secret="y" * 40)
    with pytest.raises(TokenError, match="signature"):
        svc.verify(token)


def test_forged_with_jac_scale_default_secret(svc: TokenService, clock: Clock) -> None:
    token = forge(
        {"alg": "HS256", "kid": key_id("supersecretkey")}, good_claims(clock), "supersecretkey"
    )
    with pytest.raises(TokenError, match="unknown key id"):
        svc.verify(token)
    token = forge({"alg": "HS256", "kid": svc.kid}, good_claims(clock), "supersecretkey")
    with pytest.raises(TokenError, match="signature"):
        svc.verify(token)


def test_tampered_payload(svc: TokenService) -> None:
    head, _, sig = svc.issue("u1").token.split(".")
    body = b64(
        {
            "sub": "admin",
            "iss": "jacscale",
            "aud": "jacscale",
            "iat": 1,
            "exp": 10**10,
            "token_type": "access",
        }
    )
    with pytest.raises(TokenError, match="signature"):
        svc.verify(f"{head}.{body}.{sig}")


def test_alg_none_refused(svc: TokenService, clock: Clock) -> None:
    token = f"{b64({'alg': 'none', 'kid': svc.kid})}.{b64(good_claims(clock))}."
    with pytest.raises(TokenError, match="algorithm 'none'"):
        svc.verify(token)
    token = f"{b64({'alg': 'None', 'kid': svc.kid})}.{b64(good_claims(clock))}."
    with pytest.raises(TokenError, match="algorithm"):
        svc.verify(token)


def test_other_hmac_alg_refused(svc: TokenService, clock: Clock) -> None:
    token = forge({"alg": "HS512", "kid": svc.kid}, good_claims(clock), secret=SECRET * 2)
    with pytest.raises(TokenError, match="algorithm 'HS512'"):
        svc.verify(token)


def test_rs256_token_refused(svc: TokenService, clock: Clock) -> None:
    key = RSAKey.generate_key(2048, private=True)
    token = jwt.encode({"alg": "RS256", "kid": svc.kid}, good_claims(clock), key)
    with pytest.raises(TokenError, match="algorithm 'RS256'"):
        svc.verify(token)


def test_missing_kid_refused(svc: TokenService, clock: Clock) -> None:
    token = forge({"alg": "HS256"}, good_claims(clock))
    with pytest.raises(TokenError, match="unknown key id"):
        svc.verify(token)


@pytest.mark.parametrize(
    "junk",
    ["", "abc", "a.b", "a.b.c.d", "!!!.???.###", "e30.e30.", "W10.e30.sig", "x" * 9000],
)
def test_garbage_refused(svc: TokenService, junk: str) -> None:
    with pytest.raises(TokenError):
        svc.verify(junk)


def test_dangerous_header_parameters_refused(svc: TokenService, clock: Clock) -> None:
    token = forge({"alg": "HS256", "kid": svc.kid, "jku": "http://evil/jwks"}, good_claims(clock))
    with pytest.raises(TokenError, match="header"):
        svc.verify(token)


def test_key_rotation(clock: Clock) -> None:
    old = TokenService("old-secret-" + "o" * 32, clock=clock)
    token = old.issue("u1").token
    new = TokenService(
        "new-secret-" + "n" * 32, previous_secrets=["old-secret-" + "o" * 32], clock=clock
    )
    assert new.verify(token)["sub"] == "u1", "old tokens verify until they expire"
    assert new.key_ids[0] == new.kid != old.kid
    fresh = new.issue("u2").token
    header = json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))
    assert header["kid"] == key_id("new-secret-" + "n" * 32), "the new secret signs"
    with pytest.raises(TokenError, match="unknown key id"):
        old.verify(fresh)
    dropped = TokenService("new-secret-" + "n" * 32, clock=clock)
    with pytest.raises(TokenError, match="unknown key id"):
        dropped.verify(token)
    clock.now += 8 * 86400
    with pytest.raises(TokenError, match="expired"):
        new.verify(token)


def test_other_issuer_or_audience_config(clock: Clock) -> None:
    a = TokenService(SECRET, issuer="app-a", audience="app-a", clock=clock)
    b = TokenService(SECRET, issuer="app-b", audience="app-b", clock=clock)
    with pytest.raises(TokenError, match="issuer"):
        b.verify(a.issue("u").token)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_supported_algorithms(alg: str, clock: Clock) -> None:
    svc = TokenService(generate_secret(), alg, clock=clock)
    token = svc.issue("u").token
    assert svc.verify(token)["sub"] == "u"
    other = TokenService(generate_secret(), "HS256" if alg != "HS256" else "HS384", clock=clock)
    with pytest.raises(TokenError):
        other.verify(token)


def test_unsupported_algorithm_config() -> None:
    for alg in ("none", "RS256", "hs256"):
        with pytest.raises(ValueError, match="not supported"):
            TokenService(SECRET, alg)
    with pytest.raises(ValueError, match="empty"):
        TokenService("", "HS256")


def test_reserved_claims_cannot_be_overridden(svc: TokenService) -> None:
    with pytest.raises(ValueError, match="exp"):
        svc.issue("u", claims={"exp": 10**12})


# -- where the secret comes from -------------------------------------------------


def test_env_vars_override_toml() -> None:
    base = JwtConfig(secret="from-toml", algorithm="HS256", exp_delta_days=7)
    env = {
        "JWT_SECRET": "from-env",
        "JWT_ALGORITHM": "HS512",
        "JWT_EXP_DELTA_DAYS": "2",
        "JWT_PREVIOUS_SECRETS": "a1, b2",
    }
    cfg = jwt_from_env(base, env)
    assert (cfg.secret, cfg.algorithm, cfg.exp_delta_days) == ("from-env", "HS512", 2.0)
    assert cfg.previous_secrets == ["a1", "b2"]
    assert jwt_from_env(base, {}).secret == "from-toml"


def test_bad_env_value_named() -> None:
    with pytest.raises(AuthConfigError, match="exp_delta_days"):
        jwt_from_env(JwtConfig(), {"JWT_EXP_DELTA_DAYS": "soon"})
    with pytest.raises(AuthConfigError, match="positive"):
        jwt_from_env(JwtConfig(), {"JWT_EXP_DELTA_DAYS": "0"})


def test_generated_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    first = resolve_secret(JwtConfig(), tmp_path / "data", production=False)
    path = tmp_path / "data" / SECRET_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret) >= 64 and path.read_text() == first.secret
    assert any("JWT_SECRET is not set" in w for w in first.warnings)
    assert first.secret not in " ".join(first.warnings)
    second = resolve_secret(JwtConfig(), tmp_path / "data", production=False)
    assert second.secret == first.secret
    assert resolve_secret(JwtConfig(), tmp_path / "other", production=False).secret != first.secret


def test_loose_permissions_are_fixed_with_a_warning(tmp_path: Path) -> None:
    resolve_secret(JwtConfig(), tmp_path, production=False)
    os.chmod(tmp_path / SECRET_FILE_NAME, 0o644)
    again = resolve_secret(JwtConfig(), tmp_path, production=False)
    assert stat.S_IMODE((tmp_path / SECRET_FILE_NAME).stat().st_mode) == 0o600
    assert any("readable by others" in w for w in again.warnings)


def test_production_requires_an_explicit_secret(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="production mode needs an explicit JWT secret"):
        resolve_secret(JwtConfig(), tmp_path, production=True)
    assert not (tmp_path / SECRET_FILE_NAME).exists()
    ok = resolve_secret(JwtConfig(secret=generate_secret()), tmp_path, production=True)
    assert ok.warnings == []


def test_production_refuses_short_secret(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="at least 32 bytes"):
        resolve_secret(JwtConfig(secret="my-jwt-key"), tmp_path, production=True)
    with pytest.raises(AuthConfigError, match="at least 64 bytes"):
        resolve_secret(JwtConfig(secret="z" * 40, algorithm="HS512"), tmp_path, production=True)
    dev = resolve_secret(JwtConfig(secret="my-jwt-key"), tmp_path, production=False)
    assert any("weak" in w for w in dev.warnings)


def test_jac_scale_default_secret_refused_everywhere(tmp_path: Path) -> None:
    for production in (False, True):
        with pytest.raises(AuthConfigError, match="published default"):
            resolve_secret(JwtConfig(secret="supersecretkey"), tmp_path, production=production)


def test_secret_file_option(tmp_path: Path) -> None:
    path = tmp_path / "mounted"
    path.write_text(generate_secret() + "\n")
    got = resolve_secret(JwtConfig(secret_file=str(path)), tmp_path, production=True)
    assert got.secret == path.read_text().strip()
    with pytest.raises(AuthConfigError, match="cannot read"):
        resolve_secret(JwtConfig(secret_file=str(tmp_path / "nope")), tmp_path, production=True)
