"""RTVI, the JSON message protocol of Pipecat's clients, and how our events map onto it.

Every RTVI message is ``{"label": "rtvi-ai", "type": ..., "id": ..., "data": ...}``
and rides in a protobuf ``MessageFrame`` (see :mod:`voicekit.serve.wire`).
:class:`RTVIEvents` is the one place where conversation events become RTVI messages:

==================  ==================================================================
our event           RTVI messages
==================  ==================================================================
SpeechStarted       ``user-started-speaking``
SpeechEnded         ``user-stopped-speaking``
Interim / Final     ``user-transcription`` (``final`` false / true)
UserTurn            ``user-llm-text``, ``bot-llm-started``
TextDelta           ``bot-llm-text``
LLMDone             ``bot-llm-stopped``
BotSentence         ``bot-tts-started`` (first of a turn), ``bot-tts-text``, ``bot-output``
first bot audio     ``bot-started-speaking`` (reported by the socket sink), and in half
                    duplex ``user-mute-started`` (the bot does not hear the user meanwhile)
BargeIn             ``bot-interrupted``, then the stops below
BotTurn             ``bot-tts-stopped``, ``bot-stopped-speaking`` (``user-mute-stopped``)
TurnMetrics         ``metrics`` (``ttfb`` and ``processing`` in seconds)
ErrorEvent          ``error``
==================  ==================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from voicekit.events import (
    BargeIn,
    BotSentence,
    BotTurn,
    ErrorEvent,
    Event,
    Final,
    Interim,
    LLMDone,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    TurnMetrics,
    UserTurn,
)
from voicekit.serve import limits
from voicekit.serve.wire import WireError

log = logging.getLogger(__name__)

LABEL = "rtvi-ai"
PROTOCOL_VERSION = "2.1.0"
USER_ID = "user"

Message = dict[str, Any]


def message(type_: str, data: Any = None, id_: str | None = None) -> Message:
    """An RTVI message; ``data`` and ``id`` are left out when ``None``."""
    msg: Message = {"label": LABEL, "type": type_}
    if id_ is not None:
        msg["id"] = id_
    if data is not None:
        msg["data"] = data
    return msg


def error(text: str, *, fatal: bool) -> Message:
    """An ``error`` event; ``fatal`` means the conversation is over."""
    return message("error", {"error": text, "fatal": fatal})


def error_response(id_: str | None, text: str) -> Message:
    """The answer to a client request that failed."""
    return message("error-response", {"error": text}, id_)


def parse(text: str, *, max_chars: int = 64 * 1024, max_depth: int = 32) -> Message:
    """A client's RTVI message; :class:`WireError` when it is not a JSON object, is longer
    than ``max_chars``, nests deeper than ``max_depth`` or holds a number of more than 32
    digits (all checked before or while parsing, never after)."""
    msg = limits.loads(text, max_chars=max_chars, max_depth=max_depth)
    if not isinstance(msg, dict):
        raise WireError(f"message is a JSON {type(msg).__name__}, not an object")
    return msg


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def metrics_data(metrics: TurnMetrics) -> dict[str, list[dict[str, Any]]]:
    """Our per-turn timings as RTVI ``metrics``: time to first byte per backend, and the
    engine's end-to-end figures as ``processing``. Values are seconds, as RTVI wants."""
    names = dict(metrics.backends)

    def entry(role: str, ms: float) -> dict[str, Any]:
        return {"processor": f"{role}:{names.get(role, role)}", "value": round(ms / 1000, 4)}

    ttfb = [
        entry(role, ms)
        for role, ms in (("stt", metrics.stt_ms), ("llm", metrics.llm_ttft_ms), ("output", metrics.output_ttfa_ms))
        if ms is not None
    ]
    processing = [
        {"processor": f"voicekit:{name}", "value": round(ms / 1000, 4)}
        for name, ms in (
            ("voice_to_voice", metrics.voice_to_voice_ms),
            ("turn", metrics.turn_ms),
            ("engine", metrics.engine_ms),
        )
        if ms is not None
    ]
    return {"ttfb": ttfb, "processing": processing}


class RTVIEvents:
    """Turns conversation events into RTVI messages handed to ``send`` (an observer).

    Keeps the little state RTVI needs that events do not carry: whether the user,
    the LLM, the voice and the bot's audio are active, so every ``*-started`` gets
    exactly one ``*-stopped``.
    """

    def __init__(self, send: Callable[[Message], None], *, mutes_user: bool = False) -> None:
        self.send = send
        self.mutes_user = mutes_user  # half duplex: the microphone is ignored while the bot speaks
        self.user_speaking = False
        self.llm_active = False
        self.tts_active = False
        self.bot_speaking = False
        self._sentences = 0  # sentences of the current turn

    def __call__(self, event: Event) -> None:
        send = self.send
        if isinstance(event, SpeechStarted):
            if not self.user_speaking:
                self.user_speaking = True
                send(message("user-started-speaking"))
        elif isinstance(event, SpeechEnded):
            if self.user_speaking:
                self.user_speaking = False
                send(message("user-stopped-speaking"))
        elif isinstance(event, (Interim, Final)):
            if event.text.strip():
                send(
                    message(
                        "user-transcription",
                        {
                            "text": event.text,
                            "user_id": USER_ID,
                            "timestamp": _timestamp(),
                            "final": isinstance(event, Final),
                        },
                    )
                )
        elif isinstance(event, UserTurn):
            self._sentences = 0
            send(message("user-llm-text", {"text": event.text}))
            self._llm_started()
        elif isinstance(event, TextDelta):
            self._llm_started()
            send(message("bot-llm-text", {"text": event.text}))
        elif isinstance(event, LLMDone):
            self._llm_stopped()
        elif isinstance(event, BotSentence):
            if not self.tts_active:
                self.tts_active = True
                send(message("bot-tts-started"))
            self._sentences += 1
            send(message("bot-tts-text", {"text": event.text}))
            send(
                message(
                    "bot-output",
                    {
                        "text": event.text,
                        "aggregated_by": "sentence",
                        "spoken": True,
                        "will_be_spoken": True,
                    },
                )
            )
        elif isinstance(event, BargeIn):
            send(message("bot-interrupted"))
            self._bot_stopped()
        elif isinstance(event, BotTurn):
            if not self._sentences and event.text:  # a speech-to-speech model: its words come at the end
                send(message("bot-output", {"text": event.text, "aggregated_by": "turn", "spoken": True}))
            self._bot_stopped()
        elif isinstance(event, TurnMetrics):
            send(message("metrics", metrics_data(event)))
        elif isinstance(event, ErrorEvent):
            send(error(event.message, fatal=event.fatal))

    def bot_audio(self) -> None:
        """The socket sink is sending bot audio."""
        if not self.bot_speaking:
            self.bot_speaking = True
            self.send(message("bot-started-speaking"))
            if self.mutes_user:
                self.send(message("user-mute-started"))

    def _llm_started(self) -> None:
        if not self.llm_active:
            self.llm_active = True
            self.send(message("bot-llm-started"))

    def _llm_stopped(self) -> None:
        if self.llm_active:
            self.llm_active = False
            self.send(message("bot-llm-stopped"))

    def _bot_stopped(self) -> None:
        self._llm_stopped()
        if self.tts_active:
            self.tts_active = False
            self.send(message("bot-tts-stopped"))
        if self.bot_speaking:
            self.bot_speaking = False
            self.send(message("bot-stopped-speaking"))
            if self.mutes_user:
                self.send(message("user-mute-stopped"))
