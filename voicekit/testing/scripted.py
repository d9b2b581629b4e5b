"""Deterministic backends with exact, configurable service latencies.

They need no service, no model and no network, and they are timed precisely: every
delay is one ``asyncio.sleep``-style wait that starts at the moment of the event that
triggers it (the end of a speech segment, the call to ``respond``, the arrival of a
sentence), never a polling loop. The engine's tests and the latency benchmarks use
them, so a benchmark measures the engine, not the fakes.

- :class:`ScriptedSTT` finds speech segments by energy and answers each with the next
  scripted transcript.
- :class:`ScriptedLLM` streams scripted replies (or echoes the user) token by token.
- :class:`ScriptedOutput` is a fake TTS that "speaks" a sine tone, one length per character.
- :class:`NullOutput` speaks nothing at all.

Profiles use them as ``stt: {use: scripted}``, ``llm: {use: scripted}``,
``output: {use: scripted}`` and ``output: {use: silent}`` (``NullOutput``).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from voicekit.clock import now
from voicekit.events import (
    AudioOut,
    Final,
    Interim,
    LLMDone,
    LLMEvent,
    OutputEvent,
    SpeakingEnded,
    SpeakingStarted,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
)
from voicekit.options import BackendOptions
from voicekit.roles import LLM, STT, BackendContext, Capabilities, Message, Output, STTStream

__all__ = ["LLMCall", "NullOutput", "ScriptedLLM", "ScriptedOutput", "ScriptedSTT"]


async def _sleep_until(deadline: float) -> None:
    delay = deadline - now()
    if delay > 0:
        await asyncio.sleep(delay)


# --- STT ----------------------------------------------------------------------------


class ScriptedSTTOptions(BackendOptions):
    """Options of :class:`ScriptedSTT`."""

    transcripts: list[str] = Field(
        default_factory=lambda: ["hello there"],
        min_length=1,
        description="Transcripts given to successive speech segments, in order, starting over after the last",
    )
    final_delay_ms: float = Field(
        0.0, ge=0, le=60_000, description="Time from the detected end of a segment to its Final"
    )
    speech_threshold: float = Field(
        500.0, gt=0, le=32768, description="RMS level (of int16 samples) above which a window counts as speech"
    )
    min_silence_ms: float = Field(300.0, ge=0, le=60_000, description="Silence that ends a speech segment")
    interim: bool = Field(False, description="Emit an Interim with the transcript's first word when a segment starts")
    window_ms: Literal[10, 20] = Field(10, description="Length of the energy-detection window")


class ScriptedSTTStream(STTStream):
    """Energy-based segmentation of the pushed PCM; see :class:`ScriptedSTT`."""

    def __init__(self, owner: ScriptedSTT, sample_rate: int, language: str | None) -> None:
        super().__init__(sample_rate=sample_rate, language=language)
        opts = owner.options
        self._owner = owner
        self._window = max(1, sample_rate * opts.window_ms // 1000)  # samples per window
        self._threshold_sq = float(opts.speech_threshold) ** 2  # compare mean squares: no sqrt per window
        self._silence_windows = math.ceil(opts.min_silence_ms / opts.window_ms)
        self._delay = opts.final_delay_ms / 1000.0
        self._interim = opts.interim
        self._carry = b""
        self._in_speech = False
        self._quiet = 0  # consecutive silent windows inside a segment
        self._text = ""  # transcript of the open segment
        self._pending: set[asyncio.Task[None]] = set()

    def push_audio(self, pcm: bytes) -> None:
        # segmenting is cheap and never blocks: do it on the spot instead of waking a task per frame
        if not self._input_ended and self._task is not None:
            self._feed(pcm)

    async def run(self) -> None:
        try:
            async for chunk in self.audio():  # only end_input comes through here now
                self._feed(chunk)
            if self._in_speech:  # end of input closes the open segment
                self._end_segment()
            while self._pending:
                await asyncio.gather(*self._pending)
        finally:
            for task in self._pending:
                task.cancel()

    def _feed(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        usable = len(data) - len(data) % (2 * self._window)
        self._carry = data[usable:]
        if not usable:
            return
        samples = np.frombuffer(data, dtype="<i2", count=usable // 2).astype(np.float32).reshape(-1, self._window)
        loud = np.einsum("ij,ij->i", samples, samples) > self._threshold_sq * self._window
        if not self._in_speech and not loud.any():
            return  # the common case in silence: nothing to walk through
        for is_loud in loud.tolist():
            if is_loud:
                self._quiet = 0
                if not self._in_speech:
                    self._start_segment()
            elif self._in_speech:
                self._quiet += 1
                if self._quiet >= self._silence_windows:
                    self._end_segment()

    def _start_segment(self) -> None:
        self._in_speech = True
        self._quiet = 0
        self._text = self._owner._next_transcript()
        self.emit(SpeechStarted(source="stt"))
        if self._interim and self._text.split():
            self.emit(Interim(text=self._text.split()[0]))

    def _end_segment(self) -> None:
        self._in_speech = False
        self._quiet = 0
        self.emit(SpeechEnded(source="stt"))
        text, self._text = self._text, ""
        if self._delay <= 0:
            self.emit(Final(text=text, language=self.language))
            return
        task = asyncio.get_running_loop().create_task(self._final_later(text))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _final_later(self, text: str) -> None:
        await asyncio.sleep(self._delay)
        self.emit(Final(text=text, language=self.language))


class ScriptedSTT(STT):
    """A speech recognizer that hears *that* someone spoke, and says what it was told to.

    Each pushed chunk is cut into 10 ms (or 20 ms) windows and a window whose RMS is
    above ``speech_threshold`` counts as speech; the work is one vectorised numpy
    reduction per chunk. Per speech segment the stream emits:

    - ``SpeechStarted(source="stt")`` when the first loud window is seen (and, with
      ``interim``, an ``Interim`` with the first word of the segment's transcript);
    - ``SpeechEnded(source="stt")`` when ``min_silence_ms`` of silence has followed
      the speech. It is stamped at that detection, not at the moment the silence
      began: with audio pushed in real time, it comes ``min_silence_ms`` after the
      user stopped, like an endpointing service;
    - ``Final(text)`` exactly ``final_delay_ms`` after that ``SpeechEnded``.

    ``end_input`` ends an open segment at once (``SpeechEnded``, then the ``Final``
    after ``final_delay_ms``); the stream ends when every Final is out. Input with no
    loud window gives no event at all. Transcripts are used in order by every stream
    of one backend and start over after the last.
    """

    Options: ClassVar[type[ScriptedSTTOptions]] = ScriptedSTTOptions
    options: ScriptedSTTOptions
    capabilities = Capabilities(streaming=True, interim_results=True, sample_rates=(8000, 16000, 24000, 48000))

    def __init__(self, options: ScriptedSTTOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._turn = 0

    def _next_transcript(self) -> str:
        transcripts = self.options.transcripts
        text = transcripts[self._turn % len(transcripts)]
        self._turn += 1
        return text

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> ScriptedSTTStream:
        return ScriptedSTTStream(self, sample_rate, language or self.context.language)


# --- LLM ----------------------------------------------------------------------------


class ScriptedLLMOptions(BackendOptions):
    """Options of :class:`ScriptedLLM`."""

    replies: list[str] | None = Field(
        None, description='Replies given in order, starting over after the last; none: "You said: <text>."'
    )
    first_token_ms: float = Field(
        0.0, ge=0, le=600_000, description="Time from the call to respond() to the first TextDelta"
    )
    token_ms: float = Field(0.0, ge=0, le=60_000, description="Time between successive TextDeltas")
    chunk: Literal["word", "char", "all"] = Field(
        "word", description="What one TextDelta carries: a word with its trailing space, a character, or everything"
    )


@dataclass(frozen=True)
class LLMCall:
    """One call to :meth:`ScriptedLLM.respond`: the history and the user's text it received."""

    history: tuple[Message, ...]
    user_text: str


_WORDS = re.compile(r"\s*\S+\s*|\s+")


def split_reply(text: str, chunk: Literal["word", "char", "all"]) -> list[str]:
    """Cut ``text`` into the pieces a streaming model would send; they join back to ``text``."""
    if not text:
        return []
    if chunk == "all":
        return [text]
    if chunk == "char":
        return list(text)
    return _WORDS.findall(text)


class ScriptedLLM(LLM):
    """A language model that streams scripted replies at a scripted pace.

    The first ``TextDelta`` comes ``first_token_ms`` after ``respond`` is called and
    each next one ``token_ms`` after the previous (deadlines are counted from the call,
    so delays do not drift); ``LLMDone`` follows the last delta at once. Every call is
    recorded in :attr:`calls`.
    """

    Options: ClassVar[type[ScriptedLLMOptions]] = ScriptedLLMOptions
    options: ScriptedLLMOptions
    capabilities = Capabilities(streaming=True)

    def __init__(self, options: ScriptedLLMOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.calls: list[LLMCall] = []

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        start = now()  # the clock starts at the call, not at the first pull
        replies = self.options.replies
        if replies:
            reply = replies[len(self.calls) % len(replies)]
        else:
            reply = f"You said: {user_text.strip().rstrip('.!?')}."
        self.calls.append(LLMCall(tuple(history), user_text))
        return self._stream(start, reply)

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        first = self.options.first_token_ms / 1000.0
        step = self.options.token_ms / 1000.0
        for i, piece in enumerate(split_reply(reply, self.options.chunk)):
            await _sleep_until(start + first + i * step)
            yield TextDelta(text=piece)
        if not reply:
            await _sleep_until(start + first)
        yield LLMDone(text=reply)


# --- Output -------------------------------------------------------------------------


class _Turn:
    """One call to ``speak``: stopped by ``interrupt``, waking any wait it is in."""

    __slots__ = ("stopped", "waiter")

    def __init__(self) -> None:
        self.stopped = False
        self.waiter: asyncio.Future[bool] | None = None

    def stop(self) -> None:
        self.stopped = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(False)

    async def wait(self, delay: float) -> bool:
        """Wait ``delay`` seconds; False (at once) if the turn is stopped meanwhile."""
        if self.stopped:
            return False
        if delay <= 0:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self.waiter = fut
        handle = loop.call_later(delay, _resolve, fut)
        try:
            return await fut
        finally:
            handle.cancel()
            self.waiter = None


def _resolve(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)


class _TurnTaking:
    """Shared interrupt bookkeeping of the scripted outputs."""

    def __init__(self) -> None:
        self.sentences: list[str] = []
        self.interrupts: list[float] = []
        self._turns: set[_Turn] = set()

    def _new_turn(self) -> _Turn:
        turn = _Turn()
        self._turns.add(turn)
        return turn

    async def interrupt(self) -> None:
        """Stop every turn being spoken now; a later ``speak`` starts afresh."""
        self.interrupts.append(now())
        turns, self._turns = self._turns, set()
        for turn in turns:
            turn.stop()


class ScriptedOutputOptions(BackendOptions):
    """Options of :class:`ScriptedOutput`."""

    sample_rate: int = Field(24000, ge=8000, le=48000, description="Rate of the AudioOut it yields")
    first_audio_ms: float = Field(
        0.0, ge=0, le=600_000, description="Time from a sentence's arrival to its first audio"
    )
    ms_per_char: float = Field(60.0, ge=0, le=10_000, description="Audio length per character of the sentence")
    chunk_ms: float = Field(20.0, gt=0, le=10_000, description="Length of one AudioOut chunk")
    realtime: bool = Field(False, description="Pace chunks like a live speaker (else yield them as fast as taken)")
    tone_hz: float = Field(220.0, gt=0, le=24_000, description="Pitch of the tone it speaks")
    amplitude: int = Field(8000, ge=0, le=32767, description="Peak of the tone (int16); 8000 is about -12 dBFS")


class ScriptedOutput(_TurnTaking, Output):
    """A fake TTS voice: each sentence becomes a sine tone ``ms_per_char`` long per character.

    Per sentence it yields ``SpeakingStarted(text)`` when the first audio is ready
    (``first_audio_ms`` after the sentence arrived), the ``AudioOut`` chunks, and
    ``SpeakingEnded(text)``. With ``realtime`` the chunks are paced at their playing
    speed and ``SpeakingEnded`` comes when the last one has played; without it they
    come as fast as the consumer takes them. ``interrupt`` stops at once, also in the
    middle of a wait, and no audio of that turn comes after it. Sentences received
    and interrupt times are kept in :attr:`sentences` and :attr:`interrupts`.
    """

    Options: ClassVar[type[ScriptedOutputOptions]] = ScriptedOutputOptions
    options: ScriptedOutputOptions
    capabilities = Capabilities(
        streaming=True, produces_audio=True, sample_rates=(8000, 16000, 22050, 24000, 44100, 48000)
    )

    def __init__(self, options: ScriptedOutputOptions | None = None, context: BackendContext | None = None) -> None:
        Output.__init__(self, options, context)
        _TurnTaking.__init__(self)
        self.sample_rate = self.options.sample_rate

    def tone(self, n_samples: int) -> bytes:
        """``n_samples`` of the voice's tone as int16 PCM."""
        phase = np.arange(n_samples, dtype=np.float64) * (2.0 * math.pi * self.options.tone_hz / self.sample_rate)
        return (np.sin(phase) * self.options.amplitude).astype("<i2").tobytes()

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        return self._speak(sentences, self._new_turn())  # the turn exists from the call on

    async def _speak(self, sentences: AsyncIterator[str], turn: _Turn) -> AsyncIterator[OutputEvent]:
        opts = self.options
        chunk_samples = max(1, round(self.sample_rate * opts.chunk_ms / 1000.0))
        try:
            async for sentence in sentences:
                arrived = now()
                self.sentences.append(sentence)
                if turn.stopped or not await turn.wait(arrived + opts.first_audio_ms / 1000.0 - now()):
                    return
                pcm = self.tone(round(len(sentence) * opts.ms_per_char / 1000.0 * self.sample_rate))
                step = 2 * chunk_samples
                first = now()
                yield SpeakingStarted(text=sentence)
                for i, offset in enumerate(range(0, len(pcm), step)):
                    if opts.realtime and i and not await turn.wait(first + i * opts.chunk_ms / 1000.0 - now()):
                        return
                    if turn.stopped:
                        return
                    yield AudioOut(pcm=pcm[offset : offset + step], sample_rate=self.sample_rate)
                if opts.realtime and not await turn.wait(first + len(pcm) / 2 / self.sample_rate - now()):
                    return
                if turn.stopped:
                    return
                yield SpeakingEnded(text=sentence)
        finally:
            self._turns.discard(turn)


class NullOutput(_TurnTaking, Output):
    """An output that speaks nothing: ``SpeakingStarted`` and ``SpeakingEnded`` per sentence, no audio.

    Useful for text-only conversations and for measuring the engine without audio.
    Sentences received and interrupt times are kept in :attr:`sentences` and :attr:`interrupts`.
    """

    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities = Capabilities(streaming=True, produces_audio=False)

    def __init__(self, options: Any = None, context: BackendContext | None = None) -> None:
        Output.__init__(self, options, context)
        _TurnTaking.__init__(self)

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        return self._speak(sentences, self._new_turn())

    async def _speak(self, sentences: AsyncIterator[str], turn: _Turn) -> AsyncIterator[OutputEvent]:
        try:
            async for sentence in sentences:
                self.sentences.append(sentence)
                if turn.stopped:
                    return
                yield SpeakingStarted(text=sentence)
                if turn.stopped:
                    return
                yield SpeakingEnded(text=sentence)
        finally:
            self._turns.discard(turn)
