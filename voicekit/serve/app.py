"""The ASGI app: the web page, ``/healthz`` and the ``/ws`` voice endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from voicekit.serve import rtvi
from voicekit.serve.config import ServeConfig, normalize_origin
from voicekit.serve.connection import ServeConnection
from voicekit.serve.limits import Budget
from voicekit.serve.wire import encode_message

log = logging.getLogger(__name__)

WEB = Path(__file__).parent / "web"
_PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/mic-worklet.js": ("mic-worklet.js", "text/javascript; charset=utf-8"),
}
_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:"
)


class ConnectionHub:
    """Admits connections (token, origin, connection limit) and tracks the live sessions."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.connections: set[ServeConnection] = set()
        self.served = 0
        self._tasks: dict[ServeConnection, asyncio.Task[Any]] = {}
        self._closing = False
        # a client that reconnects as fast as it is thrown out would make the server start a
        # conversation each time: new ones are admitted at a bounded rate
        self._admissions = Budget(config.limits.new_sessions_burst, config.limits.new_sessions_per_s)

    def refusal(self, ws: WebSocket) -> tuple[int, str] | None:
        """Why this connection may not start a conversation: (HTTP status, reason), or None."""
        tokens = self.config.tokens
        if tokens:
            given = ws.query_params.get("token") or _bearer(ws.headers.get("authorization", ""))
            if not given:
                return 401, "a token is required: ?token=... or Authorization: Bearer ..."
            if not any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens):
                return 403, "the token is not valid"
        origin = ws.headers.get("origin")
        if origin and not tokens and not self._origin_allowed(origin):
            # without tokens, any web page the user visits could otherwise talk through their keys
            return 403, f"origin {origin[:200]} is not allowed (see --allow-origin)"
        return None

    def _origin_allowed(self, origin: str) -> bool:
        """Whether a browser page from ``origin`` may connect: only the configured public origins
        and this server's own loopback origins, never anything read from the request itself (a
        page on a rebound DNS name sends a Host header that matches its Origin)."""
        allowed = self.config.public_origins()
        return "*" in allowed or normalize_origin(origin) in allowed

    async def endpoint(self, ws: WebSocket) -> None:
        """The ``/ws`` route: admit the connection and serve it; nothing it does escapes as an
        exception (a failure is logged and ends this connection only)."""
        try:
            await self._serve_socket(ws)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a websocket connection failed before its conversation began")
            with contextlib.suppress(Exception):
                await ws.close(1011, "internal error")

    async def _serve_socket(self, ws: WebSocket) -> None:
        refusal = self.refusal(ws)
        if refusal is not None:
            status, reason = refusal
            log.info("refused a connection from %s: %s", ws.client.host if ws.client else "?", reason)
            await ws.send_denial_response(PlainTextResponse(reason + "\n", status_code=status))
            return
        full = len(self.connections) >= self.config.max_sessions
        if not self._closing and not full and not self._admissions.take():
            limits = self.config.limits
            reason = (
                f"too many new conversations (at most {limits.new_sessions_burst} at once, then "
                f"{limits.new_sessions_per_s:g} a second): try again in a moment"
            )
            # refused at the handshake, the cheapest answer: a client reconnecting in a loop costs little
            response = PlainTextResponse(reason + "\n", status_code=429, headers={"Retry-After": "1"})
            await ws.send_denial_response(response)
            return
        if self._closing or full:
            reason = (
                "server is shutting down"
                if self._closing
                else f"server is full ({self.config.max_sessions} conversations): try again later"
            )
            await ws.accept()
            await ws.send_bytes(encode_message(json.dumps(rtvi.error(reason, fatal=True))))
            await ws.close(1013, reason)
            return
        connection = ServeConnection(ws, self.config)
        self.connections.add(connection)
        self.served += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks[connection] = task
        try:
            await ws.accept()
            ending = await connection.run()
            log.info("connection ended: %s", ending.reason)
        finally:
            self.connections.discard(connection)
            self._tasks.pop(connection, None)

    async def close_all(self, reason: str = "server shutting down", timeout: float = 15.0) -> None:
        """End every conversation (closing its backends and remote sessions) and its socket."""
        self._closing = True
        for connection in list(self.connections):
            connection.stop(1001, reason)
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self._tasks.values()):
            task.cancel()  # a backend that would not close in time
        while self.connections and asyncio.get_running_loop().time() < deadline + 5:
            await asyncio.sleep(0.05)
        flush = getattr(self.config.ledger, "flush", None)
        if flush is not None:  # rows closed in the background (DeferredLedger) are written before the exit
            await asyncio.to_thread(flush)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "closing" if self._closing else "ok",
                "sessions": len(self.connections),
                "max_sessions": self.config.max_sessions,
                "served": self.served,
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.close_all()


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def page(request: Request) -> Response:
    name, media_type = _PAGES[request.url.path]
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}
    return Response((WEB / name).read_bytes(), media_type=media_type, headers=headers)


def create_app(config: ServeConfig) -> Starlette:
    """The server's ASGI app; ``app.state.hub`` holds the live sessions."""
    hub = ConnectionHub(config)
    routes: list[BaseRoute] = [Route(path, page) for path in _PAGES]
    routes += [Route("/healthz", hub.healthz), WebSocketRoute("/ws", hub.endpoint)]
    app = Starlette(routes=routes, lifespan=hub.lifespan)
    app.state.hub = hub
    return app
