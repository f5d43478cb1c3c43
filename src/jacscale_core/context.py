"""AppContext: the one object every hook receives as `app`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from jacscale_core.config import Settings

if TYPE_CHECKING:
    from jacscale_core.executor import Executor
    from jacscale_core.program import Program
    from jacscale_core.store import GraphStore


@dataclass
class AppContext:
    """A served Jac program and everything built around it, per worker process.

    `state` is where extensions keep what they create at start-up (clients,
    pools, registries), keyed by their own name.
    """

    settings: Settings
    program: Program
    pm: pluggy.PluginManager
    store: GraphStore
    executor: Executor
    state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False

    @property
    def hook(self) -> Any:
        """Shortcut for `pm.hook`."""
        return self.pm.hook

    def config_section(self, name: str) -> Any:
        """The decoded jac.toml section `name` (declared through jacscale_config_sections)."""
        return self.settings.section(name)
