"""Serving the browser pages (/graph, /admin): HTML with a strict CSP and packaged assets.

Assets live under `jacscale_ext/static/` (cytoscape.js is vendored there with its
LICENSE; the pages' own scripts and styles beside it). Nothing is loaded from
another host. Pages reference assets by relative URL, so they work when the app
is mounted under a prefix. Each asset is read and gzipped once per app, in a
worker thread, and cached in `app.state`.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from jacscale_core.context import AppContext
from jacscale_core.errors import not_found

STATIC_DIR = Path(__file__).parent / "static"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
STATE_KEY = "pages.assets"

# URL name -> (file under static/, content type). Nothing outside this table is served.
PAGE_ASSETS: dict[str, tuple[str, str]] = {
    "cytoscape.min.js": ("cytoscape/cytoscape.min.js", JS),
    "graph.js": ("pages/graph.js", JS),
    "admin.js": ("pages/admin.js", JS),
    "pages.js": ("pages/pages.js", JS),
    "pages.css": ("pages/pages.css", CSS),
}
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class PageAsset:
    """One packaged file: bytes, gzipped bytes, ETag, content type."""

    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


def _load(name: str) -> PageAsset:
    relative, media_type = PAGE_ASSETS[name]
    body = (STATIC_DIR / relative).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return PageAsset(body, gzip.compress(body, 6, mtime=0), etag, media_type)


async def page_asset(app: AppContext, name: str) -> PageAsset:
    """A packaged asset, loaded once per app."""
    cache: dict[str, PageAsset] = app.state.setdefault(STATE_KEY, {})
    found = cache.get(name)
    if found is None:
        found = cache[name] = await anyio.to_thread.run_sync(_load, name)
    return found


async def asset_response(app: AppContext, request: Request, allowed: frozenset[str]) -> Response:
    """GET <page>/static/{name}: one of `allowed`, gzipped when accepted, cached by ETag."""
    name = request.path_params["name"]
    if name not in allowed:
        raise not_found(f"No asset {name}")
    found = await page_asset(app, name)
    gz = "gzip" in request.headers.get("accept-encoding", "").lower()
    etag = found.etag[:-1] + '-gz"' if gz else found.etag
    headers = {"Cache-Control": "no-cache", "ETag": etag, "Vary": "Accept-Encoding"}
    wanted = request.headers.get("if-none-match", "")
    if etag in [t.strip() for t in wanted.split(",")]:
        return Response(status_code=304, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped, headers=headers, media_type=found.media_type)
    return Response(found.body, headers=headers, media_type=found.media_type)


def page_response(template: str, **values: Any) -> Response:
    """An HTML page: `template` with `values` HTML-escaped into its {placeholders}."""
    body = template.format(**{k: html.escape(str(v), quote=True) for k, v in values.items()})
    return Response(body, headers=PAGE_HEADERS, media_type="text/html; charset=utf-8")
