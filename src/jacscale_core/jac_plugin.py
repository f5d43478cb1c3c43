"""jaclang runtime hooks, so `jac start` and `jac destroy` use jacscale.

Registered through jaclang's own plugin system (entry-point group `jac`, not
pluggy). What it changes:
- `get_api_server_class`: our server class; its `RestSpecs` is what `@restspec`
  builds (jaclang looks it up at import time), with an extra `envelope` option.
- `create_cmd`: `jac start` gains --host, --workers, --reload, --server, --scale, --build,
  --target, --registry, --experimental; `jac destroy` is added.
- `store`: the `store()` builtin returns the configured jacscale backend.
- `log_report`: `report` does not print to stdout while serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaclang.jac0core.runtime import hookimpl

from jacscale_core.current import active_app, current_app

# Options `jac start` was given that jaclang's own handler does not know about.
_start_options: dict[str, Any] = {}


@dataclass
class RestSpecs:
    """`@restspec(...)` options for a walker or function."""

    method: Any = ""
    path: str = ""
    protocol: Any = "http"
    broadcast: bool = False
    envelope: bool | None = None
    webhook_scheme: str | None = None
    timeout: Any = None  # seconds the request may run (jacscale: 504 after it)


class JacScaleServer:
    """What `jac start` instantiates (jaclang's JacAPIServer interface)."""

    RestSpecs = RestSpecs

    def __init__(self, module_name: str, port: int = 8000, base_path: str = "", **_: Any) -> None:
        self.module_name = module_name
        self.port = port
        self.base_path = base_path

    def app_path(self) -> str:
        """The .jac file being served."""
        filename = _start_options.get("filename")
        if filename:
            return str(Path(filename).resolve())
        return str(Path(self.base_path or ".") / f"{self.module_name}.jac")

    def start(self, dev: bool = False, no_client: bool = False, **_: Any) -> None:
        """Serve the program with jacscale (blocks until stopped)."""
        from jacscale_core.launch import serve

        code = serve(
            self.app_path(),
            server=_start_options.get("server"),
            host=_start_options.get("host"),
            port=self.port,
            workers=_start_options.get("workers"),
            reload=bool(_start_options.get("reload")) or dev,
        )
        if code:
            raise SystemExit(code)


def _start_pre_hook(context: Any) -> None:
    _start_options.clear()
    _start_options.update(
        filename=context.get_arg("filename"),
        host=context.get_arg("host"),
        workers=context.get_arg("workers"),
        reload=context.get_arg("reload"),
        server=context.get_arg("server"),
    )
    if context.get_arg("scale"):
        from jacscale_core.deploy import run_deploy

        code = run_deploy(
            context.get_arg("filename"),
            build=bool(context.get_arg("build")),
            target=context.get_arg("target") or "kubernetes",
            registry=context.get_arg("registry") or "dockerhub",
            experimental=bool(context.get_arg("experimental")),
        )
        context.set_data("cancel_execution", True)
        context.set_data("cancel_return_code", code)


class JacScaleRuntime:
    """The jaclang plugin object (static hook implementations)."""

    @staticmethod
    @hookimpl
    def get_api_server_class() -> type:
        """Serve with jacscale."""
        return JacScaleServer

    @staticmethod
    @hookimpl
    def log_report(expr: Any, custom: bool = False) -> bool | None:
        """Record reports without printing them while serving (they go in the response)."""
        app = active_app()
        if app is None or not app.serving:
            return None
        from jaclang import JacRuntime as Jac
        from jaclang.jac0core.osp_kernel import _current_scope, osp_report

        ctx = Jac.get_context()
        if custom:
            ctx.custom = expr
        elif _current_scope() is not None:
            osp_report(expr)
        else:
            state = ctx.call_state.get(None)
            if state is not None:
                state.reports.put_nowait(expr)
        return True

    @staticmethod
    @hookimpl
    def store(base_path: str = "./storage", create_dirs: bool = True) -> Any:
        """The `store()` builtin: the storage backend the current app's plugins provide."""
        app = current_app()
        backend = app.pm.hook.jacscale_store_builtin(
            app=app, base_path=base_path, create_dirs=create_dirs
        )
        if backend is None:
            raise RuntimeError("no plugin answers store() (is the built-in local storage disabled?)")
        return backend

    @staticmethod
    @hookimpl
    def create_cmd() -> None:
        """Add jacscale's options to `jac start` and the `jac destroy` command."""
        from jaclang.cli.command import Arg, ArgKind
        from jaclang.cli.registry import get_registry

        registry = get_registry()
        registry.extend_command(
            "start",
            args=[
                Arg.create("host", default=None, short="", help="Bind address (default 0.0.0.0)"),
                Arg.create("workers", typ=int, default=None, short="", help="Worker processes (default 1)"),
                Arg.create("reload", kind=ArgKind.FLAG, typ=bool, default=False, short="",
                           help="Restart when source files change"),
                Arg.create("server", default=None, short="",
                           help="HTTP server: hypercorn, uvicorn or granian"),
                Arg.create("scale", kind=ArgKind.FLAG, typ=bool, default=False, short="",
                           help="Deploy to Kubernetes instead of serving locally"),
                Arg.create("build", kind=ArgKind.FLAG, typ=bool, default=False, short="b",
                           help="Build and push the image (with --scale)"),
                Arg.create("experimental", kind=ArgKind.FLAG, typ=bool, default=False, short="e",
                           help="Install from the repository (with --scale)"),
                Arg.create("target", default="kubernetes", short="", help="Deploy target"),
                Arg.create("registry", default="dockerhub", short="", help="Image registry"),
            ],
            pre_hook=_start_pre_hook,
            source="jacscale",
        )  # fmt: skip

        if not registry.has_command("destroy"):

            @registry.command(
                name="destroy",
                help="Remove a jacscale deployment",
                args=[
                    Arg.create("filename", kind=ArgKind.POSITIONAL, default="main.jac",
                               help="Path to .jac file"),
                    Arg.create("yes", kind=ArgKind.FLAG, typ=bool, default=False, short="y",
                               help="Do not ask for confirmation"),
                    Arg.create("target", default="kubernetes", short="", help="Deploy target"),
                ],
                group="deployment",
                source="jacscale",
            )  # fmt: skip
            def destroy(filename: str = "main.jac", yes: bool = False, target: str = "kubernetes") -> int:
                from jacscale_core.deploy import run_destroy

                return run_destroy(filename, yes=yes, target=target)


