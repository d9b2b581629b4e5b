"""The user's side of a conversation: audio in, through filters and the VAD, to the STT
(or a realtime model), and the STT's events on to turn-taking.

Frames cross no queue here: filters and the VAD are plain calls, and a frame is pushed
into the STT stream, which never blocks. Until the STT gives a final transcript, the
utterance's audio is kept, so that a replacement STT (``fallback:``) hears it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Sequence
from typing import Any, Protocol

from voicekit.clock import now
from voicekit.engine.fallback import BackendChain
from voicekit.engine.playback import Recorder
from voicekit.engine.realtime import RealtimeBridge
from voicekit.engine.turns import TurnTaking
from voicekit.events import (
    EagerEndOfTurn,
    EndOfTurn,
    Event,
    Final,
    Interim,
    SpeechEnded,
    SpeechStarted,
    TurnResumed,
)
from voicekit.roles import STT, STTStream

log = logging.getLogger(__name__)

AudioFilter = Callable[[bytes], "bytes | None"]

_REPLAY_LIMIT_BYTES = 60 * 32000  # at most a minute of 16 kHz audio is replayed to a replacement STT
_KEPT_AUDIO_BYTES = 10 * 32000  # the user's last 10 s, for an end-of-turn detector (it reads at most 8)
_LEAD_IN_S = 0.5  # a detector hears this much before the speech started


class VAD(Protocol):
    def process(self, pcm: bytes) -> Sequence[SpeechStarted | SpeechEnded]: ...


class Listener:
    """Feeds the user's audio to the STT or realtime model and their words to turn-taking.

    ``spawn`` starts a task in the conversation's task group (a realtime model's
    activity signals).
    """

    def __init__(
        self,
        turns: TurnTaking,
        emit: Callable[[Event], None],
        spawn: Callable[[Any, str], asyncio.Task[Any]],
        *,
        source: AsyncIterable[bytes] | None,
        stts: BackendChain[STT] | None,
        realtime: RealtimeBridge | None,
        vad: VAD | None = None,
        filters: Sequence[AudioFilter] = (),
        recorder: Recorder | None = None,
        fast: bool = False,
        language: str | None = None,
        keep_audio: bool = False,
    ) -> None:
        self.turns, self.emit, self.spawn = turns, emit, spawn
        self.source, self.stts, self.realtime = source, stts, realtime
        self.vad, self.filters, self.recorder = vad, tuple(filters), recorder
        self.fast, self.language = fast, language
        self.stream: STTStream | None = None
        self._utterance = bytearray()  # audio since the last final transcript
        self._input_ended = False
        self._input_s = 0.0  # seconds of audio taken from the source so far
        self._recent: bytearray | None = bytearray() if keep_audio else None  # the user's latest audio
        self._recent_t = 0.0  # when the last frame of it arrived

    # --- the STT stream ---------------------------------------------------------------------

    async def open(self) -> None:
        if self.stts is not None and self.source is not None and self.realtime is None:
            self.stream = await self._open_stt()

    async def _open_stt(self) -> STTStream:
        """A stream of the serving STT (retried, then the next STT, per its chain)."""
        assert self.stts is not None
        while True:
            stream: STTStream = self.stts.active.stream(sample_rate=16000, language=self.language)
            try:
                await stream.__aenter__()
                return stream
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - goes to the chain
                await self.stts.recover(exc)

    async def aclose(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.aclose()

    async def read_stt(self) -> None:
        """The STT's events, until its stream ends; a failed STT is replaced on the way."""
        while self.stream is not None:
            try:
                async for event in self.stream:
                    self._on_stt_event(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - goes to the chain
                await self._replace_stt(exc)

    def _on_stt_event(self, event: Event) -> None:
        if isinstance(event, (SpeechStarted, SpeechEnded)):
            self.on_speech_edge(event)
        elif isinstance(event, Interim):
            self.emit(event)
            self.turns.interim(event.text, event.t)
        elif isinstance(event, Final):
            self.emit(event)
            if event.text.strip():
                self._utterance.clear()
                self.turns.user_said(event.text.strip(), event.t)
        elif isinstance(event, EagerEndOfTurn):
            self.emit(event)
            self.turns.stt_eager_end_of_turn(event.text, event.t)
        elif isinstance(event, TurnResumed):
            self.emit(event)
            self.turns.stt_turn_resumed(event.t)
        elif isinstance(event, EndOfTurn):
            self.emit(event)
            self.turns.stt_end_of_turn(event.t)
        else:
            self.emit(event)

    def recent_audio(self, since: float | None) -> bytes:
        """The user's audio from a little before ``since`` (the start of their turn) to now."""
        recent = self._recent
        if recent is None:
            return b""
        if since is None:
            return bytes(recent)
        seconds = max(0.0, self._recent_t - since) + _LEAD_IN_S
        size = min(len(recent), int(seconds * 16000) * 2)
        return bytes(recent[len(recent) - size :])

    async def _replace_stt(self, error: BaseException) -> None:
        """The STT failed beyond its own reconnects: the next one hears the utterance again."""
        assert self.stts is not None
        old, self.stream = self.stream, None
        if old is not None:
            try:
                await old.aclose()
            except Exception as exc:  # noqa: BLE001 - the replacement matters more
                log.debug("closing the failed stt stream: %s", exc)
        await self.stts.recover(error, retry=False)  # a streaming STT has retried its connection itself
        stream = await self._open_stt()
        if self._utterance:
            stream.push_audio(bytes(self._utterance))
        if self._input_ended:
            stream.end_input()
        self.stream = stream

    # --- the audio ------------------------------------------------------------------------------

    async def pump(self) -> None:
        """Every frame of the source, through filters, mic gating and the VAD, to its listener."""
        assert self.source is not None
        filters, vad, recorder, turns = self.filters, self.vad, self.recorder, self.turns
        try:
            async for frame in self.source:
                for audio_filter in filters:
                    frame = audio_filter(frame)  # type: ignore[assignment]
                    if frame is None:
                        break
                else:
                    if not turns.mic_open:
                        if not self.fast:
                            if recorder is not None:
                                recorder.user_audio(frame)
                            continue  # the mic is muted while the bot speaks
                        await turns.wait_mic_open()  # a file has no real time: wait instead of dropping
                    if recorder is not None:
                        recorder.user_audio(frame)
                    if self._recent is not None:
                        self._keep(frame)
                    self._input_s += len(frame) / 32000
                    if vad is not None:
                        for event in vad.process(frame):
                            self.on_speech_edge(self._when_it_happened(event))
                    self._push(frame)
        finally:
            self._input_ended = True
            if self.stream is not None:
                self.stream.end_input()
        if self.realtime is not None:
            await self.realtime.end_input()

    def _keep(self, frame: bytes) -> None:
        recent = self._recent
        assert recent is not None
        recent += frame
        self._recent_t = now()
        if len(recent) > _KEPT_AUDIO_BYTES + 32000:  # trim once a second, not every frame
            del recent[: len(recent) - _KEPT_AUDIO_BYTES]

    def _push(self, frame: bytes) -> None:
        if self.realtime is not None:
            self.realtime.push_audio(frame)
            return
        if self.stts is None:
            return
        self._utterance += frame
        if len(self._utterance) > _REPLAY_LIMIT_BYTES:
            del self._utterance[: len(self._utterance) - _REPLAY_LIMIT_BYTES]
        if self.stream is not None:  # None only while a failed STT is being replaced
            self.stream.push_audio(frame)

    def _when_it_happened(self, event: SpeechStarted | SpeechEnded) -> SpeechStarted | SpeechEnded:
        """A VAD reports an edge after its hangover; stamp it when the speech really
        started or stopped (frames arrive in real time, so stream time maps to the clock)."""
        if self.fast:
            return event
        position = getattr(self.vad, "speech_start_s" if isinstance(event, SpeechStarted) else "speech_end_s", None)
        if position is None:
            return event
        return type(event)(source=event.source, t=event.t - max(0.0, self._input_s - position))

    def on_speech_edge(self, event: SpeechStarted | SpeechEnded) -> None:
        """The user started or stopped speaking (the VAD's, the STT's or the model's word)."""
        self.emit(event)
        if self.realtime is not None and self.realtime.client_activity and event.source == "vad":
            self.spawn(self.realtime.speech_edge(event), "realtime-activity")
        self.turns.speech_edge(event)
