"""`jacscale serve | routes | plugins`; deploy, db, admin, jobs ... come through `jacscale_register_commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jacscale_core.plugins import PluginError, make_plugin_manager, plugin_names


def _serve(args: argparse.Namespace) -> int:
    from jacscale_core.launch import serve

    return serve(
        args.app,
        server=args.server,
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        data_dir=args.data_dir,
        production=args.production,
        log_format=args.log_format,
    )


def _routes(args: argparse.Namespace) -> int:
    from starlette.routing import Mount, Route, WebSocketRoute

    from jacscale_core.app import create_app
    from jacscale_core.program import ProgramLoadError

    try:
        app = create_app(args.app, data_dir=args.data_dir)
    except ProgramLoadError as exc:
        print(f"error: cannot load {args.app}:\n{exc}", file=sys.stderr)
        return 1
    rows = []
    for route in app.routes:
        if isinstance(route, Route):
            methods = ",".join(sorted(m for m in (route.methods or []) if m != "HEAD"))
            rows.append((methods or "ANY", route.path, route.name or ""))
        elif isinstance(route, WebSocketRoute):
            rows.append(("WS", route.path, route.name or ""))
        elif isinstance(route, Mount):
            rows.append(("MOUNT", route.path or "/", route.name or ""))
    width = max((len(r[1]) for r in rows), default=10)
    for methods, path, name in rows:
        print(f"{methods:<8} {path:<{width}}  {name}")
    app.state.jacscale.store.close()
    return 0


def _plugins(_: argparse.Namespace) -> int:
    pm = make_plugin_manager()
    for name in plugin_names(pm):
        plugin = pm.get_plugin(name)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        print(f"{name}: {', '.join(hooks)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, including plugin commands."""
    parser = argparse.ArgumentParser(prog="jacscale", description="Serve Jac programs as APIs.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve a Jac program")
    serve.add_argument("app", help="path to app.jac")
    serve.add_argument("--host", default=None, help="bind address (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    serve.add_argument("--reload", action="store_true", help="restart on source changes")
    serve.add_argument("--data-dir", default=None, help="where data lives (JAC_DATA_PATH)")
    serve.add_argument(
        "--production", action="store_true", help="refuse unsafe defaults (JACSCALE_ENV=production)"
    )
    serve.add_argument("--log-format", choices=["human", "json"], default=None)
    serve.add_argument(
        "--server", choices=["hypercorn", "uvicorn", "granian"], default=None,
        help="HTTP server (JACSCALE_SERVER; default uvicorn)",
    )  # fmt: skip
    serve.set_defaults(func=_serve)

    routes = sub.add_parser("routes", help="print the route table of a Jac program")
    routes.add_argument("app")
    routes.add_argument("--data-dir", default=None)
    routes.set_defaults(func=_routes)

    plugins = sub.add_parser("plugins", help="list loaded plugins and their hooks")
    plugins.set_defaults(func=_plugins)

    make_plugin_manager().hook.jacscale_register_commands(subparsers=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jacscale` command."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
