"""Who is making a request: the result of authentication."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

PrincipalKind = Literal["user", "api_key", "guest"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller and the graph root its walkers run on.

    `kind` is "user" for a bearer token, "api_key" for a webhook key (acting for
    the key's owner) and "guest" for anonymous callers of `:pub` endpoints, who
    all share one guest root.
    """

    user_id: str
    root_id: str
    kind: PrincipalKind = "user"
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def is_guest(self) -> bool:
        """True for the shared anonymous principal."""
        return self.kind == "guest"
