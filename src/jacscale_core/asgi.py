"""The ASGI app a worker process serves, built from the `WorkerSpec` it was started with.

`jacscale serve` hands each worker (under `--workers N`, `--reload` or granian)
the spec its command line resolved to, as an argument: nothing goes through
the environment. Also usable directly, with the program named by JACSCALE_APP:
`JACSCALE_APP=app.jac hypercorn jacscale_core.asgi:app`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from jacscale_core.app import create_app
from jacscale_core.http_guards import refuse_h2c_upgrades
from jacscale_core.malloc_arenas import limit_malloc_arenas
from jacscale_core.server import configure_logging


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build the app `jacscale serve` described (picklable)."""

    app_path: str
    cli: dict[str, Any] = field(default_factory=dict)
    reload: bool = False  # restarted on changes: no drain when told to stop


def build(spec: WorkerSpec) -> Starlette:
    """This process's malloc arenas and logging, then the app of `spec`."""
    limit_malloc_arenas()  # a worker process: before its threads start
    configure_logging(spec.cli.get("log_format") or os.environ.get("JACSCALE_LOG_FORMAT", "human"))
    refuse_h2c_upgrades()  # this worker process's hypercorn, too
    return create_app(spec.app_path, cli=spec.cli)


def load(spec: WorkerSpec, _target: str = "") -> Starlette:
    """granian's `target_loader`: the app of `spec` (granian's own target string is ignored)."""
    return build(spec)


def __getattr__(name: str) -> Any:
    """`jacscale_core.asgi:app` for a server pointed at this module: JACSCALE_APP's app."""
    if name == "app":
        return build(WorkerSpec(os.environ.get("JACSCALE_APP", "app.jac")))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
