"""A tiny authentication plugin for kernel tests: `X-Test-User: alice` logs in as alice.

Each name gets its own root on first use. Not for production (no secret at all);
the real one is the built-in auth extension (docs/auth.md).
"""

from __future__ import annotations

from typing import Any

from jacscale_core.context import AppContext
from jacscale_core.errors import unauthorized
from jacscale_core.plugins import hookimpl
from jacscale_core.principal import Principal


class HeaderAuth:
    """Authenticates `X-Test-User: <name>`; `X-Test-User: !bad` is a present-but-invalid credential."""

    def __init__(self) -> None:
        self.roots: dict[str, str] = {}

    @hookimpl(tryfirst=True)
    async def jacscale_authenticate(self, request: Any, app: AppContext) -> Principal | None:
        """Principal for the X-Test-User header."""
        name = request.headers.get("x-test-user")
        if not name:
            return None
        if name.startswith("!"):
            raise unauthorized("Invalid test credential")
        if name not in self.roots:
            self.roots[name] = await app.executor.create_root()
        return Principal(user_id=name, root_id=self.roots[name], kind="user")
