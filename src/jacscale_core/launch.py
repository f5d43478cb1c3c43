"""One launcher seam: `jacscale serve --server hypercorn|uvicorn|granian`.

The server is chosen by `--server`, else `JACSCALE_SERVER`, else
`[plugins.scale.server] server` in jac.toml, else `DEFAULT_SERVER`. What every
server gets is the app's own (uvloop, start-up tuning including gc.freeze,
batched logs, body limits, request ids) plus, here, the same process model:

- one worker: start-up runs in the serving loop first (a configuration error
  is one clear line), the banner is printed, and SIGTERM/SIGINT turn readiness
  false, close WebSockets with 1001 and drain before the server stops;
- `--workers N`: hypercorn and uvicorn workers under our supervisor
  (`supervisor.run_workers`: a dead worker is replaced, SIGTERM drains every
  worker); granian under its own (it respawns failed workers, no drain); each
  worker builds the app from the `asgi.WorkerSpec` it is handed (an argument,
  not the environment);
- `--reload`: hypercorn's workers under our supervisor, which restarts them on
  a change; uvicorn's and granian's own file watchers.

The app from the command line, its start-up check and the exit codes (1, 2)
are here, once, for every server; hypercorn specifics are in
`jacscale_core.server`, uvicorn's and granian's below.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jacscale_core.app import create_app, shutdown, startup
from jacscale_core.config import ConfigError, find_toml, read_toml
from jacscale_core.context import AppContext
from jacscale_core.program import ProgramLoadError
from jacscale_core.shutdown import POLL_SECONDS, begin_shutdown, drain_seconds
from jacscale_core.store import StoreUnavailable
from jacscale_core.supervisor import run_workers

if TYPE_CHECKING:
    from jacscale_core.asgi import WorkerSpec

SERVERS = ("hypercorn", "uvicorn", "granian")
# uvicorn (httptools, uvloop): the fastest here on every row measured, with the
# same shutdown and supervision as hypercorn (docs/servers.md says why, with numbers).
DEFAULT_SERVER = "uvicorn"
SERVER_ENV = "JACSCALE_SERVER"


def installed_servers() -> list[str]:
    """The servers importable in this environment, in `SERVERS` order."""
    return [name for name in SERVERS if importlib.util.find_spec(name) is not None]


def resolve_server(app_path: str, chosen: str | None, env: Mapping[str, str] | None = None) -> str:
    """Which server to run: the flag, else the environment, else jac.toml, else the default.

    Raises ConfigError naming the source of an unknown or uninstalled server.
    """
    env = os.environ if env is None else env
    source, name = "--server", chosen
    if not name and env.get(SERVER_ENV):
        source, name = SERVER_ENV, env[SERVER_ENV]
    if not name:
        toml_path = find_toml(Path(app_path).resolve())
        section = read_toml(toml_path).get("plugins", {}).get("scale", {}).get("server", {})
        if isinstance(section, dict) and section.get("server"):
            source, name = "[plugins.scale.server] server", section["server"]
    if not name:
        return DEFAULT_SERVER
    if not isinstance(name, str) or name not in SERVERS:
        raise ConfigError(f"{source} must be one of {', '.join(SERVERS)}, got {name!r}")
    if importlib.util.find_spec(name) is None:
        raise ConfigError(f"{source} names {name}, which is not installed (pip install {name})")
    return name


def serve(
    app_path: str,
    *,
    server: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    reload: bool = False,
    data_dir: str | None = None,
    production: bool | None = None,
    log_format: str | None = None,
) -> int:
    """Serve a Jac program with the chosen server until stopped; return the process exit code.

    Exit code 2: a configuration error; 1: the program does not load or the
    store cannot be opened; each said in one line on stderr.
    """
    from jacscale_core import server as hypercorn_server
    from jacscale_core.asgi import WorkerSpec
    from jacscale_core.server import banner, configure_logging, loop_factory

    cli: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "data_dir": data_dir,
        "production": production or None,
        "log_format": log_format,
    }
    cli = {k: v for k, v in cli.items() if v is not None}
    try:
        name = resolve_server(app_path, server)
    except ConfigError as exc:
        return _refused(exc)
    # Compile in a child first so no serving process loads the compiler's back ends.
    from jacscale_core.malloc_arenas import limit_malloc_arenas
    from jacscale_core.precompile import precompile

    limit_malloc_arenas()  # before any thread starts
    precompile(app_path)
    configure_logging(log_format or os.environ.get("JACSCALE_LOG_FORMAT", "human"))
    try:
        starlette = create_app(app_path, cli=cli)
    except (ProgramLoadError, ConfigError) as exc:
        return _refused(exc, app_path)
    ctx: AppContext = starlette.state.jacscale
    if name != "granian" and ctx.settings.server.workers == 1 and not reload:

        async def run_here() -> int:
            # Start-up first, in the serving loop, so a configuration error is one
            # clear line (the lifespan's own start-up then finds it done).
            try:
                await startup(ctx)
            except STARTUP_ERRORS as exc:
                return _refused(exc)
            print(banner(ctx, len(starlette.routes)), flush=True)
            if name == "uvicorn":
                return await _uvicorn_here(starlette, ctx)
            return await hypercorn_server.serve_here(starlette, ctx)

        return asyncio.run(run_here(), loop_factory=loop_factory())
    # Workers (or a reloader, or granian's workers) build their own app: check
    # start-up once here, release it, then hand over to the supervisor.
    try:
        asyncio.run(_preflight(ctx))
    except STARTUP_ERRORS as exc:
        return _refused(exc)
    print(banner(ctx, len(starlette.routes)), flush=True)
    spec = WorkerSpec(str(ctx.settings.app_path), cli, reload)
    if name == "hypercorn":
        return hypercorn_server.serve_workers(ctx, spec)
    if name == "uvicorn":
        return _uvicorn_supervised(ctx, spec)
    return _granian(ctx, spec)


# What start-up may raise that is the operator's to fix (not a bug): one line each.
STARTUP_ERRORS = (ConfigError, StoreUnavailable, RuntimeError)


def _refused(exc: Exception, app_path: str = "") -> int:
    """Say on stderr why the server cannot start; the exit code (2: configuration)."""
    if isinstance(exc, ConfigError):
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, ProgramLoadError):
        print(f"error: cannot load {app_path}:\n{exc}", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return 1


async def _preflight(ctx: AppContext) -> None:
    """Run start-up and shutdown once (configuration errors surface here), releasing everything."""
    try:
        await startup(ctx)
    finally:
        await shutdown(ctx)


# --------------------------------------------------------------------------
# uvicorn
# --------------------------------------------------------------------------


def _loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def uvicorn_config(ctx: AppContext, app: Any, reload: bool = False) -> Any:
    """uvicorn settings from ours (httptools and uvloop when installed)."""
    import uvicorn

    s = ctx.settings.server
    return uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        workers=s.workers if not reload else 1,
        loop=_loop_name(),
        http="httptools" if importlib.util.find_spec("httptools") is not None else "h11",
        ws="websockets-sansio" if importlib.util.find_spec("websockets") is not None else "wsproto",
        # No permessage-deflate: it compressed each broadcast once per socket and kept
        # a compressor per socket (docs/servers.md).
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=int(s.keep_alive_timeout_seconds),
        timeout_graceful_shutdown=int(s.shutdown_timeout_seconds) or None,
        reload=reload,
        reload_dirs=[str(ctx.settings.app_dir)] if reload else None,
        reload_includes=["*.jac", "*.py", "*.toml"] if reload else None,
    )


def _make_uvicorn_server(config: Any, ctx: AppContext, shutdown_event: Any = None) -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn's server with our shutdown: readiness false, WebSockets 1001, drain, stop.

        A second signal skips the rest of the drain; a third forces the exit.
        The signals are handled on the loop and not re-raised afterwards, so a
        graceful stop exits 0. A worker under our supervisor is also told to
        stop through the supervisor's shared event (`shutdown_event`).
        """

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self._ctx = ctx
            self._stopping: asyncio.Task[None] | None = None
            self._again: asyncio.Event | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            import signal

            loop = asyncio.get_running_loop()
            signals = (signal.SIGINT, signal.SIGTERM) if shutdown_event is None else (signal.SIGTERM,)
            for sig in signals:
                loop.add_signal_handler(sig, self._on_signal)
            watcher = loop.create_task(self._watch(shutdown_event)) if shutdown_event else None
            try:
                yield
            finally:
                if watcher is not None:
                    watcher.cancel()
                for sig in signals:
                    loop.remove_signal_handler(sig)

        async def _watch(self, event: Any) -> None:
            # A multiprocessing Event cannot be awaited: look at it ten times a second.
            while not event.is_set():  # noqa: ASYNC110
                await asyncio.sleep(POLL_SECONDS)
            if self._stopping is None:
                self._on_signal()

        def _on_signal(self) -> None:
            if self._stopping is None:
                self._again = asyncio.Event()
                self._stopping = asyncio.ensure_future(self._drain_then_stop())
            elif not self._stopping.done():
                assert self._again is not None
                self._again.set()
            else:
                self.force_exit = True

        async def _drain_then_stop(self) -> None:
            try:
                await begin_shutdown(self._ctx, drain_seconds(self._ctx), self._again)
            finally:
                self.should_exit = True

    return DrainingServer(config)


async def _uvicorn_here(starlette: Any, ctx: AppContext) -> int:
    """Serve in this process (its start-up done) with uvicorn."""
    server = _make_uvicorn_server(uvicorn_config(ctx, starlette), ctx)
    await server.serve()
    return 0 if server.started else 1


def _uvicorn_supervised(ctx: AppContext, spec: WorkerSpec) -> int:
    """`--workers N`: our supervisor over uvicorn workers; `--reload`: uvicorn's watcher."""
    from jacscale_core.server import hypercorn_config

    if not spec.reload:
        config = hypercorn_config(ctx, reload=False)  # the bind and the graceful timeout
        return run_workers(config, spec, target=uvicorn_worker)
    from uvicorn.supervisors import ChangeReload

    uconfig = uvicorn_config(ctx, "jacscale_core.asgi:app", reload=True)
    sock = uconfig.bind_socket()
    try:
        target = functools.partial(_uvicorn_reloaded_worker, spec)
        ChangeReload(uconfig, target=target, sockets=[sock]).run()
    finally:
        sock.close()
    return 0


def uvicorn_worker(config: Any, sockets: Any, shutdown_event: Any, spec: WorkerSpec) -> None:
    """One uvicorn worker process under `supervisor.run_workers`: build the app, serve, drain first."""
    import signal

    # Ctrl-C reaches the whole process group; the supervisor decides for everyone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _serve_worker(spec, list(sockets.insecure_sockets), shutdown_event)


def _uvicorn_reloaded_worker(spec: WorkerSpec, sockets: list[Any] | None) -> None:
    """The process uvicorn's reloader restarts on changes (signals handled here)."""
    _serve_worker(spec, sockets or [], None)


def _serve_worker(spec: WorkerSpec, sockets: list[Any], shutdown_event: Any) -> None:
    from jacscale_core import asgi
    from jacscale_core.server import loop_factory

    app = asgi.build(spec)
    ctx: AppContext = app.state.jacscale
    server = _make_uvicorn_server(uvicorn_config(ctx, app), ctx, shutdown_event)
    asyncio.run(server.serve(sockets=sockets), loop_factory=loop_factory())


# --------------------------------------------------------------------------
# granian
# --------------------------------------------------------------------------


def _granian(ctx: AppContext, spec: WorkerSpec) -> int:
    """Serve with granian (Rust HTTP/1.1 and WebSockets; its own supervisor and signals).

    What granian does not let us do: run our drain before it stops accepting
    (readiness false and WebSocket 1001 happen in the lifespan's shutdown, as
    granian stops), or turn off its `server` header.
    """
    from granian import Granian
    from granian.constants import Interfaces, Loops

    from jacscale_core import asgi

    s, reload = ctx.settings.server, spec.reload
    server = Granian(
        "jacscale_core.asgi:app",
        address=s.host,
        port=s.port,
        interface=Interfaces.ASGI,
        workers=s.workers if not reload else 1,
        loop=Loops.uvloop if _loop_name() == "uvloop" else Loops.asyncio,
        log_access=False,
        reload=reload,
        reload_paths=[ctx.settings.app_dir] if reload else None,
        workers_kill_timeout=int(s.shutdown_timeout_seconds) or None,
        respawn_failed_workers=True,
    )
    server.serve(target_loader=functools.partial(asgi.load, spec))
    return 0
