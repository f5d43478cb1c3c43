"""A tiny WebSocket server for the ws_load tests: echo and broadcast, jac-scale-shaped.

Usage: ``python ws_test_app.py PORT`` (127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import json
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

ROOM: set[WebSocket] = set()


def envelope(report: object) -> str:
    return json.dumps({"ok": True, "data": {"result": {}, "reports": [report]}})


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text(envelope(json.loads(await ws.receive_text())))
    except WebSocketDisconnect:
        return


async def room(ws: WebSocket) -> None:
    await ws.accept()
    ROOM.add(ws)
    try:
        while True:
            text = envelope(json.loads(await ws.receive_text()))
            await asyncio.gather(*(peer.send_text(text) for peer in list(ROOM)))
    except WebSocketDisconnect:
        ROOM.discard(ws)


app = Starlette(routes=[WebSocketRoute("/ws/Echo", echo), WebSocketRoute("/ws/Room", room)])

if __name__ == "__main__":
    config = Config()
    config.bind = [f"127.0.0.1:{sys.argv[1]}"]
    config.accesslog = None
    asyncio.run(serve(app, config))  # type: ignore[arg-type]
