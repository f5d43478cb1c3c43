"""The physical ceiling: a bare Starlette JSON route under the same server as ours.

Served the way `jacscale serve` serves an app with one worker under the server
`JACSCALE_SERVER` names (the default is `jacscale_core.launch.DEFAULT_SERVER`),
same loop, access log off, same keep-alive, so the benchmark table can say what
fraction of "HTTP + JSON on this stack" a walker request reaches. POST /ceiling
parses the JSON body and answers a small JSON object.

Usage: ``python ceiling_app.py --port PORT`` (binds 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ceiling(request: Request) -> JSONResponse:
    """Decode the JSON body and answer it inside a small envelope."""
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    return JSONResponse({"ok": True, "data": {"result": body, "reports": []}, "error": None})


app = Starlette(routes=[Route("/ceiling", ceiling, methods=["POST"])])


def main() -> None:
    """Serve the ceiling app on 127.0.0.1:PORT until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    from jacscale_core.launch import DEFAULT_SERVER

    server = os.environ.get("JACSCALE_SERVER") or DEFAULT_SERVER
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                    access_log=False, log_config=None, server_header=False, timeout_keep_alive=75)  # fmt: skip
        return
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces, Loops

        Granian("ceiling_app:app", address="127.0.0.1", port=args.port, interface=Interfaces.ASGI,
                loop=Loops.uvloop, log_access=False).serve()  # fmt: skip
        return
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    # The same event loop `jacscale serve` uses (uvloop when installed).
    from jacscale_core.server import loop_factory

    asyncio.run(serve(app, config), loop_factory=loop_factory())  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
