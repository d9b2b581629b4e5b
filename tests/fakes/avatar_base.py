"""What the HeyGen and LiveAvatar fakes share: an aiohttp server in its own thread, and the
tests both avatar outputs run against their fakes.

A fake runs its own event loop in a background thread, so the same instance serves
async tests, ``CliRunner`` tests and subprocesses alike. Every request is recorded in
``calls``; ``inject`` makes the next N calls to a path fail in a chosen way (429 with
Retry-After, 5xx, any status and body).

:class:`AvatarBackendTests` is what the two outputs share (one base class in
``voicekit.plugins.output.avatar.base``), written once: ``tests/backends/test_heygen.py``
and ``test_liveavatar.py`` subclass it with their service's paths.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import pytest
from aiohttp import web

from voicekit.errors import AuthError, BackendError, MissingSecretError
from voicekit.events import AudioOut
from voicekit.ledger import SessionLedger
from voicekit.options import RetryPolicy
from voicekit.plugins.output.avatar.base import RemoteAvatarOutput
from voicekit.plugins.output.avatar.sessions import VendorSessionManager
from voicekit.roles import Output

#: the parsed JSON body of a request (``request[JSON]``)
JSON = web.RequestKey("json", object)
SessionHandler = Callable[[web.Request, Any], Awaitable[web.Response]]


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

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        avatars: tuple[str, ...] = (),
        concurrent_limit: int = 3,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.avatars = set(avatars)
        self.concurrent_limit = concurrent_limit  # sessions open at once, as a trial key allows
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

    def find_session(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """The open session a call is about, or the error reply the service gives instead."""
        raise NotImplementedError

    def about_session(self, handler: SessionHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """A route for calls about one open session: ``handler(request, session)`` once it is found."""

        async def handle(request: web.Request) -> web.Response:
            session, error = self.find_session(request)
            if error is not None:
                return error
            return await handler(request, session)

        return handle

    async def keep_alive(self, request: web.Request, session: Any) -> web.Response:
        session.keepalives += 1
        session.last_activity = time.monotonic()
        return self.envelope(None)

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


# --- the tests both avatar outputs run against their fakes -------------------------------


async def feed(*sentences: str, gap_s: float = 0.0) -> AsyncIterator[str]:
    """Sentences as the engine hands them over, optionally spaced like a streaming LLM."""
    for sentence in sentences:
        yield sentence
        if gap_s:
            await asyncio.sleep(gap_s)


async def collect(out: Output, sentences: AsyncIterator[str]) -> list[Any]:
    return [event async for event in out.speak(sentences)]


def kinds(events: list[Any]) -> list[tuple[str, str]]:
    """The speaking events as (type, text), audio left out."""
    return [(type(e).__name__, getattr(e, "text", "")) for e in events if not isinstance(e, AudioOut)]


class MakeOutput(Protocol):
    def __call__(self, *, retry: RetryPolicy | None = None, **options: Any) -> RemoteAvatarOutput: ...


class AvatarBackendTests:
    """What every avatar output does against its service, whatever the vendor.

    A subclass names the service's paths and session manager, and gives the fixtures
    ``fake`` (the running fake), ``ledger`` (a :class:`SessionLedger`) and ``make`` (an
    unstarted output whose remote sessions are in ``ledger``, options as keywords,
    ``retry`` for the role's retry policy). That the session is closed
    on every exit path is :class:`voicekit.testing.remote_session.RemoteSessionContract`'s
    to prove (tests/contract/test_remote_session_contract.py).
    """

    create_path: ClassVar[str]
    start_path: ClassVar[str]
    stop_path: ClassVar[str]
    manager_class: ClassVar[type[VendorSessionManager]]
    #: how the service's answer to an unknown avatar is said
    unknown_avatar: ClassVar[str] = r"avatar 'nobody' not found.*output\.avatar_id"

    def limit_to_one_second(self, fake: Any) -> dict[str, Any]:
        """Options (or fake settings) that make the service end the session after one second."""
        raise NotImplementedError

    @property
    def key_env(self) -> str:
        return self.manager_class.service.key_env

    @pytest.fixture
    def manager(self, fake: Any) -> VendorSessionManager:
        return self.manager_class(api_key=fake.api_key, base_url=fake.base_url)

    # --- retries: the core's policy -------------------------------------------------

    async def test_rate_limited_calls_are_retried_after_retry_after(self, fake: Any, make: MakeOutput) -> None:
        fake.rate_limit(self.create_path, times=2, retry_after=0.15)
        fake.rate_limit(self.start_path, times=1, retry_after=0.1)
        t0 = time.monotonic()
        async with make():
            assert time.monotonic() - t0 >= 0.4  # the waits the service asked for
        assert [c.status for c in fake.calls_to(self.create_path)] == [429, 429, 200]
        assert [c.status for c in fake.calls_to(self.start_path)] == [429, 200]

    async def test_rate_limit_that_does_not_end_is_a_clear_error(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        fake.rate_limit(self.create_path, times=10, retry_after=0.01)
        with pytest.raises(BackendError, match=r"rate limited \(HTTP 429\); retry after 0 s") as caught:
            async with make(retry=RetryPolicy(attempts=2)):
                pass
        assert caught.value.retryable and "\n" not in str(caught.value)
        assert len(fake.calls_to(self.create_path)) == 2  # the role's policy: two tries in all
        assert ledger.remote_sessions() == []

    async def test_a_failed_create_is_not_repeated(self, fake: Any, make: MakeOutput, ledger: SessionLedger) -> None:
        """A 5xx on the create may have made a session: trying again could make a second one."""
        fake.inject(self.create_path, 503, {"code": 503, "message": "Service Unavailable"})
        with pytest.raises(BackendError, match=r"failed \(HTTP 503.*Service Unavailable") as caught:
            async with make():
                pass
        assert caught.value.retryable  # the engine may start the backend again
        assert len(fake.calls_to(self.create_path)) == 1 and ledger.remote_sessions() == []

    async def test_stop_is_retried_on_server_errors(self, fake: Any, make: MakeOutput, ledger: SessionLedger) -> None:
        fake.inject(self.stop_path, 502, {"code": 502, "message": "Bad Gateway"})
        async with make() as out:
            sid = out.session_id
        assert [c.status for c in fake.calls_to(self.stop_path)] == [502, 200]
        assert fake.sessions[sid].stopped and ledger.remote_sessions() == []

    # --- errors that name the fix ---------------------------------------------------

    async def test_unknown_avatar_names_the_option(self, make: MakeOutput, ledger: SessionLedger) -> None:
        with pytest.raises(BackendError, match=self.unknown_avatar) as caught:
            async with make(avatar_id="nobody"):
                pass
        assert "\n" not in str(caught.value)
        assert ledger.remote_sessions() == []

    async def test_rejected_key_names_the_env_var(self, make: MakeOutput, ledger: SessionLedger) -> None:
        with pytest.raises(AuthError, match=self.key_env):
            async with make(api_key="wrong"):
                pass
        assert ledger.remote_sessions() == []

    async def test_concurrency_limit_points_to_sessions_close(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        outs = [make() for _ in range(3)]
        try:
            for out in outs:
                await out.start()
            with pytest.raises(BackendError, match=r"too many sessions.*sessions close --stale") as caught:
                async with make():
                    pass
            assert caught.value.retryable
        finally:
            for out in outs:
                await out.aclose()
        assert fake.active() == [] and ledger.remote_sessions() == []

    async def test_failed_start_still_stops_the_created_session(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        fake.inject(self.start_path, 400, {"code": 400006, "message": "Invalid params"})
        with pytest.raises(BackendError, match="Invalid params"):
            async with make():
                pass
        [session] = fake.sessions.values()
        assert session.stopped and ledger.remote_sessions() == []

    # --- the session's life -----------------------------------------------------------

    async def test_cancelled_while_the_service_makes_the_session(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        """The create request is on the service when start() is cancelled: what it makes is stopped."""
        fake.delays[self.create_path] = 0.4
        out = make()
        task = asyncio.ensure_future(out.start())
        while not fake.calls_to(self.create_path):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        [session] = fake.sessions.values()
        assert session.stopped and ledger.remote_sessions() == []  # by start() itself, before any aclose()
        await out.aclose()
        assert len(fake.calls_to(self.stop_path)) == 1

    async def test_engine_backstop_closes_what_the_backend_left(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        out = make()
        sessions = out.context.remote_sessions
        assert sessions is not None
        await out.start()
        closed = await sessions.close_all()  # what the engine does on every exit path
        assert closed == [out.session_id] and fake.active() == []
        await out.aclose()
        assert len(fake.calls_to(self.stop_path)) == 1 and ledger.remote_sessions() == []

    async def test_keep_alive_holds_an_idle_session(self, fake: Any, make: MakeOutput) -> None:
        fake.idle_timeout_s = 0.5
        async with make(keepalive_interval_s=0.1) as out:
            await asyncio.sleep(1.2)
            session = fake.sessions[out.session_id]
            assert session in fake.active() and session.keep_alive_count >= 5
            assert len(await collect(out, feed("Still here."))) >= 2
        assert session.stopped

    async def test_a_session_the_service_expired_ends_the_next_turn(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        fake.idle_timeout_s = 0.2  # expired before the first keep-alive, which learns it
        async with make(keepalive_interval_s=0.5) as out:
            await asyncio.sleep(0.9)
            assert ledger.remote_sessions() == []  # gone on the service counts as closed
            with pytest.raises(BackendError, match=r"session ended: the service closed"):
                await collect(out, feed("Anyone?"))
        assert ledger.remote_sessions() == []

    async def test_session_ends_cleanly_before_its_duration_limit(
        self, fake: Any, make: MakeOutput, ledger: SessionLedger
    ) -> None:
        async with make(**self.limit_to_one_second(fake)) as out:
            await asyncio.sleep(1.1)
            assert fake.sessions[out.session_id].stopped  # by us, not expired by the service
            assert ledger.remote_sessions() == []
            with pytest.raises(BackendError, match=r"duration limit \(1 s"):
                await collect(out, feed("Too late."))

    # --- voicekit sessions ------------------------------------------------------------

    async def test_manager_lists_and_closes_idempotently(self, manager: Any, make: MakeOutput) -> None:
        try:
            async with make() as out:
                [info] = await manager.list_active()
                assert (info.backend, info.remote_id) == (out.name, out.session_id)
                assert await manager.close(info.remote_id)
                assert await manager.close(info.remote_id)  # gone = closed
                assert await manager.list_active() == []
        finally:
            await manager.aclose()

    def test_manager_without_key_is_a_clear_error(self, manager: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(self.key_env, raising=False)
        with pytest.raises(MissingSecretError, match=self.key_env):
            asyncio.run(type(manager)().list_active())
