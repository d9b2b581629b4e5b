"""One websocket connection: one conversation, from the handshake to the close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicekit.clock import now
from voicekit.errors import VoicekitError
from voicekit.events import Event
from voicekit.serve import rtvi
from voicekit.serve.config import ServeConfig
from voicekit.serve.transport import FrameSource, InputAudio, Outbox, SocketSink
from voicekit.serve.wire import AudioFrame, MessageFrame, TextFrame, WireError, audio_payload, decode

log = logging.getLogger(__name__)

BOT_RATE = 24000  # Pipecat's clients play bot audio as 24 kHz mono whatever the frame says


@dataclass(frozen=True)
class Ending:
    """Why a session ended: the close code (``None`` if the client already left), the
    close reason, the ledger status, and whether to tell the client with an RTVI error."""

    code: int | None
    reason: str
    status: str = "ended"  # ended | interrupted | failed
    tell: bool = True


class ServeConnection:
    """Runs one conversation for one websocket; :meth:`run` returns when both are over."""

    def __init__(self, ws: Any, config: ServeConfig) -> None:
        self.ws = ws
        self.config = config
        self.outbox = Outbox(ws.send_bytes, max_pending=1000)
        self.events = rtvi.RTVIEvents(self.outbox.message)
        self.source = FrameSource()
        self.input = InputAudio(self.source)
        self.sink: SocketSink | None = None
        self.conversation: Any = None
        self.profile_name = config.profile_name or Path(config.profile).stem
        self.started_at = self.last_message = now()
        self.ending: Ending | None = None
        self._stop: asyncio.Future[Ending] | None = None
        self._client_ready = asyncio.Event()
        self._client_ready_id: str | None = None
        self._pending_text: list[str] = []

    # --- control from the server ----------------------------------------------------

    def stop(self, code: int, reason: str, status: str = "interrupted") -> None:
        """End the session soon (server shutdown); the client is told why."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(Ending(code, reason, status))

    # --- the session ------------------------------------------------------------------

    async def run(self) -> Ending:
        self._stop = asyncio.get_running_loop().create_future()
        writer = asyncio.create_task(self.outbox.run(), name="ws-writer")
        receiver = asyncio.create_task(self._receive(), name="ws-receiver")
        helpers: list[asyncio.Task[Any]] = [receiver]
        conversation_task: asyncio.Task[Any] | None = None
        finish: Callable[..., None] | None = None
        try:
            try:
                self.conversation, finish = await self._prepare()
            except Exception as exc:  # noqa: BLE001 - reported to the client, logged here
                ending = self._failure("the conversation could not start", exc)
            else:
                self.events.mutes_user = self.conversation.mode == "half_duplex"
                conversation_task = asyncio.create_task(self.conversation.run(), name="conversation")
                watchdog = asyncio.create_task(self._watchdog(), name="timeouts")
                overflow = asyncio.create_task(self.outbox.overflow.wait(), name="overflow")
                helpers += [watchdog, overflow, asyncio.create_task(self._announce_ready(), name="bot-ready")]
                ending = await self._first_ending(conversation_task, receiver, writer, watchdog, overflow)
        except asyncio.CancelledError:
            ending = Ending(1001, "server shutting down", "interrupted")
            self.ending = ending
            await self._cleanup(conversation_task, helpers, finish, writer, ending)
            raise
        self.ending = ending
        await self._cleanup(conversation_task, helpers, finish, writer, ending)
        return ending

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

    async def _first_ending(
        self,
        conversation: asyncio.Task[Any],
        receiver: asyncio.Task[Ending],
        writer: asyncio.Task[None],
        watchdog: asyncio.Task[Ending],
        overflow: asyncio.Task[Any],
    ) -> Ending:
        assert self._stop is not None
        watched = {conversation, receiver, writer, watchdog, overflow, self._stop}
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if self._stop in done:
            return self._stop.result()
        if receiver in done:
            return receiver.result()
        if conversation in done:
            exc = conversation.exception()
            if exc is not None:
                return self._failure("the conversation failed", exc)
            return Ending(1000, "the conversation ended")
        if watchdog in done:
            return watchdog.result()
        if writer in done:
            return Ending(None, "the socket failed", tell=False)
        return Ending(1008, "the client is not reading what the server sends")

    def _failure(self, what: str, exc: BaseException) -> Ending:
        if isinstance(exc, VoicekitError):
            log.warning("%s: %s", what, exc)
            return Ending(1011, f"{what}: {exc}", "failed")
        log.error("%s", what, exc_info=exc)
        return Ending(1011, f"{what} (internal error, see the server log)", "failed")

    async def _cleanup(
        self,
        conversation: asyncio.Task[Any] | None,
        helpers: list[asyncio.Task[Any]],
        finish: Callable[..., None] | None,
        writer: asyncio.Task[None],
        ending: Ending,
    ) -> None:
        for task in helpers:
            task.cancel()
        if conversation is not None and not conversation.done():
            self.source.close()
            conversation.cancel()
        if conversation is not None:
            # the conversation closes its backends (and remote sessions) even when cancelled
            with contextlib.suppress(BaseException):
                await conversation
        if finish is not None:
            try:
                finish(ending.status, ending.reason if ending.status == "failed" else None)
            except Exception:
                log.exception("could not record the end of the conversation")
        if ending.code is not None:
            if ending.tell:
                self.outbox.message(rtvi.error(ending.reason, fatal=True))
            await self.outbox.flush(1.0)
            with contextlib.suppress(Exception):
                await self.ws.close(ending.code, _short(ending.reason))
        writer.cancel()
        with contextlib.suppress(BaseException):
            await writer

    # --- from the client ----------------------------------------------------------------

    async def _receive(self) -> Ending:
        receive, limit = self.ws.receive, self.config.max_message_bytes
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return Ending(None, "the client left", tell=False)
            self.last_message = now()
            data = message.get("bytes")
            if data is None:
                return Ending(1003, "text messages are not accepted: send binary protobuf frames")
            if len(data) > limit:
                return Ending(1009, f"a message of {len(data)} bytes is over the limit of {limit}")
            try:
                ending = self._handle(data)
            except WireError as exc:
                return Ending(1007, f"malformed message: {exc}")
            if ending is not None:
                return ending

    def _handle(self, data: bytes) -> Ending | None:
        audio = audio_payload(data)
        if audio is not None:
            self.input.push_pcm(*audio)
            return None
        frame = decode(data)
        if isinstance(frame, AudioFrame):
            self.input.push(frame)
        elif isinstance(frame, MessageFrame):
            return self._on_message(rtvi.parse(frame.data))
        elif isinstance(frame, TextFrame):
            self._submit(frame.text)
        return None  # transcription frames and unknown kinds mean nothing to the server

    def _on_message(self, msg: dict[str, Any]) -> Ending | None:
        if msg.get("label") != rtvi.LABEL:
            log.debug("ignoring a message that is not RTVI: %.80s", msg)
            return None
        kind, data = msg.get("type"), msg.get("data")
        id_ = None if msg.get("id") is None else str(msg.get("id"))
        if kind == "client-ready":
            self._client_ready_id = id_
            self._client_ready.set()
        elif kind == "send-text":
            content = data.get("content") if isinstance(data, dict) else None
            if not isinstance(content, str) or not content.strip():
                self.outbox.message(rtvi.error_response(id_, "send-text needs data.content, a non-empty string"))
            else:
                self._submit(content)
        elif kind == "client-message":
            self._client_message(id_, data)
        elif kind == "disconnect-bot":
            return Ending(1000, "the client disconnected the bot", tell=False)
        else:
            self.outbox.message(rtvi.error_response(id_, f"voicekit does not handle '{kind}' messages"))
        return None

    def _client_message(self, id_: str | None, data: Any) -> None:
        name = data.get("t") if isinstance(data, dict) else None
        if name == "ping":
            answer: Any = {"pong": True}
        elif name == "history" and self.conversation is not None:
            answer = [{"role": m.role, "text": m.text, "interrupted": m.interrupted} for m in self.conversation.history]
        else:
            self.outbox.message(
                rtvi.error_response(id_, f"unknown client message {name!r}: voicekit answers 'ping' and 'history'")
            )
            return
        self.outbox.message(rtvi.message("server-response", {"t": name, "d": answer}, id_))

    def _submit(self, text: str) -> None:
        if self.source.started.is_set() and self.conversation is not None:
            self.conversation.submit_text(text)
        else:
            self._pending_text.append(text)  # typed before the conversation runs: sent when it does

    # --- helpers ----------------------------------------------------------------------

    async def _announce_ready(self) -> None:
        """``bot-ready`` once the conversation runs and the client said it is ready."""
        await self.source.started.wait()
        await asyncio.sleep(0)  # let the conversation's tasks start before typed text arrives
        for text in self._pending_text:
            self.conversation.submit_text(text)
        self._pending_text.clear()
        await self._client_ready.wait()
        from voicekit import __version__

        about = {"library": "voicekit", "library_version": __version__, "profile": self.profile_name}
        self.outbox.message(
            rtvi.message("bot-ready", {"version": rtvi.PROTOCOL_VERSION, "about": about}, self._client_ready_id)
        )

    async def _watchdog(self) -> Ending:
        idle, total = self.config.idle_timeout_s, self.config.session_timeout_s
        while True:
            t = now()
            if t - self.started_at >= total:
                return Ending(1000, f"the session reached its time limit of {total:g} s", "interrupted")
            if t - self.last_message >= idle:
                return Ending(1000, f"nothing received for {idle:g} s", "interrupted")
            await asyncio.sleep(max(0.05, min(self.started_at + total, self.last_message + idle) - t))


def _short(reason: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = reason.encode("utf-8")
    return reason if len(data) <= 123 else data[:120].decode("utf-8", "ignore") + "..."
