"""The process supervisor of `--workers N` (and of hypercorn's `--reload`).

It binds the sockets once, starts N worker processes that share them, and:

- on SIGTERM/SIGINT sets the shared shutdown event: each worker drains
  (`jacscale_core.shutdown`) and stops, and the supervisor waits for them;
- replaces a worker that dies on its own (an OOM kill, a crash) after a
  back-off while the others keep serving; a worker that dies within
  `startup_seconds` of starting is a start-up failure, and after
  `max_startup_failures` of them in a row every worker is stopped and the
  supervisor exits non-zero (the program cannot start: replacing it would loop);
- with `reload`, restarts every worker when a loaded source file changes.

A worker process runs `target(config, sockets, shutdown_event, spec)`:
`jacscale_core.server.worker` for hypercorn, `jacscale_core.launch.uvicorn_worker`
for uvicorn. `spec` (a `jacscale_core.asgi.WorkerSpec`) is how it builds the app.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event as EventType
from typing import Any

from hypercorn.config import Config, Sockets
from hypercorn.utils import check_for_updates, files_to_watch

from jacscale_core.shutdown import POLL_SECONDS, drain_seconds

JOIN_MARGIN_SECONDS = 10.0
# A worker that dies within this long of starting failed at start-up.
STARTUP_SECONDS = 10.0
# After this many start-up failures in a row the supervisor gives up.
MAX_STARTUP_FAILURES = 5
# Replacing a dead worker waits this long, doubled per start-up failure in a row.
RESTART_BACKOFF_SECONDS = 0.5
RESTART_BACKOFF_MAX = 30.0
# With `reload`, the loaded source files are looked at this often.
RELOAD_CHECK_SECONDS = 1.0

log = logging.getLogger("jacscale.server")

Target = Callable[[Config, Sockets, EventType, Any], None]


def run_workers(
    config: Config,
    spec: Any,
    *,
    target: Target,
    reload: bool = False,
    startup_seconds: float = STARTUP_SECONDS,
    max_startup_failures: int = MAX_STARTUP_FAILURES,
) -> int:
    """Supervise `config.workers` processes running `target`; return the exit code."""
    sockets = config.create_sockets()
    spawn = multiprocessing.get_context("spawn")
    shutdown_event = spawn.Event()
    stopping = False

    def on_signal(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        shutdown_event.set()

    def start() -> Any:
        process = spawn.Process(
            target=target,
            kwargs={
                "config": config, "sockets": sockets, "shutdown_event": shutdown_event,
                "spec": spec,
            },
        )  # fmt: skip
        process.daemon = False
        process.start()
        started[process.pid] = time.monotonic()
        return process

    def stop_all(bound: float) -> None:
        shutdown_event.set()
        for process in processes:
            process.join(bound)
            if process.is_alive():
                log.error("worker %s did not stop within %.0fs: terminating", process.pid, bound)
                process.terminate()
                process.join(5)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started: dict[int | None, float] = {}
    processes: list[Any] = []
    failed_code = 0
    bound = drain_seconds() + float(config.graceful_timeout) + JOIN_MARGIN_SECONDS
    try:
        processes = [start() for _ in range(config.workers)]
        watched = files_to_watch() if reload else {}
        next_check = time.monotonic() + RELOAD_CHECK_SECONDS
        quick_deaths = 0  # start-up failures in a row
        due: list[float] = []  # when each pending replacement may start
        while not stopping:
            wait([p.sentinel for p in processes], timeout=POLL_SECONDS)
            now = time.monotonic()
            if reload and now >= next_check:
                next_check = now + RELOAD_CHECK_SECONDS
                if check_for_updates(watched):
                    log.info("a source file changed: restarting the workers")
                    stop_all(bound)
                    shutdown_event.clear()
                    started.clear()
                    processes = [start() for _ in range(config.workers)]
                    watched = files_to_watch()
                    quick_deaths, due = 0, []
                    continue
            for process in [p for p in processes if not p.is_alive()]:
                if stopping:
                    break
                processes.remove(process)
                lived = now - started.pop(process.pid, now)
                quick_deaths = quick_deaths + 1 if lived < startup_seconds else 0
                if quick_deaths >= max_startup_failures:
                    log.error(
                        "worker %s exited with code %s %.1fs after starting, %d start-up"
                        " failures in a row: stopping the server",
                        process.pid, process.exitcode, lived, quick_deaths,
                    )  # fmt: skip
                    failed_code = process.exitcode or 1
                    stopping = True
                    shutdown_event.set()
                    break
                delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_SECONDS * 2**quick_deaths)
                log.error(
                    "worker %s exited with code %s after %.1fs; starting a replacement in"
                    " %.1fs (%d of %d workers serving)",
                    process.pid, process.exitcode, lived, delay, len(processes), config.workers,
                )  # fmt: skip
                due.append(now + delay)
            while not stopping and due and min(due) <= time.monotonic():
                due.remove(min(due))
                replacement = start()
                processes.append(replacement)
                log.info("worker %s started to replace an exited one", replacement.pid)
        stop_all(bound)
        if failed_code:
            return failed_code
        codes = [p.exitcode or 0 for p in processes]
        return next((c for c in codes if c), 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in [*sockets.insecure_sockets, *sockets.secure_sockets]:
            sock.close()
