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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicekit.clock import now
from voicekit.errors import VoicekitError
from voicekit.events import Event
from voicekit.redaction import redact_text
from voicekit.serve import rtvi
from voicekit.serve.config import ServeConfig
from voicekit.serve.limits import Budget, shown
from voicekit.serve.transport import FrameSource, InputAudio, Outbox, SocketSink
from voicekit.serve.wire import AudioFrame, MessageFrame, TextFrame, WireError, audio_payload, decode

log = logging.getLogger(__name__)

BOT_RATE = 24000  # Pipecat's clients play bot audio as 24 kHz mono whatever the frame says
CLOSE_WAIT_S = 30.0  # longest wait for a stopped conversation to close its backends


@dataclass(frozen=True)
class Ending:
    """Why a session ended: the close code (``None`` if the client already left), the
    close reason, the ledger status, and whether to tell the client with an RTVI error."""

    code: int | None
    reason: str
    status: str = "ended"  # ended | interrupted | failed
    tell: bool = True


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
        self._messages = Budget(limits.message_burst, limits.messages_per_s)
        self._rtvi = Budget(limits.rtvi_burst, limits.rtvi_per_s)
        self._typed = Budget(limits.text_burst, limits.text_per_s)
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
        self.conversation, self._finish = conversation, finish
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
        receive, limit = self.ws.receive, self.config.max_message_bytes
        limits = self.limits
        handled = 0
        while True:
            handled += 1
            if handled % 8 == 0:  # a burst of queued messages is taken without waiting: let the others run
                await asyncio.sleep(0)
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return Ending(None, "the client left", tell=False)
            self.last_message = now()
            if not self._messages.take():
                return Ending(
                    1008,
                    f"too many messages: at most {limits.message_burst} at once, "
                    f"then {limits.messages_per_s:g} a second",
                )
            data = message.get("bytes")
            if data is None:
                return Ending(1003, "text messages are not accepted: send binary protobuf frames")
            if len(data) > limit:
                return Ending(1009, f"a message of {len(data)} bytes is over the limit of {limit}")
            try:
                ending = self.handle(data)
            except WireError as exc:
                return Ending(1007, f"malformed message: {exc}")
            if ending is not None:
                return ending

    def handle(self, data: bytes) -> Ending | None:
        """Take one socket message: an :class:`Ending` when it ends the connection; :class:`WireError`
        when it is malformed (the caller closes with 1007)."""
        audio = audio_payload(data)
        frame = None
        if audio is None:
            frame = decode(data)
            if isinstance(frame, AudioFrame):
                audio = frame.audio, frame.sample_rate, frame.num_channels
        if audio is not None:
            # the pace is checked before the audio is mixed and resampled: a flood costs nothing
            too_fast = self._check_audio_pace(*audio)
            if too_fast is None:
                self.input.push_pcm(*audio)
            return too_fast
        if isinstance(frame, MessageFrame):
            limits = self.limits
            if not self._rtvi.take():
                return Ending(
                    1008,
                    f"too many RTVI messages: at most {limits.rtvi_burst} at once, then {limits.rtvi_per_s:g} a second",
                )
            msg = rtvi.parse(frame.data, max_chars=limits.max_json_chars, max_depth=limits.max_json_depth)
            return self._on_message(msg)
        if isinstance(frame, TextFrame):
            return self._typed_text(None, frame.text)
        return None  # transcription frames and unknown kinds mean nothing to the server

    def _check_audio_pace(self, pcm: bytes, rate: int, channels: int) -> Ending | None:
        seconds = len(pcm) / (2 * max(1, channels) * (rate or 16000))
        ahead, allowed = self.input.ahead_s(seconds), self.limits.audio_ahead_s
        if ahead > allowed:
            return Ending(1008, f"audio arrives faster than real time ({ahead:.0f} s ahead; at most {allowed:g} s)")
        return None

    def _on_message(self, msg: dict[str, Any]) -> Ending | None:
        if msg.get("label") != rtvi.LABEL:
            log.debug("ignoring a message that is not RTVI (label %s)", shown(msg.get("label")))
            return None
        kind, data = msg.get("type"), msg.get("data")
        id_ = self._message_id(msg.get("id"))
        if kind == "client-ready":
            self._client_ready_id = id_
            self._client_ready.set()
        elif kind == "send-text":
            content = data.get("content") if isinstance(data, dict) else None
            if not isinstance(content, str) or not content.strip():
                self.outbox.message(rtvi.error_response(id_, "send-text needs data.content, a non-empty string"))
            else:
                return self._typed_text(id_, content)
        elif kind == "client-message":
            self._client_message(id_, data)
        elif kind == "disconnect-bot":
            return Ending(1000, "the client disconnected the bot", tell=False)
        else:
            self.outbox.message(rtvi.error_response(id_, f"voicekit does not handle {shown(kind)} messages"))
        return None

    def _message_id(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise WireError("an RTVI message id is a string")
        text = str(value)  # integers are at most 32 digits (rtvi.parse)
        if len(text) > self.limits.max_id_chars:
            raise WireError(f"an RTVI message id of {len(text)} characters (at most {self.limits.max_id_chars})")
        return text

    def _client_message(self, id_: str | None, data: Any) -> None:
        name = data.get("t") if isinstance(data, dict) else None
        if name == "ping":
            answer: Any = {"pong": True}
        elif name == "history":  # before the conversation runs, it has said nothing yet
            history = self.conversation.history if self.conversation is not None else []
            answer = [{"role": m.role, "text": m.text, "interrupted": m.interrupted} for m in history]
        else:
            self.outbox.message(
                rtvi.error_response(id_, f"unknown client message {shown(name)}: voicekit answers 'ping' and 'history'")
            )
            return
        self.outbox.message(rtvi.message("server-response", {"t": name, "d": answer}, id_))

    def _typed_text(self, id_: str | None, text: str) -> Ending | None:
        limits = self.limits
        if len(text) > limits.max_text_chars:
            self.outbox.message(
                rtvi.error_response(
                    id_, f"a typed message of {len(text)} characters is too long (at most {limits.max_text_chars})"
                )
            )
            return None
        if not self._typed.take():
            return Ending(
                1008,
                f"typed messages come too fast: at most {limits.text_burst} at once, "
                f"then {limits.text_per_s:g} a second",
            )
        if self.source.started.is_set() and self.conversation is not None:
            self.conversation.submit_text(text)
        else:
            self._pending_text.append(text)  # typed before the conversation runs: sent when it does
        return None

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
        handshake = self.limits.handshake_timeout_s
        while True:
            t = now()
            if not self._client_ready.is_set() and t - self.started_at >= handshake:
                return Ending(1008, f"no client-ready message within {handshake:g} s of connecting", "interrupted")
            if t - self.started_at >= total:
                return Ending(1000, f"the session reached its time limit of {total:g} s", "interrupted")
            if t - self.last_message >= idle:
                return Ending(1000, f"nothing received for {idle:g} s", "interrupted")
            deadlines = [self.started_at + total, self.last_message + idle]
            if not self._client_ready.is_set():
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
