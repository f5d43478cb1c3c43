"""Patch: names the reference document's Jac programs use without importing them.

jaclang 0.16.7 compiles `perm_grant(p, READ)` fine and resolves the names at run
time from Python's builtins, so installing them there before the program loads is
enough. `allow_root` accepts a root id as a string or a UUID. `UploadFile` is set
on the stdlib `http` module so `import from http { UploadFile }` works.
"""

from __future__ import annotations

import builtins
import http
from typing import Any
from uuid import UUID

from jaclang import JacRuntime as Jac
from jaclang.jac0core.archetype import AccessLevel
from starlette.datastructures import UploadFile

NO_ACCESS = AccessLevel.NO_ACCESS
READ = AccessLevel.READ
CONNECT = AccessLevel.CONNECT
WRITE = AccessLevel.WRITE


class InvalidRootId(ValueError):
    """`allow_root`/`disallow_root` got something that is not a root id."""

    api_code = "BAD_REQUEST"  # the id usually comes from the request: a 400, not a 500


def _root_uuid(root_id: Any) -> UUID:
    if isinstance(root_id, UUID):
        return root_id
    arch_anchor = getattr(root_id, "__jac__", None)
    if arch_anchor is not None:
        return arch_anchor.id
    try:
        return UUID(str(root_id))
    except ValueError as exc:
        shown = str(root_id)[:64]
        raise InvalidRootId(f"not a root id: {shown!r} (expected 32 hex digits or a UUID)") from exc


def perm_grant(archetype: Any, level: Any = READ) -> None:
    """Allow everyone to access `archetype` at `level`."""
    Jac.perm_grant(archetype, level)


def perm_revoke(archetype: Any) -> None:
    """Remove all public access to `archetype`."""
    Jac.perm_revoke(archetype)


def allow_root(archetype: Any, root_id: Any, level: Any = READ) -> None:
    """Grant the user whose root is `root_id` access to `archetype` at `level`."""
    Jac.allow_root(archetype, _root_uuid(root_id), level)


def disallow_root(archetype: Any, root_id: Any, level: Any = READ) -> None:
    """Revoke the access of the user whose root is `root_id`."""
    Jac.disallow_root(archetype, _root_uuid(root_id), level)


PROGRAM_BUILTINS: dict[str, Any] = {
    "perm_grant": perm_grant,
    "perm_revoke": perm_revoke,
    "allow_root": allow_root,
    "disallow_root": disallow_root,
    "NO_ACCESS": NO_ACCESS,
    "READ": READ,
    "CONNECT": CONNECT,
    "WRITE": WRITE,
}


def install() -> None:
    """Make the reference document's builtin names resolvable in Jac programs (idempotent)."""
    for name, value in PROGRAM_BUILTINS.items():
        if not hasattr(builtins, name):
            setattr(builtins, name, value)
    if not hasattr(http, "UploadFile"):
        http.UploadFile = UploadFile  # type: ignore[attr-defined]
