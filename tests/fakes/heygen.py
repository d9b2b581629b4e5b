"""A local stand-in for HeyGen's Interactive Avatar REST API (streaming v1).

It behaves like the service as its docs and the captured replies in
``tests/samples/heygen/`` show: the ``{"code": 100, "message": "success", "data": ...}``
envelope, errors as ``{"code", "message"}`` with HTTP 4xx (401 without a valid
``x-api-key``; 10013 unknown avatar; 400006 a task before ``streaming.start``;
400004 a session that does not exist, e.g. a second ``streaming.stop``), a limit of 3
concurrent sessions (a trial key's), sessions that expire after
``activity_idle_timeout`` seconds without a task or keep-alive (``idle_timeout_s``
overrides it so tests can be quick), and ``duration_ms`` of a task from its length.

Not verified against the live service: the code and text of the concurrency error
(``10007 "Concurrent limit reached"`` here) and the body of ``streaming.start``.

Standalone: ``python -m tests.fakes.heygen --port 8089 --key test-key``.
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.avatar_base import JSON, FakeService, serve_forever

CONCURRENCY_CODE = 10007


@dataclass
class HeyGenSession:
    session_id: str
    avatar_id: str
    body: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    status: str = "new"  # new -> connected -> closed
    last_activity: float = field(default_factory=time.monotonic)
    idle_timeout_s: float = 120.0
    closed_reason: str | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    interrupts: int = 0
    keepalives: int = 0
    speaking_until: float = 0.0

    @property
    def stopped(self) -> bool:
        """Stopped by the client (not expired)."""
        return self.status == "closed" and self.closed_reason == "stopped"

    @property
    def keep_alive_count(self) -> int:
        return self.keepalives


class FakeHeyGen(FakeService):
    """The fake service; inspect ``sessions`` and ``calls`` after a test."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        avatars: tuple[str, ...] = ("default", "Abigail_standing_office_front"),
        concurrent_limit: int = 3,
        idle_timeout_s: float | None = None,
        ms_per_char: float = 60.0,
        session_duration_limit: int = 600,
        **kwargs: Any,
    ) -> None:
        super().__init__(api_key=api_key, avatars=avatars, concurrent_limit=concurrent_limit, **kwargs)
        self.idle_timeout_s = idle_timeout_s
        self.ms_per_char = ms_per_char
        self.session_duration_limit = session_duration_limit
        self.sessions: dict[str, HeyGenSession] = {}

    def active(self) -> list[HeyGenSession]:
        self._expire()
        return [s for s in self.sessions.values() if s.status != "closed"]

    def _expire(self) -> None:
        t = time.monotonic()
        for s in self.sessions.values():
            if s.status != "closed" and t - s.last_activity > s.idle_timeout_s:
                s.status, s.closed_reason = "closed", "idle timeout"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/streaming.new", self._new)
        app.router.add_post("/v1/streaming.start", self.about_session(self._start))
        app.router.add_post("/v1/streaming.task", self.about_session(self._task))
        app.router.add_post("/v1/streaming.interrupt", self.about_session(self._interrupt))
        app.router.add_post("/v1/streaming.keep_alive", self.about_session(self.keep_alive))
        app.router.add_post("/v1/streaming.stop", self.about_session(self._stop))
        app.router.add_get("/v1/streaming.list", self._list)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("x-api-key") == self.api_key

    def _unauthorized(self) -> web.Response:
        return self.error(401, 400112, "Unauthorized")

    def find_session(self, request: web.Request) -> tuple[HeyGenSession | None, web.Response | None]:
        if not self._authorized(request):
            return None, self._unauthorized()
        body = request[JSON] if isinstance(request[JSON], dict) else {}
        sid = body.get("session_id")
        if not sid:
            return None, self.error(400, 400175, "Invalid parameter: session_id is required")
        self._expire()
        session = self.sessions.get(sid)
        if session is None or session.status == "closed":
            return None, self.error(400, 400004, f"Session does not exist. SessionID: {sid}")
        return session, None

    async def _new(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        body = request[JSON] if isinstance(request[JSON], dict) else {}
        if body.get("version") != "v2":
            return self.error(400, 400175, "Invalid parameter: version must be v2")
        avatar_id = body.get("avatar_id", "default")
        if avatar_id not in self.avatars:
            return self.error(400, 10013, "avatar not found")
        idle = body.get("activity_idle_timeout", 120)
        if not isinstance(idle, int) or not 30 <= idle <= 3600:
            return self.error(400, 400175, "Invalid parameter: activity_idle_timeout must be 30-3600")
        if body.get("quality", "medium") not in ("high", "medium", "low"):
            return self.error(400, 400175, "Invalid parameter: quality")
        if len(self.active()) >= self.concurrent_limit:
            return self.error(400, CONCURRENCY_CODE, "Concurrent limit reached")
        sid = str(uuid.uuid1())
        self.sessions[sid] = HeyGenSession(
            sid, avatar_id, body, idle_timeout_s=self.idle_timeout_s if self.idle_timeout_s is not None else idle
        )
        return self.envelope(
            {
                "session_id": sid,
                "sdp": None,
                "access_token": f"lk-token-{sid[:8]}",
                "url": "ws://127.0.0.1:9",
                "ice_servers": None,
                "ice_servers2": None,
                "is_paid": False,
                "session_duration_limit": self.session_duration_limit,
                "realtime_endpoint": f"wss://127.0.0.1:9/v2-alpha/interactive-avatar/session/{sid}",
            }
        )

    async def _start(self, request: web.Request, session: HeyGenSession) -> web.Response:
        if session.status != "new":
            return self.error(400, 400006, "Session is not in correct state")
        session.status = "connected"
        session.last_activity = time.monotonic()
        return self.envelope(None)

    async def _task(self, request: web.Request, session: HeyGenSession) -> web.Response:
        body = request[JSON]
        if session.status != "connected":
            return self.error(400, 400006, "Session is not in correct state")
        if not body.get("text") or body.get("task_type", "chat") not in ("repeat", "chat"):
            return self.error(400, 400175, "Invalid parameter: text / task_type")
        if body.get("task_mode", "sync") not in ("sync", "async"):
            return self.error(400, 400175, "Invalid parameter: task_mode")
        now = time.monotonic()
        duration_ms = len(body["text"]) * self.ms_per_char
        session.speaking_until = max(now, session.speaking_until) + duration_ms / 1000
        session.last_activity = now
        task_id = uuid.uuid4().hex
        session.tasks.append({**body, "task_id": task_id, "t": now})
        return self.envelope({"task_id": task_id, "duration_ms": duration_ms})

    async def _interrupt(self, request: web.Request, session: HeyGenSession) -> web.Response:
        session.interrupts += 1
        session.speaking_until = time.monotonic()
        return self.envelope(None)

    async def _stop(self, request: web.Request, session: HeyGenSession) -> web.Response:
        session.status, session.closed_reason = "closed", "stopped"
        return self.envelope({"status": "success"})

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        rows = [
            {"session_id": s.session_id, "status": s.status, "created_at": int(s.created_at), "api_key_type": "regular"}
            for s in self.active()
        ]
        return self.envelope({"sessions": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--idle-timeout", type=float, default=None)
    args = parser.parse_args()
    serve_forever(FakeHeyGen(api_key=args.key, idle_timeout_s=args.idle_timeout, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
