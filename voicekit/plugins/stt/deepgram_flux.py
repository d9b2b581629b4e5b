"""Deepgram Flux (``stt: {use: deepgram_flux}``): speech recognition that knows when a turn ends.

Flux (``/v2/listen``, models ``flux-general-en`` and ``flux-general-multi``) reports turns,
not segments: ``TurnInfo`` messages with the event ``StartOfTurn``, ``Update``,
``EagerEndOfTurn`` (when ``eager_eot_threshold`` is set), ``TurnResumed`` and ``EndOfTurn``.
:class:`FluxStream` turns them into voicekit's events — ``SpeechStarted`` and ``Interim``
while the user speaks, :class:`~voicekit.events.EagerEndOfTurn` and
:class:`~voicekit.events.TurnResumed`, and one ``Final`` followed by
:class:`~voicekit.events.EndOfTurn` per turn — so the service's own end-of-turn detection
drives turn-taking (an eager end of turn starts a preemptive reply, a resumed turn drops it).

Same client, key, ``base_url`` and reconnects as ``stt: deepgram`` (deepgram-sdk 7's
``client.listen.v2.connect``): a dropped socket is reopened per the role's ``retry:`` policy
and the audio of the turn not yet ended is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any, ClassVar

from pydantic import Field, field_validator

from voicekit.clock import now
from voicekit.errors import BackendError
from voicekit.events import EagerEndOfTurn, EndOfTurn, Final, Interim, SpeechStarted, STTEvent, TurnResumed
from voicekit.options import CloudOptions
from voicekit.plugins.stt.deepgram import DeepgramStream, DeepgramSTT, service_urls
from voicekit.plugins.stt.deepgram import _as_dict as as_mapping
from voicekit.roles import Capabilities

log = logging.getLogger(__name__)

_SILENCE_S = 0.08  # what a keep-alive sends while no audio flows: Flux has no KeepAlive message


class FluxOptions(CloudOptions):
    """Options of ``stt: {use: deepgram_flux}``."""

    model: str = Field("flux-general-en", description="Flux model: flux-general-en or flux-general-multi")
    eot_threshold: float | None = Field(
        None, ge=0.5, le=0.9, description="End-of-turn confidence that ends a turn (service default 0.7)"
    )
    eager_eot_threshold: float | None = Field(
        0.5, ge=0.3, le=0.9, description="Confidence for an early end-of-turn guess (preemptive replies); null: off"
    )
    eot_timeout_ms: int | None = Field(
        None, ge=500, le=10_000, description="Silence that ends a turn whatever the confidence (service default 5000)"
    )
    keyterms: list[str] = Field(default_factory=list, description="Words and names to recognise better")
    language_hints: list[str] = Field(default_factory=list, description="Languages to expect (flux-general-multi)")
    keepalive_s: float | None = Field(
        4.0, gt=0, lt=10, description="Send a little silence after this many seconds without audio"
    )
    close_timeout_s: float = Field(5.0, gt=0, le=120, description="Wait this long for the last turn after input ends")
    max_resend_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Audio of an unfinished turn kept to re-send after a dropped connection, in seconds",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is not None:
            service_urls(value)
        return value

    @field_validator("model")
    @classmethod
    def _flux_model(cls, value: str) -> str:
        if not value.startswith("flux"):
            raise ValueError(f"{value!r} is not a Flux model; nova and other models are stt: {{use: deepgram}}")
        return value


class DeepgramFluxSTT(DeepgramSTT):
    """Deepgram Flux through ``deepgram-sdk``'s async client; see the module docstring.

    Its streams reconnect by themselves per ``context.retry`` (the role's ``retry:``), re-sending
    the audio of the turn in progress. The history and the turn decisions stay with the engine.
    """

    Options: ClassVar[type[FluxOptions]] = FluxOptions  # type: ignore[assignment]
    options: FluxOptions  # type: ignore[assignment]
    capabilities = Capabilities(streaming=True, interim_results=True, sample_rates=(8000, 16000, 24000, 48000))

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> FluxStream:
        return FluxStream(self, sample_rate=sample_rate, language=language or self.context.language)

    def query(self, sample_rate: int, language: str | None) -> dict[str, Any]:
        """Keyword arguments of ``client.listen.v2.connect``."""
        o = self.options
        params: dict[str, Any] = {"model": o.model, "encoding": "linear16", "sample_rate": str(sample_rate)}
        for key in ("eot_threshold", "eager_eot_threshold", "eot_timeout_ms"):
            value = getattr(o, key)
            if value is not None:
                params[key] = str(value)
        if o.keyterms:
            params["keyterm"] = list(o.keyterms)
        if o.language_hints:
            params["language_hint"] = list(o.language_hints)
        return params


class FluxStream(DeepgramStream):
    """One Flux transcription: turns in, voicekit events out; reconnects without losing a turn."""

    _backend: DeepgramFluxSTT

    def __init__(self, backend: DeepgramFluxSTT, *, sample_rate: int, language: str | None) -> None:
        super().__init__(backend, sample_rate=sample_rate, language=language)
        self._turn_open = False
        self._last_sequence = -1
        self.sequence_gaps = 0  # messages the service numbered but we never got (after a reconnect)

    def _flush(self) -> None:
        """A turn the service never ended gives no Final: nothing was confirmed."""

    async def _connect_once(self) -> None:
        client = self._backend._client
        params = self._backend.query(self.sample_rate, self.language)
        async with AsyncExitStack() as stack:
            conn = await asyncio.wait_for(
                stack.enter_async_context(client.listen.v2.connect(**params)), self._opts.timeout_s
            )
            self._last_sequence = -1
            self._turn_open = False  # a new socket knows no turn: the re-sent audio starts it again
            self.connections += 1
            await self._session(conn)

    async def _receive(self, conn: Any, offset: int) -> None:
        async for message in conn:
            if isinstance(message, (bytes, bytearray)):
                continue
            data = _as_dict(message)
            sequence = data.get("sequence_id")
            if isinstance(sequence, int):
                if sequence > self._last_sequence + 1:
                    self.sequence_gaps += sequence - self._last_sequence - 1
                self._last_sequence = sequence
            kind = data.get("type")
            if kind == "Error":
                code, text = data.get("code") or "", data.get("description") or "unknown error"
                raise BackendError(
                    f"{self._backend.label}: Deepgram Flux reported an error: {code} {text}".replace("  ", " "),
                    retryable=str(code).upper() in ("INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"),
                )
            if kind == "ConfigureFailure":
                log.warning("%s: Flux refused a Configure message: %s", self._backend.label, data)
            if kind != "TurnInfo":
                continue
            for event in self._turn_events(data):
                self.emit(event)
            if data.get("event") == "EndOfTurn":
                self._finals_seen = True
                self._release(offset + round(float(data.get("audio_window_end") or 0.0) * self.sample_rate) * 2)

    def _turn_events(self, data: dict[str, Any]) -> list[STTEvent]:
        event = data.get("event")
        text = str(data.get("transcript") or "").strip()
        confidence = data.get("end_of_turn_confidence")
        if event == "StartOfTurn":
            self._turn_open = True
            return [SpeechStarted(source="stt"), *([Interim(text)] if text else [])]
        if event == "Update":
            return [Interim(text)] if text else []
        if event == "EagerEndOfTurn":
            return [EagerEndOfTurn(text, confidence)]
        if event == "TurnResumed":
            return [TurnResumed()]
        if event == "EndOfTurn":
            self._turn_open = False
            words = data.get("words") or []
            scores = [float(w["confidence"]) for w in words if isinstance(w, dict) and "confidence" in w]
            languages = data.get("languages") or ()
            final = Final(
                text,
                confidence=sum(scores) / len(scores) if scores else None,
                language=languages[0] if languages else self.language,
            )
            return [*([final] if text else []), EndOfTurn(confidence)]
        return []

    async def _send(self, conn: Any) -> None:
        backlog = bytes(self._buffer)
        for i in range(0, len(backlog), 6400):
            await self._send_audio(conn, backlog[i : i + 6400])
        if not self._input_done:
            async for chunk in self.audio():
                self._keep(chunk)
                await self._send_audio(conn, chunk)
            self._input_done = True
        async with self._send_lock:
            if self._turn_open or self._buffer:  # audio no turn has ended yet: the input is over, so is the turn
                await conn.send_force_end_turn()
            self._close_sent = True
            await conn.send_close_stream()

    async def _keepalive(self, conn: Any, period: float) -> None:
        silence = bytes(int(self.sample_rate * _SILENCE_S) * 2)
        while True:
            await asyncio.sleep(max(0.0, self._last_sent + period - now()))
            async with self._send_lock:
                if self._close_sent:
                    return
                if now() - self._last_sent >= period * 0.99:
                    self._keep(silence)  # part of the stream's timeline, like any audio
                    await conn.send_media(silence)
                    self._last_sent = now()


def _as_dict(message: object) -> dict[str, Any]:
    return dict(as_mapping(message))
