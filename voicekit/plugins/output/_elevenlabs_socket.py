"""The ElevenLabs multi-context websocket, kept open for a whole conversation.

:class:`ContextSocket` owns the socket: it opens it, opens and closes contexts (one per
turn, plus a standby context so that the next turn starts at once), routes each server
message to the queue of the turn that reads its context, keeps the service's inactivity
timers from running out, and turns what the service says or does into voicekit errors.
It does not reconnect by itself: the output decides when (see its module docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from voicekit.clock import now
from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import AuthError, BackendError, VoicekitError
from voicekit.plugins.output._elevenlabs_options import ElevenLabsOptions
from voicekit.plugins.output._elevenlabs_protocol import ServerMessage, parse_server_message
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

#: put in a turn's queue when the turn must stop reading (interrupted, closed)
END = object()


class ContextSocket:
    """One multi-context socket; ``queues`` maps the contexts being read to their turn's queue.

    A queue receives :class:`ServerMessage` s of its context, and an exception when the
    socket fails (the reader raises it). ``fatal`` is set by a rejected key: from then on
    every use raises it, so a bad key is never tried again.
    """

    def __init__(
        self,
        options: ElevenLabsOptions,
        *,
        url: str,
        api_key: Callable[[], str],
        auth_error: Callable[[str], AuthError],
        name: str,
        label: str,
        where: str,
    ) -> None:
        self.options = options
        self.name = name  # the backend's registered name, for "not installed" errors
        self.url = url
        self._api_key = api_key
        self._auth_error = auth_error
        self.label = label
        self.where = where  # the backend's place in the profile, for messages
        self.queues: dict[str, asyncio.Queue[Any]] = {}  # contexts whose messages a turn reads
        self.turns: set[str] = set()  # contexts of turns being spoken now
        self.lock = asyncio.Lock()  # held while the socket or a context is being opened
        self.fatal: VoicekitError | None = None
        self.closed = False
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._open: dict[str, float] = {}  # contexts open on the service -> last message sent to it
        self._standby: str | None = None  # an open context no turn has taken yet
        self._last_send = 0.0
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # --- opening and closing ----------------------------------------------------------

    async def connect(self) -> None:
        """Open the socket unless it is open; a failure is a :class:`BackendError` saying whether
        a retry may help (and how long the service asks to wait), or the key's :class:`AuthError`."""
        if self.fatal is not None:
            raise self.fatal
        if self._ws is not None:
            return
        websockets = import_sdk(
            "websockets.asyncio.client", package="websockets", extra="elevenlabs", backend=self.name
        )
        exceptions = import_sdk("websockets.exceptions", package="websockets", extra="elevenlabs")
        try:
            ws = await websockets.connect(
                self.url,
                additional_headers={"xi-api-key": self._api_key()},
                open_timeout=self.options.timeout_s,
                max_size=2**24,
                user_agent_header="voicekit",
            )
        except exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                self.fatal = self._auth_error(f"HTTP {status} at the websocket handshake")
                raise self.fatal from exc
            retryable = status >= 500 or status in (408, 429)
            retry_after = retry_after_seconds(exc.response.headers) if retryable else None
            asked = f", asking to wait {retry_after:g} s" if retry_after is not None else ""
            raise BackendError(
                f"{self.label}: ElevenLabs refused the websocket (HTTP {status}{asked})",
                retryable=retryable,
                retry_after=retry_after,
            ) from exc
        except (TimeoutError, OSError, exceptions.WebSocketException) as exc:
            raise BackendError(
                f"{self.label}: cannot reach ElevenLabs at {self.options.http_base_url} ({exc}); "
                f"check the network and {self.where}.base_url",
                retryable=True,
            ) from exc
        self._ws = ws
        self._open.clear()
        self._standby = None
        self._last_send = now()
        self._reader = asyncio.create_task(self._read(ws), name="elevenlabs-reader")
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.create_task(self._keep_alive(), name="elevenlabs-keepalive")

    async def drop(self) -> None:
        """Forget the socket (broken or stuck); the next :meth:`connect` opens a new one."""
        ws, self._ws = self._ws, None
        self._open.clear()
        self._standby = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    async def aclose(self) -> None:
        """Close the socket for good: every reading turn ends, every task stops."""
        self.closed = True
        for ctx in list(self.queues):
            self.queues.pop(ctx).put_nowait(END)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"close_socket": True}))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        tasks = [t for t in (self._keepalive, self._reader, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._ws = self._reader = self._keepalive = None
        self._open.clear()
        self._standby = None

    # --- contexts ----------------------------------------------------------------------

    async def send(self, message: dict[str, Any], ctx: str | None = None) -> None:
        """Send one message; a failure means the socket is gone (a retryable error)."""
        ws = self._ws
        if ws is None:
            raise self.fatal or BackendError(f"{self.label}: the ElevenLabs socket is closed", retryable=True)
        try:
            await ws.send(json.dumps(message))
        except Exception as exc:  # any send failure means the socket is gone
            raise self.fatal or BackendError(
                f"{self.label}: the ElevenLabs socket dropped: {exc}", retryable=True
            ) from exc
        self._last_send = now()
        if ctx is not None and ctx in self._open:
            self._open[ctx] = self._last_send

    async def open_context(self) -> str:
        ctx = f"vk{next(self._ids)}"
        message: dict[str, Any] = {"text": " ", "voice_settings": self.options.voice_settings(), "context_id": ctx}
        if self.options.chunk_length_schedule:
            message["generation_config"] = {"chunk_length_schedule": self.options.chunk_length_schedule}
        self._open[ctx] = now()
        await self.send(message, ctx)
        return ctx

    async def ensure_standby(self) -> None:
        """Have a context open for the next turn (call with :attr:`lock` held)."""
        if self._standby is None:
            self._standby = await self.open_context()

    async def take_context(self) -> str:
        """A context for a turn: the standby one if it is still open, else a new one (call with
        :attr:`lock` held, after :meth:`connect`)."""
        standby, self._standby = self._standby, None
        return standby if standby is not None and standby in self._open else await self.open_context()

    def closing(self, ctx: str) -> None:
        """The turn's close_context is about to go: the context needs no more keep-alives."""
        self._open.pop(ctx, None)

    async def close_context(self, ctx: str) -> None:
        """Close a context the service still has open; late audio for it is dropped."""
        self.turns.discard(ctx)
        if self._open.pop(ctx, None) is not None and self._ws is not None:
            with contextlib.suppress(VoicekitError):
                await self.send({"context_id": ctx, "close_context": True})

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, cancelled by :meth:`aclose` if still running."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- reading, keep-alives -------------------------------------------------------------

    async def _read(self, ws: Any) -> None:
        """Hand each message to the turn that reads its context; drop the rest."""
        error: VoicekitError | None = None
        try:
            async for raw in ws:
                msg = parse_server_message(raw)
                if msg.error:
                    error = self._service_error(msg)
                    if isinstance(error, AuthError):
                        self.fatal = error
                    target = self.queues.get(msg.context_id or "")
                    for waiting in [target] if target else list(self.queues.values()):
                        waiting.put_nowait(error)
                    continue
                queue = self.queues.get(msg.context_id or "")
                if queue is None and msg.context_id is None and len(self.queues) == 1:
                    queue = next(iter(self.queues.values()))
                if queue is None:
                    log.debug("%s: dropped a message for closed context %s", self.label, msg.context_id)
                    continue
                queue.put_nowait(msg)
            error = error or self._closed_error(ws)
        except Exception as exc:  # noqa: BLE001 - a dropped connection ends up here
            error = error or self._closed_error(ws, exc)
        finally:
            if self._ws is ws:
                self._ws = None
                self._open.clear()
                self._standby = None
            if error is not None:
                for queue in list(self.queues.values()):
                    queue.put_nowait(error)

    async def _keep_alive(self) -> None:
        """Reset the service's inactivity timers: every open context, and the socket itself."""
        interval = self.options.keepalive_s
        while not self.closed:
            await asyncio.sleep(min(1.0, interval / 4))
            if self._ws is None:
                continue
            t = now()
            try:
                for ctx, last in list(self._open.items()):
                    if t - last >= interval:
                        await self.send({"text": "", "context_id": ctx}, ctx)
                if not self._open and t - self._last_send >= interval:
                    async with self.lock:
                        if self._ws is not None:
                            await self.ensure_standby()
            except VoicekitError as exc:
                log.debug("%s: keep-alive failed: %s", self.label, exc)

    # --- errors ------------------------------------------------------------------------

    def _service_error(self, msg: ServerMessage) -> VoicekitError:
        text = " ".join(str(msg.message or "").split())[:300]
        code = msg.error or "error"
        if "api_key" in code or "unauthorized" in code or "auth" in code:
            return self._auth_error(text or code)
        if "voice" in code:
            return BackendError(f"{self.label}: ElevenLabs: {text} ({code}); check {self.where}.voice_id")
        retryable = code in ("input_timeout_exceeded", "max_active_conversations", "internal_error")
        return BackendError(f"{self.label}: ElevenLabs error {code}: {text}", retryable=retryable)

    def _closed_error(self, ws: Any, exc: BaseException | None = None) -> VoicekitError | None:
        if self.closed:
            return None
        if self.fatal is not None:
            return self.fatal
        code = getattr(ws, "close_code", None)
        reason = getattr(ws, "close_reason", "") or ""
        if code == 1008 and ("key" in reason.lower() or "auth" in reason.lower()):
            self.fatal = self._auth_error(reason)
            return self.fatal
        detail = f"code {code}" + (f", {reason}" if reason else "") if code else str(exc or "closed")
        return BackendError(f"{self.label}: the ElevenLabs socket closed ({detail})", retryable=True)
