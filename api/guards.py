"""A guard in front of every route: query parameters PostgreSQL could not store.

A URL can carry a NUL character (``%00``) in any query parameter; no parameter of
ours accepts one, and PostgreSQL's ``text`` cannot hold it, so such a request is
answered here with a 422 naming the parameter (GeoReport's 400 under
``/open311``), before any route reads it. The check is one byte search of the raw
query string, so it costs nothing on ordinary requests.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from geo.errors import TEXT_VALID, unstorable

ASGIApp = Any


class QueryTextGuard:
    """ASGI middleware: refuse a query parameter with a NUL character (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, or answer it when a query parameter cannot be stored."""
        raw: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if b"%00" not in raw:
            await self.app(scope, receive, send)
            return
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            why = unstorable(name + value)
            if why is not None:
                await _refuse(scope, send, name, value, why)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: dict[str, Any], send: Any, name: str, value: str, why: str) -> None:
    shown = value.replace("\x00", "\\x00")[:80]
    message = f"query parameter {name!r} {why}"
    body: Any
    if scope.get("path", "").startswith("/open311"):
        status, body = 400, [{"code": 400, "description": f"{name}: {message}", "field": name,
                              "value": shown, "valid": TEXT_VALID}]
    else:
        status, body = 422, {"detail": {"message": message, "field": name, "value": shown,
                                        "valid": TEXT_VALID}}
    payload = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
