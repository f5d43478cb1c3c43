"""Where the JWT signing secret comes from: no known default, ever.

In order: `JWT_SECRET` / `[plugins.scale.jwt] secret`; `JWT_SECRET_FILE` /
`secret_file` (e.g. a mounted Kubernetes secret); otherwise, outside
production only, a random secret generated once and kept in
`<data dir>/jwt_secret` with mode 0600 (a warning says so at start-up).
Production refuses to start without an explicit secret, and refuses secrets
shorter than RFC 7518 requires for the algorithm. jac-scale's published
default (`supersecretkey`) is refused everywhere.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from jacscale_ext.auth.config import AuthConfigError, JwtConfig
from jacscale_ext.auth.tokens import generate_secret, weak_secret_reason

log = logging.getLogger("jacscale.auth")

SECRET_FILE_NAME = "jwt_secret"
KNOWN_PUBLIC_SECRETS = frozenset({"supersecretkey"})


@dataclass(slots=True)
class ResolvedSecret:
    """The secret to sign with, where it came from, and warnings for the start-up log."""

    secret: str
    source: str
    warnings: list[str] = field(default_factory=list)


def _read_secret_file(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuthConfigError(f"cannot read JWT secret file {path}: {exc.strerror}") from exc
    if not value:
        raise AuthConfigError(f"JWT secret file {path} is empty")
    return value


def _generated_secret(data_dir: Path) -> tuple[str, list[str]]:
    """Read `<data_dir>/jwt_secret`, creating it (0600, atomically) the first time."""
    path = data_dir / SECRET_FILE_NAME
    warnings: list[str] = []
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{SECRET_FILE_NAME}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, generate_secret().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic; fails if another worker won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        warnings.append(
            f"JWT secret file {path} was readable by others (mode {mode:o}); set to 600"
        )
    warnings.append(
        f"JWT_SECRET is not set: signing tokens with a generated secret kept in {path}. "
        "Tokens stay valid across restarts on this machine only; set JWT_SECRET for "
        "several hosts (production refuses to start without it)."
    )
    return _read_secret_file(path), warnings


def resolve_secret(config: JwtConfig, data_dir: Path, production: bool) -> ResolvedSecret:
    """Find the signing secret, or raise AuthConfigError saying what to set. Blocking I/O."""
    warnings: list[str] = []
    if config.secret:
        secret, source = config.secret, "JWT_SECRET / [plugins.scale.jwt] secret"
    elif config.secret_file:
        secret = _read_secret_file(Path(config.secret_file))
        source = f"secret file {config.secret_file}"
    elif production:
        raise AuthConfigError(
            "production mode needs an explicit JWT secret: set JWT_SECRET (or "
            "JWT_SECRET_FILE, or [plugins.scale.jwt] secret in jac.toml) to a random "
            "value of at least 32 bytes, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`"
        )
    else:
        secret, warnings = _generated_secret(data_dir)
        source = f"generated ({data_dir / SECRET_FILE_NAME})"
    if secret in KNOWN_PUBLIC_SECRETS:
        raise AuthConfigError(
            "the JWT secret is jac-scale's published default, which lets anyone forge "
            "tokens; set JWT_SECRET to a random value"
        )
    weak = weak_secret_reason(secret, config.algorithm)
    if weak:
        if production:
            raise AuthConfigError(f"JWT secret too short for production: {weak}")
        warnings.append(f"JWT secret is weak: {weak}")
    return ResolvedSecret(secret=secret, source=source, warnings=warnings)
