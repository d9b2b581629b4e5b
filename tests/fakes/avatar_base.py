"""What the HeyGen and LiveAvatar fakes share: an aiohttp server in its own thread.

A fake runs its own event loop in a background thread, so the same instance serves
async tests, ``CliRunner`` tests and subprocesses alike. Every request is recorded in
``calls``; ``inject`` makes the next N calls to a path fail in a chosen way (429 with
Retry-After, 5xx, any status and body).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: the parsed JSON body of a request (``request[JSON]``)
JSON = web.RequestKey("json", object)


@dataclass
class Call:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, str]
    t: float = field(default_factory=time.monotonic)
    status: int = 0


@dataclass
class Fault:
    status: int
    body: Any
    headers: dict[str, str]
    times: int


class FakeService:
    """Base of the fakes: routes are added by subclasses in :meth:`routes`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.calls: list[Call] = []
        self._faults: dict[str, list[Fault]] = {}
        self.delays: dict[str, float] = {}  # path -> seconds to wait before answering
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # --- subclass API -----------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def envelope(self, data: Any, status: int = 200, code: int = 100, message: str = "success") -> web.Response:
        return web.json_response({"code": code, "data": data, "message": message}, status=status)

    def error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    # --- faults -----------------------------------------------------------------------

    def inject(
        self, path: str, status: int, body: Any = None, *, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``times`` calls to ``path`` get this reply instead of being served."""
        with self._lock:
            self._faults.setdefault(path, []).append(Fault(status, body, headers or {}, times))

    def rate_limit(self, path: str, *, times: int = 1, retry_after: float = 0.2) -> None:
        self.inject(
            path,
            429,
            {"code": 429, "message": "Too many requests"},
            times=times,
            headers={"Retry-After": f"{retry_after:g}"},
        )

    def calls_to(self, path: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    # --- serving ----------------------------------------------------------------------

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        call = Call(request.method, request.path, dict(request.headers), body, dict(request.query))
        with self._lock:
            self.calls.append(call)
            faults = self._faults.get(request.path)
            fault = faults[0] if faults else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)  # type: ignore[union-attr]
        if fault is not None:
            call.status = fault.status
            return web.json_response(fault.body, status=fault.status, headers=fault.headers)
        request[JSON] = body
        if self.delays.get(request.path):
            await asyncio.sleep(self.delays[request.path])
        response = await handler(request)
        call.status = response.status
        return response

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Serve in a background thread; returns the base URL."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake did not start")
        return self.base_url

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._record])
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(fake: FakeService) -> None:
    """Run a fake in the foreground until Ctrl-C (the fakes' ``__main__``)."""
    url = fake.start()
    print(f"{type(fake).__name__} listening on {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
