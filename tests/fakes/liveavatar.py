"""A local stand-in for the LiveAvatar API and its LITE-mode session websocket.

REST as documented (docs.liveavatar.com, captured bodies in ``tests/samples/heygen/``):
``POST /v1/sessions/token`` (``X-API-KEY``) → ``{session_id, session_token}``;
``POST /v1/sessions/start`` (``Authorization: Bearer <session_token>``, once) →
``{session_id, livekit_url, livekit_client_token, livekit_agent_token,
max_session_duration, ws_url}``; ``POST /v1/sessions/keep-alive``;
``POST /v1/sessions/stop`` (API key + ``session_id``, or the session token);
``GET /v1/sessions?type=active|historic``. Replies use the ``{"code": 100, "data",
"message"}`` envelope. A session expires after ``idle_timeout_s`` without activity and
at ``max_session_duration``; 3 sessions may be open at once.

The LITE websocket (``ws_url``) says ``session.state_updated`` ``connected``, takes
``agent.speak`` (base64 PCM16 24 kHz, ≤ 1 MB), ``agent.speak_end``, ``agent.interrupt``
and ``session.keep_alive``, and "plays" each speaking event in real time (``speed``
times faster), answering ``agent.speak_started`` / ``agent.speak_ended``.

Not verified against the live service (the docs do not show them): error bodies and
codes (here ``{"code": <status>, "data": null, "message": ...}``, 400004 for a session
that does not exist, as HeyGen does), the shape of the session list
(``data.sessions[]``), and the ``livekit_url`` (unreachable here: no LiveKit server).

Standalone: ``python -m tests.fakes.liveavatar --port 8090 --key test-key``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.avatar_base import JSON, FakeService, serve_forever

RATE = 24000


@dataclass
class SpeakEvent:
    event_id: str
    audio: bytearray = field(default_factory=bytearray)
    ended: bool = False  # agent.speak_end received
    chunks: int = 0


@dataclass
class LiveSession:
    session_id: str
    token: str
    body: dict[str, Any]
    mode: str
    created_at: float = field(default_factory=time.time)
    state: str = "created"  # created -> started -> stopped / expired
    started_at: float | None = None
    max_duration_s: float = 1200.0
    last_activity: float = field(default_factory=time.monotonic)
    closed_reason: str | None = None
    keepalives: int = 0
    ws_keepalives: int = 0
    interrupts: int = 0
    events: list[SpeakEvent] = field(default_factory=list)
    ws_messages: list[dict[str, Any]] = field(default_factory=list)
    stop_body: Any = None

    @property
    def open(self) -> bool:
        return self.state in ("created", "started")

    @property
    def stopped(self) -> bool:
        """Stopped by the client (not expired)."""
        return self.state == "stopped"

    @property
    def keep_alive_count(self) -> int:
        """Keep-alives by REST and over the LITE websocket."""
        return self.keepalives + self.ws_keepalives


class FakeLiveAvatar(FakeService):
    """The fake service; inspect ``sessions`` and ``calls`` after a test."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        avatars: tuple[str, ...] = ("3c90c3cc-0d44-4b50-8888-8dd25736052a",),
        concurrent_limit: int = 3,
        idle_timeout_s: float = 300.0,
        plan_max_duration_s: int = 1200,
        speed: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, avatars=avatars, concurrent_limit=concurrent_limit, **kwargs)
        self.idle_timeout_s = idle_timeout_s
        self.plan_max_duration_s = plan_max_duration_s
        self.speed = speed
        self.sessions: dict[str, LiveSession] = {}
        self._sockets: dict[str, web.WebSocketResponse] = {}

    def active(self) -> list[LiveSession]:
        self._expire()
        return [s for s in self.sessions.values() if s.open]

    def _expire(self) -> None:
        t = time.monotonic()
        for s in self.sessions.values():
            if not s.open:
                continue
            if t - s.last_activity > self.idle_timeout_s:
                self._close(s, "expired", "IDLE_TIMEOUT")
            elif s.started_at is not None and t - s.started_at > s.max_duration_s:
                self._close(s, "expired", "MAX_DURATION_REACHED")

    def _close(self, session: LiveSession, state: str, reason: str) -> None:
        session.state, session.closed_reason = state, reason
        ws = self._sockets.pop(session.session_id, None)
        loop = self._loop
        if ws is not None and not ws.closed and loop is not None:
            loop.call_soon_threadsafe(lambda: loop.create_task(self._close_ws(ws, reason)))

    async def _close_ws(self, ws: web.WebSocketResponse, reason: str) -> None:
        try:
            await ws.send_json({"type": "session.state_updated", "state": "closed", "reason": reason})
        finally:
            await ws.close()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self._expire()

    async def _serve(self) -> None:
        await super()._serve()
        asyncio.get_running_loop().create_task(self._sweeper())

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/sessions/token", self._token)
        app.router.add_post("/v1/sessions/start", self._start)
        app.router.add_post("/v1/sessions/keep-alive", self.about_session(self.keep_alive))
        app.router.add_post("/v1/sessions/stop", self.about_session(self._stop))
        app.router.add_get("/v1/sessions", self._list)
        app.router.add_get("/v1/ws/{session_id}", self._ws)

    # --- REST ---------------------------------------------------------------------

    def fail(self, status: int, message: str, code: int | None = None) -> web.Response:
        return web.json_response({"code": code or status, "data": None, "message": message}, status=status)

    def _by_key(self, request: web.Request) -> bool:
        return request.headers.get("X-API-KEY") == self.api_key

    def _by_token(self, request: web.Request) -> LiveSession | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        token = auth.removeprefix("Bearer ")
        return next((s for s in self.sessions.values() if s.token == token), None)

    def find_session(self, request: web.Request) -> tuple[LiveSession | None, web.Response | None]:
        """The session a keep-alive/stop is about: by API key + session_id, or by its token."""
        body = request[JSON] if isinstance(request[JSON], dict) else {}
        if self._by_key(request):
            session = self.sessions.get(str(body.get("session_id")))
        else:
            session = self._by_token(request)
            if session is None:
                return None, self.fail(401, "Invalid API key or session token")
        self._expire()
        if session is None or not session.open:
            sid = body.get("session_id") or (session.session_id if session else "?")
            return None, self.fail(400, f"Session does not exist. SessionID: {sid}", code=400004)
        return session, None

    async def _token(self, request: web.Request) -> web.Response:
        if not self._by_key(request):
            return self.fail(401, "Invalid API key")
        body = request[JSON] if isinstance(request[JSON], dict) else {}
        mode = body.get("mode", "FULL")
        if mode not in ("FULL", "LITE"):
            return self.fail(422, f"Invalid mode: {mode}")
        if body.get("avatar_id") not in self.avatars:
            return self.fail(404, f"Avatar not found: {body.get('avatar_id')}")
        max_duration = body.get("max_session_duration", self.plan_max_duration_s)
        if not isinstance(max_duration, int) or not 0 < max_duration <= self.plan_max_duration_s:
            return self.fail(400, f"max_session_duration must be <= {self.plan_max_duration_s} for your plan")
        if len(self.active()) >= self.concurrent_limit:
            return self.fail(400, "Concurrent session limit reached")
        sid = str(uuid.uuid4())
        self.sessions[sid] = LiveSession(sid, uuid.uuid4().hex, body, mode, max_duration_s=max_duration)
        return self.envelope({"session_id": sid, "session_token": self.sessions[sid].token})

    async def _start(self, request: web.Request) -> web.Response:
        session = self._by_token(request)
        if session is None:
            return self.fail(401, "Invalid session token")
        self._expire()
        if session.state != "created":
            return self.fail(400, f"Session is not in correct state: {session.state}", code=400006)
        session.state, session.started_at = "started", time.monotonic()
        session.last_activity = time.monotonic()
        ws_url = None
        if session.mode == "LITE":
            ws_url = f"ws://{self.host}:{self.port}/v1/ws/{session.session_id}?token={session.token}"
        return self.envelope(
            {
                "session_id": session.session_id,
                "livekit_url": "ws://127.0.0.1:9",
                "livekit_client_token": f"client-{session.token[:8]}",
                "livekit_agent_token": f"agent-{session.token[:8]}",
                "max_session_duration": session.max_duration_s,
                "ws_url": ws_url,
            }
        )

    async def _stop(self, request: web.Request, session: LiveSession) -> web.Response:
        session.stop_body = request[JSON]
        self._close(session, "stopped", str((request[JSON] or {}).get("reason") or "USER_CLOSED"))
        return self.envelope(None)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._by_key(request):
            return self.fail(401, "Invalid API key")
        kind = request.query.get("type", "active")
        if kind not in ("active", "historic"):
            return self.fail(422, f"Invalid type: {kind}")
        self._expire()
        rows = [
            {
                "session_id": s.session_id,
                "status": s.state,
                "created_at": int(s.created_at),
                "mode": s.mode,
                "avatar_id": s.body.get("avatar_id"),
            }
            for s in self.sessions.values()
            if s.open == (kind == "active")
        ]
        return self.envelope({"sessions": rows})

    # --- LITE websocket -----------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.match_info["session_id"])
        if session is None or request.query.get("token") != session.token:
            return self.fail(401, "Invalid session token")
        if session.state != "started" or session.mode != "LITE":
            return self.fail(400, "Session is not in correct state", code=400006)
        ws = web.WebSocketResponse(max_msg_size=2_000_000)
        await ws.prepare(request)
        self._sockets[session.session_id] = ws
        await ws.send_json({"type": "session.state_updated", "state": "connected"})
        queue: asyncio.Queue[SpeakEvent] = asyncio.Queue()
        player = asyncio.get_running_loop().create_task(self._play(session, ws, queue))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if len(msg.data) > 1_000_000:
                    await ws.close(code=1009, message=b"packet too large")
                    break
                message = json.loads(msg.data)
                session.ws_messages.append({k: v for k, v in message.items() if k != "audio"})
                session.last_activity = time.monotonic()
                await self._on_message(session, ws, queue, message, player)
        finally:
            player.cancel()
            self._sockets.pop(session.session_id, None)
        return ws

    async def _on_message(
        self,
        session: LiveSession,
        ws: web.WebSocketResponse,
        queue: asyncio.Queue[SpeakEvent],
        message: dict[str, Any],
        player: asyncio.Task[None],
    ) -> None:
        kind = message.get("type")
        event_id = str(message.get("event_id") or "")
        current = next((e for e in reversed(session.events) if e.event_id == event_id), None)
        if kind == "agent.speak":
            try:
                audio = base64.b64decode(message["audio"], validate=True)
            except (KeyError, binascii.Error):
                await ws.send_json({"type": "error", "message": "agent.speak needs base64 audio"})
                return
            if current is None or current.ended:
                current = SpeakEvent(event_id)
                session.events.append(current)
                queue.put_nowait(current)
            current.audio.extend(audio)
            current.chunks += 1
        elif kind == "agent.speak_end" and current is not None:
            current.ended = True
        elif kind == "agent.interrupt":
            session.interrupts += 1
            while not queue.empty():
                queue.get_nowait()
        elif kind == "session.keep_alive":
            session.ws_keepalives += 1

    async def _play(self, session: LiveSession, ws: web.WebSocketResponse, queue: asyncio.Queue[SpeakEvent]) -> None:
        """Speak queued events one after the other, in (sped-up) real time."""
        while True:
            event = await queue.get()
            await ws.send_json(
                {"type": "agent.speak_started", "event_id": event.event_id, "task": {"id": event.event_id}}
            )
            played, generation = 0, session.interrupts
            while True:
                if session.interrupts != generation:
                    break
                available = len(event.audio)
                if played < available:  # play in small steps so that an interrupt cuts in
                    dt = min((available - played) / 2 / RATE / self.speed, 0.02)
                    await asyncio.sleep(dt)
                    played = min(available, played + max(2, int(dt * self.speed * RATE) * 2))
                elif event.ended:
                    break
                else:
                    await asyncio.sleep(0.01)
            await ws.send_json(
                {"type": "agent.speak_ended", "event_id": event.event_id, "task": {"id": event.event_id}}
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--avatar", action="append", default=[])
    args = parser.parse_args()
    avatars = tuple(args.avatar) or ("3c90c3cc-0d44-4b50-8888-8dd25736052a",)
    serve_forever(FakeLiveAvatar(api_key=args.key, avatars=avatars, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
