"""The human API reference at /docs (provider) and /_sandbox/docs (control plane): Redoc
rendering the published document, from a bundle vendored as package data (static/, put there
by tools/vendor_redoc.py) so the page works offline and asks no CDN for anything. The Content
Security Policy keeps it that way: scripts, documents and images from this server only."""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
</head>
<body>
<redoc spec-url="{spec}" hide-download-button="false"></redoc>
<script src="/docs/redoc.standalone.js"></script>
</body>
</html>
"""


@cache
def _bundle() -> bytes:
    return files("simulator.api").joinpath("static/redoc.standalone.js").read_bytes()


async def page(request: Request) -> Response:
    sandbox = request.url.path.startswith("/_sandbox")
    title = "Sandbank control plane" if sandbox else "Sandbank provider API"
    spec = "/_sandbox/openapi.json" if sandbox else "/openapi.json"
    body = PAGE.format(title=html.escape(title), spec=spec)
    return HTMLResponse(body, headers={"Content-Security-Policy": CSP})


async def bundle(request: Request) -> Response:
    return Response(
        _bundle(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
