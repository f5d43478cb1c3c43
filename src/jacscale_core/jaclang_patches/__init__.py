"""Every change jacscale makes to jaclang at run time, installed by `install_all()`.

jacscale runs Jac programs on the jaclang version it pins (`PINNED_JACLANG`, the
same pin as pyproject.toml). The patches below replace jaclang internals by
name, so on any other version they could silently do the wrong thing:
`install_all()` refuses to run there (`JaclangVersionError`, naming both
versions) before it patches anything. It is called from one place,
`jacscale_core.program.load_program`, so the refusal happens at start-up, and
it is idempotent (a second call changes nothing).

What is patched, and why:

- `builtins`: `perm_grant`, `perm_revoke`, `allow_root`, `disallow_root` and the
  access levels `NO_ACCESS`, `READ`, `CONNECT`, `WRITE` are added to Python's
  builtins, and `UploadFile` to the stdlib `http` module, because programs
  written for jac-scale use these names without importing them (jaclang
  resolves them at run time). `allow_root` / `disallow_root` also accept a root
  id given as a string, and answer 400 for one that is not an id.
- `hook_dispatch`: every synchronous hook proxy on jaclang's
  `JacRuntimeInterface` (and the copies jaclang's modules hold, such as
  `jaclib.report`) is replaced by one that binds arguments from a precomputed
  table instead of `inspect.Signature.bind_partial`, which was a third of a
  trivial walker's spawn time. Same hook, same keyword call.
- `traversal`: `JacRuntimeInterface.edges_to_nodes` (`[-->]`) runs the same loop
  without per-stub hook calls while the memory is a jacscale `RequestMemory`,
  and `jaclang.runtimelib.planner.execute_path` skips analysing the filter
  bytecode there (it can only answer from the topology index, which jacscale
  keeps off). Anything unusual goes to jaclang's own code.

Not patches, and so not here: `jacscale_core.jac_plugin` implements jaclang's
own plugin hooks (`jac start`, `store()`, `report`), registered through
jaclang's entry point; `jacscale_core.app` sets jaclang's
`strict_permissions` flag and turns its topology index off, both documented
settings; `jacscale_core.memory.track_writes` changes the program's classes,
not jaclang's.
"""

from __future__ import annotations

from importlib.metadata import version

from jacscale_core.program import ProgramLoadError

PINNED_JACLANG = "0.16.7"


class JaclangVersionError(ProgramLoadError):
    """The installed jaclang is not the version jacscale's patches were written for."""


def installed_jaclang() -> str:
    """The version of the jaclang distribution installed in this environment."""
    return version("jaclang")


def check_jaclang_version(installed: str | None = None) -> None:
    """Raise JaclangVersionError unless `installed` (default: the installed jaclang) is the pin."""
    found = installed_jaclang() if installed is None else installed
    if found != PINNED_JACLANG:
        raise JaclangVersionError(
            f"jacscale requires jaclang {PINNED_JACLANG}, but jaclang {found} is installed: "
            f"jacscale patches jaclang internals that change between versions "
            f"(install it with: pip install jaclang=={PINNED_JACLANG})"
        )


def install_all() -> None:
    """Check the jaclang version, then install every patch (idempotent)."""
    check_jaclang_version()
    from jacscale_core.jaclang_patches import builtins, hook_dispatch, traversal

    builtins.install()
    hook_dispatch.install()
    traversal.install()
