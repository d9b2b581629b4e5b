"""What one client sends: each socket message checked against the limits and acted on.

:class:`Inbox` takes the messages of one connection (:meth:`Inbox.take`): microphone audio
goes to the conversation's input, RTVI requests are answered through the outbox, typed text
goes to the conversation (or waits for it to start). Whatever ends the connection comes
back as an :class:`Ending`; a malformed message raises :class:`~voicekit.serve.wire.WireError`.
The connection (:mod:`voicekit.serve.connection`) owns the socket and the conversation.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from voicekit.serve import rtvi
from voicekit.serve.limits import Budget, ServeLimits, shown
from voicekit.serve.transport import FrameSource, InputAudio, Outbox
from voicekit.serve.wire import AudioFrame, MessageFrame, TextFrame, WireError, audio_payload, decode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """Why a session ended: the close code (``None`` if the client already left), the
    close reason, the ledger status, and whether to tell the client with an RTVI error."""

    code: int | None
    reason: str
    status: str = "ended"  # ended | interrupted | failed
    tell: bool = True


class Inbox:
    """The messages of one client, checked and acted on (see the module).

    ``conversation`` is set once the conversation runs; typed text that comes before waits
    in ``pending_text``. ``client_ready`` is set by the RTVI ``client-ready`` message.
    """

    def __init__(self, limits: ServeLimits, outbox: Outbox, source: FrameSource) -> None:
        self.limits = limits
        self.outbox = outbox
        self.source = source
        self.input = InputAudio(source)
        self.conversation: Any = None
        self.client_ready = asyncio.Event()
        self.client_ready_id: str | None = None
        self.pending_text: list[str] = []
        self._messages = Budget(limits.message_burst, limits.messages_per_s)
        self._rtvi = Budget(limits.rtvi_burst, limits.rtvi_per_s)
        self._typed = Budget(limits.text_burst, limits.text_per_s)

    def take(self, data: bytes, max_bytes: int) -> Ending | None:
        """One socket message: ``None`` to go on, or why the connection ends."""
        limits = self.limits
        if not self._messages.take():
            return _too_fast("too many messages", limits.message_burst, limits.messages_per_s)
        if len(data) > max_bytes:
            return Ending(1009, f"a message of {len(data)} bytes is over the limit of {max_bytes}")
        try:
            return self.handle(data)
        except WireError as exc:
            return Ending(1007, f"malformed message: {exc}")

    def handle(self, data: bytes) -> Ending | None:
        """Act on one socket message: an :class:`Ending` when it ends the connection;
        :class:`WireError` when it is malformed."""
        audio = audio_payload(data)
        frame = None
        if audio is None:
            frame = decode(data)
            if isinstance(frame, AudioFrame):
                audio = frame.audio, frame.sample_rate, frame.num_channels
        if audio is not None:
            # the pace is checked before the audio is mixed and resampled: a flood costs nothing
            too_fast = self._audio_too_fast(*audio)
            if too_fast is None:
                self.input.push_pcm(*audio)
            return too_fast
        if isinstance(frame, MessageFrame):
            limits = self.limits
            if not self._rtvi.take():
                return _too_fast("too many RTVI messages", limits.rtvi_burst, limits.rtvi_per_s)
            msg = rtvi.parse(frame.data, max_chars=limits.max_json_chars, max_depth=limits.max_json_depth)
            return self._on_message(msg)
        if isinstance(frame, TextFrame):
            return self._typed_text(None, frame.text)
        return None  # transcription frames and unknown kinds mean nothing to the server

    def _audio_too_fast(self, pcm: bytes, rate: int, channels: int) -> Ending | None:
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
            self.client_ready_id = id_
            self.client_ready.set()
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
            return _too_fast("typed messages come too fast", limits.text_burst, limits.text_per_s)
        if self.source.started.is_set() and self.conversation is not None:
            self.conversation.submit_text(text)
        else:
            self.pending_text.append(text)  # typed before the conversation runs: sent when it does
        return None


def _too_fast(what: str, burst: int, per_s: float) -> Ending:
    return Ending(1008, f"{what}: at most {burst} at once, then {per_s:g} a second")
