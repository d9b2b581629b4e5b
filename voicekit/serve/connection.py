"""One websocket connection: one conversation, from the handshake to the close.

Whatever ends a connection — the client leaving, malformed input, a limit, a timeout, the
conversation failing, the server shutting down, or an error nobody foresaw — it ends in
:meth:`ServeConnection._close`, the one cleanup path: the conversation is stopped (its
backends and remote sessions closed), its ledger row closed with the reason, the client
told why, and the socket closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from voicekit.clock import now
from voicekit.errors import VoicekitError
from voicekit.events import Event
from voicekit.redaction import redact_text
from voicekit.serve import rtvi
from voicekit.serve.config import ServeConfig
from voicekit.serve.inbox import Ending, Inbox
from voicekit.serve.transport import FrameSource, Outbox, SocketSink

log = logging.getLogger(__name__)

BOT_RATE = 24000  # Pipecat's clients play bot audio as 24 kHz mono whatever the frame says
CLOSE_WAIT_S = 30.0  # longest wait for a stopped conversation to close its backends


class ServeConnection:
    """Runs one conversation for one websocket; :meth:`run` returns when both are over,
    and never leaves a task, a conversation or a ledger row behind, whatever happened."""

    def __init__(self, ws: Any, config: ServeConfig) -> None:
        self.ws = ws
        self.config = config
        limits = self.limits = config.limits
        self.outbox = Outbox(ws.send_bytes, max_pending=limits.outbox_items, max_bytes=limits.outbox_bytes)
        self.events = rtvi.RTVIEvents(self.outbox.message)
        self.source = FrameSource()
        self.inbox = Inbox(limits, self.outbox, self.source)
        self.sink: SocketSink | None = None
        self.conversation: Any = None
        self.profile_name = config.profile_name or Path(config.profile).stem
        self.started_at = self.last_message = now()
        self.ending: Ending | None = None
        self._stop: asyncio.Future[Ending] | None = None
        self._tasks: list[asyncio.Task[Any]] = []  # every task of this connection but the conversation
        self._writer: asyncio.Task[None] | None = None
        self._preparing: asyncio.Task[tuple[Any, Callable[..., None]]] | None = None
        self._conversation_task: asyncio.Task[Any] | None = None
        self._announcing: asyncio.Task[None] | None = None
        self._finish: Callable[..., None] | None = None

    # --- control from the server ----------------------------------------------------

    def stop(self, code: int, reason: str, status: str = "interrupted") -> None:
        """End the session soon (server shutdown); the client is told why."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(Ending(code, reason, status))

    # --- the session ------------------------------------------------------------------

    async def run(self) -> Ending:
        """Serve the connection to its end; every way out goes through :meth:`_close`."""
        ending: Ending | None = None
        try:
            ending = await self._serve()
        except asyncio.CancelledError:
            ending = Ending(1001, "server shutting down", "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - any failure ends this connection only, reported
            ending = self._failure("the connection failed", exc)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: cleaned up, then passed on
            ending = self._failure("the connection was stopped", exc)
            raise
        finally:
            self.ending = ending or Ending(1011, "the connection failed (internal error, see the server log)", "failed")
            await self._close(self.ending)
        return self.ending

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def _serve(self) -> Ending:
        self._stop = asyncio.get_running_loop().create_future()
        self._writer = self._spawn(self.outbox.run(), "ws-writer")
        receiver = self._spawn(self._receive(), "ws-receiver")
        watchdog = self._spawn(self._watchdog(), "timeouts")
        overflow = self._spawn(self.outbox.overflow.wait(), "overflow")
        preparing = self._preparing = self._spawn(self._prepare(), "prepare")
        watched: set[asyncio.Future[Any]] = {self._stop, self._writer, receiver, watchdog, overflow, preparing}
        while True:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            # what failed first, in order of precedence
            if self._stop in done:
                return self._stop.result()
            if self._writer in done and _client_gone(self._writer):
                return Ending(None, "the client left", tell=False)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if preparing in failed:
                return self._failure("the conversation could not start", preparing.exception())
            conversation = self._conversation_task
            if conversation in failed:
                return self._failure("the conversation failed", conversation.exception())
            if failed:
                return self._failure("the connection failed", failed[0].exception())
            # what ended normally
            if receiver in done:
                return receiver.result()  # type: ignore[no-any-return]
            if conversation in done:
                return Ending(1000, "the conversation ended")
            if watchdog in done:
                return watchdog.result()  # type: ignore[no-any-return]
            if self._writer in done:
                return Ending(None, "the socket failed", tell=False)
            if overflow in done:
                return Ending(1008, "the client is not reading what the server sends")
            watched -= done  # preparing and bot-ready end on their way: the connection goes on
            if preparing in done:
                self._start_conversation(*preparing.result())
                assert self._conversation_task is not None and self._announcing is not None
                watched |= {self._conversation_task, self._announcing}

    def _start_conversation(self, conversation: Any, finish: Callable[..., None]) -> None:
        self.conversation = self.inbox.conversation = conversation
        self._finish = finish
        self.events.mutes_user = conversation.mode == "half_duplex"
        self._conversation_task = asyncio.create_task(conversation.run(), name="conversation")
        self._announcing = self._spawn(self._announce_ready(), "bot-ready")

    async def _prepare(self) -> tuple[Any, Callable[..., None]]:
        from voicekit.engine.runner import ChatRequest, prepare

        def observe(event: Event) -> None:
            self.events(event)
            for observer in self.config.observers:
                observer(event)

        def make_sink(_rate: int) -> SocketSink:
            self.sink = SocketSink(
                self.outbox,
                self.events.bot_audio,
                BOT_RATE,
                chunk_ms=self.config.chunk_ms,
                lookahead_ms=self.config.lookahead_ms,
            )
            return self.sink

        request = ChatRequest(
            profile=self.config.profile,
            overrides=self.config.profile_overrides(),
            source=self.source,
            sink_factory=make_sink,
            observers=[observe],
            ledger=self.config.ledger,
            warn=log.warning,
            registry=self.config.registry,
        )
        return await prepare(request)

    def _failure(self, what: str, exc: BaseException | None) -> Ending:
        if isinstance(exc, VoicekitError):
            said = redact_text(str(exc))  # the client and the log never see a credential inside a URL
            log.warning("%s: %s", what, said)
            return Ending(1011, f"{what}: {said}", "failed")
        log.error("%s", what, exc_info=exc)
        return Ending(1011, f"{what} (internal error, see the server log)", "failed")

    # --- the one way out ----------------------------------------------------------------

    async def _close(self, ending: Ending) -> None:
        """Stop the conversation, close its ledger row, tell the client, close the socket.

        Each step runs even when an earlier one failed or this task is cancelled meanwhile.
        """
        for task in self._tasks:
            if task is not self._writer:
                task.cancel()
        try:
            await self._stop_conversation()
        finally:
            try:
                self._close_row(ending)
            finally:
                await self._say_goodbye(ending)
                if self._writer is not None:
                    self._writer.cancel()
                await _settle(self._tasks, CLOSE_WAIT_S)
                for task in self._tasks:  # what they raised was reported above, or does not matter now
                    if task.done() and not task.cancelled():
                        task.exception()

    async def _stop_conversation(self) -> None:
        preparing = self._preparing
        if self._conversation_task is None and preparing is not None:
            await _settle([preparing], CLOSE_WAIT_S)
            if preparing.done() and not preparing.cancelled() and preparing.exception() is None:
                self.conversation, self._finish = preparing.result()  # made, never run: its row still closes
        task = self._conversation_task
        if task is None:
            return
        if not task.done():
            self.source.close()
            task.cancel()
        # the conversation closes its backends (and remote sessions) even when cancelled
        await _settle([task], CLOSE_WAIT_S)
        if not task.done():
            log.error("a conversation did not close within %g s of being stopped", CLOSE_WAIT_S)

    def _close_row(self, ending: Ending) -> None:
        finish, self._finish = self._finish, None
        if finish is None:
            return
        try:
            finish(ending.status, ending.reason if ending.status == "failed" else None)
        except Exception:
            log.exception("could not record the end of the conversation")

    async def _say_goodbye(self, ending: Ending) -> None:
        if ending.code is None:
            return
        try:
            if ending.tell:
                self.outbox.message(rtvi.error(ending.reason, fatal=True))
            await self.outbox.flush(1.0)
        except Exception as exc:  # noqa: BLE001 - the socket is closed below all the same
            log.debug("could not tell the client why the connection ends: %s", exc)
        try:
            await self.ws.close(ending.code, _short(ending.reason))
        except Exception as exc:  # noqa: BLE001 - a socket already gone
            log.debug("closing the socket: %s", exc)

    # --- from the client ----------------------------------------------------------------

    async def _receive(self) -> Ending:
        receive, limit, take = self.ws.receive, self.config.max_message_bytes, self.inbox.take
        handled = 0
        while True:
            handled += 1
            if handled % 8 == 0:  # a burst of queued messages is taken without waiting: let the others run
                await asyncio.sleep(0)
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return Ending(None, "the client left", tell=False)
            self.last_message = now()
            data = message.get("bytes")
            if data is None:
                return Ending(1003, "text messages are not accepted: send binary protobuf frames")
            ending = take(data, limit)
            if ending is not None:
                return ending

    # --- helpers ----------------------------------------------------------------------

    async def _announce_ready(self) -> None:
        """``bot-ready`` once the conversation runs and the client said it is ready."""
        inbox = self.inbox
        await self.source.started.wait()
        await asyncio.sleep(0)  # let the conversation's tasks start before typed text arrives
        for text in inbox.pending_text:
            self.conversation.submit_text(text)
        inbox.pending_text.clear()
        await inbox.client_ready.wait()
        from voicekit import __version__

        about = {"library": "voicekit", "library_version": __version__, "profile": self.profile_name}
        self.outbox.message(
            rtvi.message("bot-ready", {"version": rtvi.PROTOCOL_VERSION, "about": about}, inbox.client_ready_id)
        )

    async def _watchdog(self) -> Ending:
        idle, total = self.config.idle_timeout_s, self.config.session_timeout_s
        handshake = self.limits.handshake_timeout_s
        while True:
            t = now()
            if not self.inbox.client_ready.is_set() and t - self.started_at >= handshake:
                return Ending(1008, f"no client-ready message within {handshake:g} s of connecting", "interrupted")
            if t - self.started_at >= total:
                return Ending(1000, f"the session reached its time limit of {total:g} s", "interrupted")
            if t - self.last_message >= idle:
                return Ending(1000, f"nothing received for {idle:g} s", "interrupted")
            deadlines = [self.started_at + total, self.last_message + idle]
            if not self.inbox.client_ready.is_set():
                deadlines.append(self.started_at + handshake)
            await asyncio.sleep(max(0.05, min(deadlines) - t))


def _client_gone(writer: asyncio.Task[Any]) -> bool:
    """Whether the writer stopped because the socket went away (not because of a fault of ours)."""
    if writer.cancelled():
        return False
    error = writer.exception()
    if error is None:
        return True
    from starlette.websockets import WebSocketDisconnect

    return isinstance(error, WebSocketDisconnect | ConnectionError)


async def _settle(tasks: list[asyncio.Task[Any]], timeout: float) -> None:
    """Wait until ``tasks`` are done (at most ``timeout`` s), however often the wait is interrupted:
    a connection being cleaned up must not leave its tasks behind."""
    deadline = now() + timeout
    while True:
        pending = [t for t in tasks if not t.done()]
        left = deadline - now()
        if not pending or left <= 0:
            return
        with contextlib.suppress(BaseException):
            await asyncio.wait(pending, timeout=left)


def _short(reason: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = reason.encode("utf-8")
    return reason if len(data) <= 123 else data[:120].decode("utf-8", "ignore") + "..."
