"""The PluginManager: built-in extensions plus entry points in the group `jacscale`.

The built-ins are found through their own entry-point group (`jacscale.builtins`),
so the kernel never names them. Knobs: JACSCALE_DISABLE_PLUGIN_AUTOLOAD=1 loads
only the built-ins (and any named in JACSCALE_PLUGINS); JACSCALE_PLUGINS=a,b
loads only those entry points by name.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import pluggy

from jacscale_core import hookspecs

log = logging.getLogger("jacscale.plugins")

hookimpl = pluggy.HookimplMarker("jacscale")
hookspec = hookspecs.hookspec


class PluginError(RuntimeError):
    """Plugins cannot be loaded: a hook that does not exist (a misspelling, usually), or none found."""


# Kernel modules that implement hooks themselves (the commands they add).
KERNEL_PLUGINS: tuple[str, ...] = ("jacscale_core.deploy",)

# Entry-point group naming the built-in extensions: each entry point is a
# sequence of module names, registered in that order before any other plugin.
# The autoload knobs do not apply to it.
BUILTINS_GROUP = "jacscale.builtins"


def builtin_plugins() -> list[str]:
    """Module names of the built-in extensions, in registration order."""
    names: list[str] = []
    for ep in sorted(entry_points(group=BUILTINS_GROUP), key=lambda ep: ep.name):
        names.extend(name for name in ep.load() if name not in names)
    if not names:
        raise PluginError(
            f"no built-in extensions found (entry-point group {BUILTINS_GROUP!r}): "
            "jacscale's install metadata is out of date; reinstall it (make venv, "
            "or pip install -e .)"
        )
    return names


async def await_me_maybe(value: Any) -> Any:
    """Return `value`, awaiting it first if it is awaitable (hooks may return either)."""
    if inspect.isawaitable(value):
        value = await value
    return value


def make_plugin_manager(env: Mapping[str, str] | None = None) -> pluggy.PluginManager:
    """Build a manager with the hook specs, the built-ins and the allowed entry points."""
    env = os.environ if env is None else env
    pm = pluggy.PluginManager("jacscale")
    pm.add_hookspecs(hookspecs)
    pm.hook.jacscale_add_hookspecs.call_historic(kwargs={"pm": pm})
    for name in (*KERNEL_PLUGINS, *builtin_plugins()):
        pm.register(importlib.import_module(name), name=name)
    wanted = {p.strip() for p in env.get("JACSCALE_PLUGINS", "").split(",") if p.strip()}
    autoload = env.get("JACSCALE_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
    for ep in entry_points(group="jacscale"):
        if wanted and ep.name not in wanted:
            continue
        if not wanted and not autoload:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        pm.register(ep.load(), name=ep.name)
    check_hookimpls(pm)
    return pm


def check_hookimpls(pm: pluggy.PluginManager) -> None:
    """Refuse hook implementations no spec knows: a misspelled hook is an error, not silence."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin {name!r}: {exc}") from None


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of the registered plugins, built-ins first."""
    return [name for name, _ in pm.list_name_plugin()]


def plugin_sections(pm: pluggy.PluginManager) -> dict[str, type]:
    """Every jac.toml section the loaded plugins declare (`jacscale_config_sections`)."""
    sections: dict[str, type] = {}
    for contribution in pm.hook.jacscale_config_sections():
        if contribution:
            sections.update(contribution)
    return sections
