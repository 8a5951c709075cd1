"""A guard in front of every route: paths and query parameters PostgreSQL could not store.

A URL can carry a NUL character (``%00``) in its path or any query parameter; no
parameter of ours accepts one, and PostgreSQL's ``text`` cannot hold it, so such a
request is answered here with a 422 naming the parameter (or ``path``; GeoReport's 400
under ``/open311``; an HTML page for a browser under ``/maps``) before any route reads
it. The check is one byte search of the raw query string and one of the path, so it
costs nothing on ordinary requests.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect

from geo.errors import TEXT_VALID, unstorable

ASGIApp = Any


class QueryTextGuard:
    """ASGI middleware: refuse a query parameter with a NUL character (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, or answer it when a query parameter cannot be stored."""
        raw: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if scope["type"] == "http" and "\x00" in scope.get("path", ""):
            await _refuse(scope, send, "path", scope["path"], "contains a NUL character")
            return
        if b"%00" not in raw:
            await self.app(scope, receive, send)
            return
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            why = unstorable(name + value)
            if why is not None:
                await _refuse(scope, send, name, value, why)
                return
        await self.app(scope, receive, send)


#: What a multipart body may carry beyond its file's limit (its other fields, boundaries):
#: the file itself is checked by ``api.uploads``, which names it.
MULTIPART_SLACK = 16 << 20


class BodyLimit:
    """ASGI middleware: a request body larger than ``max_bytes`` (a multipart one: that plus
    :data:`MULTIPART_SLACK`) is answered 413 before it is read whole (``Content-Length``
    first, then the bytes as they arrive); the app, told the client left, stops reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, counting its body, or answer 413."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.max_bytes + (MULTIPART_SLACK if headers.get(
            b"content-type", b"").startswith(b"multipart/") else 0)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, int(declared))
            return
        seen = 0
        started = answered = False

        async def counted() -> Any:
            nonlocal seen, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                seen += len(message.get("body", b""))
                if seen > limit and not started:
                    await self._too_large(scope, send, seen)
                    answered = True  # the app reads a disconnect; what it answers is dropped
                    return {"type": "http.disconnect"}
            return message

        async def sending(message: Any) -> None:
            nonlocal started
            if answered:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except ClientDisconnect:  # the app read the disconnect that follows our 413
            if not answered:
                raise

    async def _too_large(self, scope: dict[str, Any], send: Any, size: int) -> None:
        mib = self.max_bytes / (1 << 20)
        message = f"the request body ({size:,} bytes so far) is larger than {mib:g} MiB"
        body: Any = {"detail": {"message": message, "field": "body", "value": size,
                                "valid": f"a body of at most {mib:g} MiB "
                                         "(PATROLGRID_MAX_UPLOAD_MB)"}}
        if scope.get("path", "").startswith("/open311"):
            body = [{"code": 413, "description": f"body: {message}", "field": "body",
                     "value": size}]
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


async def _refuse(scope: dict[str, Any], send: Any, name: str, value: str, why: str) -> None:
    shown = value.replace("\x00", "\\x00")[:80]
    message = f"the path {why}" if name == "path" else f"query parameter {name!r} {why}"
    body: Any
    if scope.get("path", "").startswith("/open311"):
        status, body = 400, [{"code": 400, "description": f"{name}: {message}", "field": name,
                              "value": shown, "valid": TEXT_VALID}]
    else:
        status, body = 422, {"detail": {"message": message, "field": name, "value": shown,
                                        "valid": TEXT_VALID}}
    kind = b"application/json"
    payload = json.dumps(body, ensure_ascii=False).encode()
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    if scope.get("path", "").startswith("/maps") and b"text/html" in accept:  # a browser
        kind = b"text/html; charset=utf-8"
        payload = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>422</title>'
                   f'<link rel="icon" href="data:,"></head><body><h1>422</h1>'
                   f"<p>{html.escape(message)}</p><p>{html.escape(name)}: "
                   f"{html.escape(shown)}</p><p>valid: {html.escape(TEXT_VALID)}</p>"
                   f"</body></html>").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


#: Marks a request that came as HEAD and is served as GET (``scope`` key).
HEAD_KEY = "patrolgrid.head"


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` request is served as the ``GET`` of the same URL (same
    status and headers, ``Content-Length`` included) without its body, as HTTP asks of
    every resource that answers GET; the routes declare GET only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on; for HEAD, as GET with the body dropped."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_KEY: True}, receive, headers_only)
