"""AppContext: the one object every hook receives as `app`, and the owner of process state."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from jacscale_core.config import Settings, find_toml, read_toml

if TYPE_CHECKING:
    from jacscale_core.executor import Executor
    from jacscale_core.program import Program
    from jacscale_core.store import GraphStore

_LONG_PATH = re.compile(r"(/[\w.-]+){2,}/?")


@dataclass
class AppContext:
    """A served Jac program and everything built around it, per worker process.

    It owns what the process needs: settings (app and data directories among
    them), the plugin manager, the paths hidden from clients (`scrub`). `state`
    is where extensions keep what they create at start-up (clients, pools,
    registries), keyed by their own name. `jacscale_core.current` says which
    app the running code belongs to.
    """

    settings: Settings
    program: Program
    pm: pluggy.PluginManager
    store: GraphStore
    executor: Executor
    state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    # True once the ASGI app is built: `report` goes to responses, not stdout.
    serving: bool = False
    hidden_paths: tuple[str, ...] = ()
    _toml: tuple[Path, tuple[int, int], dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def bare(cls, settings: Settings, pm: pluggy.PluginManager) -> AppContext:
        """An app with settings and plugins only; program, store and executor come later."""
        app = cls(settings=settings, program=None, pm=pm, store=None, executor=None)  # type: ignore[arg-type]
        app.hidden_paths = tuple(
            sorted(
                {str(settings.app_dir), str(Path(sys.prefix)), str(Path.home())},
                key=len,
                reverse=True,
            )
        )
        return app

    @property
    def hook(self) -> Any:
        """Shortcut for `pm.hook`."""
        return self.pm.hook

    @property
    def app_dir(self) -> Path:
        """The directory of the Jac program (relative storage paths start here)."""
        return self.settings.app_dir

    def config_section(self, name: str) -> Any:
        """The decoded jac.toml section `name` (declared through jacscale_config_sections)."""
        return self.settings.section(name)

    def scrub(self, message: str) -> str:
        """`message` without server paths, fit to reach a client."""
        for path in self.hidden_paths:
            message = message.replace(path, "<server>")
        return _LONG_PATH.sub("<path>", message)

    def read_toml(self) -> dict[str, Any]:
        """The app's jac.toml as it is on disk now; {} if there is none.

        Parsed again only when the file changed (mtime or size), since `store()`
        and `kvstore()` may ask on every request. Treat the result as read-only.
        """
        path = find_toml(self.app_dir / "app.jac")
        if path is None:
            return {}
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._toml
        if cached is not None and cached[0] == path and cached[1] == version:
            return cached[2]
        data = read_toml(path)
        self._toml = (path, version, data)
        return data
