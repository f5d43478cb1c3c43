"""Start jac-scale 0.2.31 (`jac start APP --port P`) bound to 127.0.0.1 only.

jac-scale 0.2.31 has no --host flag and always binds 0.0.0.0; the benchmarks
serve on loopback only, so this launcher forces uvicorn's host to 127.0.0.1 and
then runs jaclang's own CLI unchanged. Run it with jac-scale's venv Python:
``python jacscale_launch.py app.jac PORT``.
"""

import sys
from typing import Any

import uvicorn

_original_init = uvicorn.Config.__init__


def _loopback_init(self: uvicorn.Config, app: Any, *args: Any, **kwargs: Any) -> None:
    """Build uvicorn's config as jac-scale asks, but bound to 127.0.0.1."""
    kwargs["host"] = "127.0.0.1"
    _original_init(self, app, *args, **kwargs)


def main() -> int:
    """Run `jac start APP --port PORT` with the loopback patch in place."""
    if len(sys.argv) != 3:
        print("usage: jacscale_launch.py APP.jac PORT", file=sys.stderr)
        return 2
    uvicorn.Config.__init__ = _loopback_init  # type: ignore[method-assign]
    from jaclang.jac0core.cli_boot import start_cli

    sys.argv = ["jac", "start", sys.argv[1], "--port", sys.argv[2]]
    result = start_cli()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
