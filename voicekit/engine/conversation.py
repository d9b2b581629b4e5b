"""The conversation engine: the one place where the stages are wired together.

::

    source ─► filters ─► VAD ─► STT ─► turns ─► LLM ─► sentences ─► output ─► playback ─► sink
                           └──────────────► realtime LLM (audio in, audio out) ──────────┘

One task per edge (audio pump, STT reader, playback) plus one task per bot turn
(LLM + output), all in one TaskGroup. Audio frames cross no queue between the
source and the STT: filters and the VAD are plain calls, so a frame costs
microseconds. The first sentence of a reply goes to the output as soon as the
LLM has written it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from voicekit.audio.pcm import StreamResampler
from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine import realtime
from voicekit.engine.metrics import TurnClock
from voicekit.engine.sentences import SentenceSplitter
from voicekit.engine.turns import AUDIO, SENTENCE, SENTENCE_END, STOP, TURN_END, BotTurn, DuplexMode, SentenceProgress
from voicekit.errors import VoicekitError
from voicekit.events import (
    AudioOut,
    BargeIn,
    BotSentence,
    Event,
    Final,
    Interim,
    LLMDone,
    SpeakingEnded,
    SpeakingStarted,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    TurnMetrics,
    UserTurn,
)
from voicekit.events import BotTurn as BotTurnEvent
from voicekit.roles import LLM, STT, Message, Output, RealtimeStream, STTStream, missing_roles

log = logging.getLogger(__name__)

Observer = Callable[[Event], None]
AudioFilter = Callable[[bytes], "bytes | None"]


class Recorder(Protocol):
    """Receives both sides' audio; see :class:`voicekit.recording.ConversationRecorder`."""

    def user_audio(self, pcm: bytes) -> None: ...
    def bot_audio(self, pcm: bytes, sample_rate: int, at: float | None) -> None: ...


class VAD(Protocol):
    def process(self, pcm: bytes) -> Sequence[SpeechStarted | SpeechEnded]: ...


@dataclass
class ConversationResult:
    """What happened: the history as heard, every turn's metrics, and why it ended."""

    history: list[Message]
    metrics: list[TurnMetrics] = field(default_factory=list)
    turns: int = 0
    reason: str = "end_of_input"


class Conversation:
    """One voice conversation between a user and a bot.

    Backends are started by :meth:`run` and always closed by it, whatever happens;
    remote billable sessions opened through ``remote_sessions`` are closed too.
    """

    def __init__(
        self,
        *,
        llm: LLM,
        stt: STT | None = None,
        output: Output | None = None,
        sink: AudioSink,
        source: AsyncIterable[bytes] | None = None,
        text_input: AsyncIterable[str] | None = None,
        mode: DuplexMode = "half_duplex",
        vad: VAD | None = None,
        filters: Sequence[AudioFilter] = (),
        history: list[Message] | None = None,
        observers: Sequence[Observer] = (),
        recorder: Recorder | None = None,
        fast: bool = False,
        language: str | None = None,
        remote_sessions: Any = None,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.llm, self.stt, self.output, self.sink = llm, stt, output, sink
        self.source, self.text_input = source, text_input
        self.mode: DuplexMode = mode
        self.vad = vad
        self.filters = tuple(filters)
        self.history: list[Message] = history if history is not None else []
        self.observers = list(observers)
        self.recorder = recorder
        self.fast = fast
        self.language = language
        self.remote_sessions = remote_sessions
        self.drain_timeout_s = drain_timeout_s
        self.realtime = bool(llm.capabilities.accepts_audio)
        # an avatar speaks in its own room: its speaking events, not our sink, say what was heard
        self._remote_output = output is not None and output.capabilities.remote_session
        missing = missing_roles(
            llm.name or type(llm).__name__,
            llm.capabilities,
            has_stt=stt is not None,
            has_output=output is not None,
            audio_input=source is not None,
        )
        if missing:
            raise VoicekitError(str(missing[0]))
        self.metrics: list[TurnMetrics] = []
        self._turn: BotTurn | None = None
        self._turn_count = 0
        self._pending_user: list[str] = []
        self._last_speech_end: float | None = None
        self._last_speech_start: float | None = None
        self._input_s = 0.0  # seconds of audio taken from the source so far
        self._last_turn_end: float | None = None
        self._mic_open = asyncio.Event()
        self._mic_open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._playback: asyncio.Queue[tuple[int, BotTurn | None, Any]] = asyncio.Queue()
        self._stt_stream: STTStream | None = None
        self._session: RealtimeStream | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._resamplers: dict[int, StreamResampler] = {}

    # --- public ---------------------------------------------------------------------

    async def run(self) -> ConversationResult:
        """Run until the input ends (and the last reply is spoken), an error, or cancellation."""
        backends = [b for b in (self.stt, self.llm, self.output) if b is not None]
        try:
            await self._start_backends(backends)
            async with contextlib.AsyncExitStack() as stack:
                if self.realtime:
                    self._session = await stack.enter_async_context(self.llm.realtime(self.history))
                elif self.stt is not None and self.source is not None:
                    self._stt_stream = await stack.enter_async_context(
                        self.stt.stream(sample_rate=16000, language=self.language)
                    )
                try:
                    async with asyncio.TaskGroup() as tg:
                        self._tg = tg
                        tg.create_task(self._play(), name="playback")
                        if self.text_input is not None:
                            tg.create_task(self._read_text(), name="text-input")
                        if self.source is not None:
                            tg.create_task(self._pump_audio(), name="audio-pump")
                        if self._session is not None:
                            tg.create_task(realtime.read_events(self), name="realtime-reader")
                        elif self._stt_stream is not None:
                            tg.create_task(self._read_stt(), name="stt-reader")
                except BaseExceptionGroup as group:
                    raise _primary(group) from None
        finally:
            await self._shutdown(backends)
        return ConversationResult(self.history, self.metrics, self._turn_count)

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def submit_text(self, text: str) -> None:
        """A typed user message, answered like a spoken one (call from the running loop)."""
        text = text.strip()
        if not text:
            return
        t = now()
        self._last_speech_end = t
        self._emit(Final(text, t=t))
        if self._session is not None:
            assert self._tg is not None
            self._tg.create_task(self._session.send_text(text), name="realtime-text")
            realtime.user_said(self, text, t)
        else:
            self._user_said(text, t)

    # --- lifecycle ------------------------------------------------------------------

    async def _start_backends(self, backends: list[Any]) -> None:
        results = await asyncio.gather(*(b.start() for b in backends), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _shutdown(self, backends: list[Any]) -> None:
        """Close everything, even when cancelled again meanwhile."""

        async def close_all() -> None:
            if self._turn is not None and not self._turn.finished and self._turn.task is not None:
                self._turn.task.cancel()
            for backend in reversed(backends):
                try:
                    await asyncio.wait_for(backend.aclose(), 10)
                except Exception as exc:  # noqa: BLE001 - keep closing the rest
                    log.warning("closing %s failed: %s", backend.label, exc)
            if self.remote_sessions is not None:
                await self.remote_sessions.close_all()
            with contextlib.suppress(Exception):
                await self.sink.aclose()

        task = asyncio.ensure_future(close_all())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    def _emit(self, event: Event) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer failed on %s", type(event).__name__)

    # --- input ----------------------------------------------------------------------

    async def _pump_audio(self) -> None:
        assert self.source is not None
        push = self._session.push_audio if self._session is not None else self._stt_stream.push_audio  # type: ignore[union-attr]
        filters, vad, recorder = self.filters, self.vad, self.recorder
        half_duplex = self.mode == "half_duplex"
        try:
            async for frame in self.source:
                for audio_filter in filters:
                    frame = audio_filter(frame)  # type: ignore[assignment]
                    if frame is None:
                        break
                else:
                    if half_duplex and not self._mic_open.is_set():
                        if not self.fast:
                            if recorder is not None:
                                recorder.user_audio(frame)
                            continue  # the mic is muted while the bot speaks
                        await self._mic_open.wait()  # a file has no real time: wait instead of dropping
                    if recorder is not None:
                        recorder.user_audio(frame)
                    self._input_s += len(frame) / 32000
                    if vad is not None:
                        for event in vad.process(frame):
                            self._on_speech_edge(self._when_it_happened(event))
                    push(frame)
        finally:
            if self._stt_stream is not None:
                self._stt_stream.end_input()
        if self._session is not None:
            await self._session.end_input()
            await realtime.drain(self)

    async def _read_text(self) -> None:
        assert self.text_input is not None
        async for line in self.text_input:
            if line.strip():
                self.submit_text(line)
                await self._wait_idle()
        await self._wait_idle()
        if self.source is None:
            self._playback.put_nowait((STOP, None, None))

    async def _read_stt(self) -> None:
        assert self._stt_stream is not None
        async for event in self._stt_stream:
            if isinstance(event, (SpeechStarted, SpeechEnded)):
                self._on_speech_edge(event)
            elif isinstance(event, Interim):
                self._emit(event)
                if event.text.strip():
                    self._maybe_barge_in(event.t)
            elif isinstance(event, Final):
                self._emit(event)
                if event.text.strip():
                    self._user_said(event.text.strip(), event.t)
            else:
                self._emit(event)
        await self._wait_idle()
        self._playback.put_nowait((STOP, None, None))

    def _when_it_happened(self, event: SpeechStarted | SpeechEnded) -> SpeechStarted | SpeechEnded:
        """A VAD reports an edge after its hangover; stamp it when the speech really
        started or stopped (frames arrive in real time, so stream time maps to the clock)."""
        if self.fast:
            return event
        position = getattr(self.vad, "speech_start_s" if isinstance(event, SpeechStarted) else "speech_end_s", None)
        if position is None:
            return event
        return type(event)(source=event.source, t=event.t - max(0.0, self._input_s - position))

    def _on_speech_edge(self, event: SpeechStarted | SpeechEnded) -> None:
        self._emit(event)
        session = self._session
        if session is not None and session.client_activity and event.source == "vad":
            signal = session.activity_start if isinstance(event, SpeechStarted) else session.activity_end
            assert self._tg is not None
            self._tg.create_task(signal(), name="realtime-activity")
        # with a VAD in the chain its edges time the turn; a service's endpoint comes later
        timing = self.vad is None or event.source == "vad"
        if isinstance(event, SpeechStarted):
            if timing:
                self._last_speech_start = event.t
            self._maybe_barge_in(event.t)
            return
        if not timing:
            return
        self._last_speech_end = event.t
        turn = self._turn
        if turn is not None and turn.clock.speech_end is None and event.t <= (turn.clock.final or event.t):
            turn.clock.speech_end = event.t  # the final came before the VAD's hangover ran out

    def _speech_end_of_this_utterance(self) -> float | None:
        end, start = self._last_speech_end, self._last_speech_start
        if end is None or (start is not None and start > end):
            return None  # still open: the VAD will tell when it ended
        return end

    # --- turns ----------------------------------------------------------------------

    def _user_said(self, text: str, t: float) -> None:
        turn = self._turn
        if turn is not None and not turn.finished:
            if self.fast:  # a file read ahead of real time: answer each utterance in turn
                self._pending_user.append(text)
                return
            if not turn.audio_started and not turn.cancelled:
                # the user went on before the bot said anything: answer everything together
                self._cancel_turn(turn, spoken=False)
                self._start_turn(f"{turn.user_text} {text}", t)
                return
            if self.mode == "half_duplex":
                self._pending_user.append(text)
                return
            self._barge_in(turn, t)
        self._start_turn(text, t)

    def _start_turn(self, text: str, t: float) -> None:
        self._turn_count += 1
        clock = TurnClock(self._turn_count, speech_end=self._speech_end_of_this_utterance(), final=t)
        turn = BotTurn(self._turn_count, text, clock)
        self._turn = turn
        self._idle.clear()
        self._emit(UserTurn(text, turn.index, t=t))
        self.history.append(Message("user", text))
        if self._session is not None:
            return  # a realtime model answers on its own
        assert self._tg is not None
        turn.task = self._tg.create_task(self._respond(turn), name=f"turn-{turn.index}")

    async def _respond(self, turn: BotTurn) -> None:
        assert self.output is not None
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        llm_task = asyncio.ensure_future(self._write_reply(turn, sentences))
        try:
            async with contextlib.aclosing(self.output.speak(_drain(sentences))) as events:  # type: ignore[type-var]
                async for event in events:
                    if turn.cancelled:
                        break
                    if isinstance(event, AudioOut):
                        turn.clock.mark("first_output", event.t)
                        self._playback.put_nowait((AUDIO, turn, event))
                    elif isinstance(event, SpeakingStarted):
                        if self._remote_output:
                            turn.clock.mark("first_output", event.t)
                        self._playback.put_nowait((SENTENCE, turn, event.text))
                    elif isinstance(event, SpeakingEnded):
                        self._playback.put_nowait((SENTENCE_END, turn, event.text))
            await llm_task
        finally:
            if not llm_task.done():
                llm_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await llm_task
        if not turn.cancelled:
            self._playback.put_nowait((TURN_END, turn, None))

    async def _write_reply(self, turn: BotTurn, sentences: asyncio.Queue[str | None]) -> None:
        splitter = SentenceSplitter()
        history = self.history[:-1]
        try:
            async with contextlib.aclosing(self.llm.respond(history, turn.user_text)) as reply:  # type: ignore[type-var]
                async for event in reply:
                    if isinstance(event, TextDelta):
                        turn.clock.mark("first_token", event.t)
                        turn.text += event.text
                        self._emit(event)
                        for sentence in splitter.push(event.text):
                            self._queue_sentence(turn, sentence, sentences)
                    elif isinstance(event, LLMDone):
                        self._emit(event)
            for sentence in splitter.flush():
                self._queue_sentence(turn, sentence, sentences)
        finally:
            sentences.put_nowait(None)

    def _queue_sentence(self, turn: BotTurn, sentence: str, sentences: asyncio.Queue[str | None]) -> None:
        event = BotSentence(sentence, turn.index)
        turn.clock.mark("first_sentence", event.t)
        self._emit(event)
        sentences.put_nowait(sentence)

    def _maybe_barge_in(self, t: float) -> None:
        turn = self._turn
        if self.mode != "full_duplex" or self.fast or turn is None or turn.finished or turn.cancelled:
            return  # a file read ahead of real time cannot talk over the bot
        if turn.audio_started or (self._session is not None and turn.text):
            self._barge_in(turn, t)

    def _barge_in(self, turn: BotTurn, t: float) -> None:
        """The user spoke over the bot: stop it now and keep only what was heard."""
        self._emit(BargeIn(turn.index, t=t))
        self._cancel_turn(turn, spoken=True)
        assert self._tg is not None
        if self.output is not None:
            self._tg.create_task(_quietly(self.output.interrupt()), name="output-interrupt")
        if self._session is not None:
            self._tg.create_task(_quietly(self._session.interrupt()), name="realtime-interrupt")

    def _cancel_turn(self, turn: BotTurn, *, spoken: bool) -> None:
        turn.cancelled = True
        if turn.task is not None:
            turn.task.cancel()
        self.sink.clear()
        self._resamplers.pop(turn.index, None)
        if spoken:
            self._finish_turn(turn, interrupted=True)
        else:
            turn.finished = True
            if self.history and self.history[-1].role == "user":
                self.history.pop()

    def _finish_turn(self, turn: BotTurn, *, interrupted: bool) -> None:
        if turn.finished:
            return
        turn.finished = True
        turn.clock.mark("end", now())
        self._last_turn_end = turn.clock.end
        text = turn.spoken_text() if interrupted else (" ".join(s.text for s in turn.sentences) or turn.text.strip())
        self.history.append(Message("assistant", text, interrupted=interrupted))
        self._emit(BotTurnEvent(text, turn.index, interrupted=interrupted))
        metrics = turn.clock.metrics(self._backend_names())
        self.metrics.append(metrics)
        self._emit(metrics)
        if self._turn is turn:
            self._turn = None
        self._mic_open.set()
        if self._pending_user:
            if self.fast:
                text = self._pending_user.pop(0)
            else:
                text, self._pending_user = " ".join(self._pending_user), []
            self._start_turn(text, now())
        else:
            self._idle.set()

    async def _wait_idle(self) -> None:
        while not self._idle.is_set():
            await self._idle.wait()

    def _backend_names(self) -> list[tuple[str, str]]:
        return [(b.role, b.name or type(b).__name__) for b in (self.stt, self.llm, self.output) if b is not None]

    # --- playback -------------------------------------------------------------------

    async def _play(self) -> None:
        queue, sink = self._playback, self.sink
        while True:
            kind, turn, payload = await queue.get()
            if kind == STOP:
                return
            assert turn is not None
            if turn.cancelled or turn.finished:
                continue
            if kind == AUDIO:
                await self._play_audio(turn, payload)
            elif kind == SENTENCE:
                turn.sentences.append(SentenceProgress(payload))
                if self._remote_output:
                    self._started_speaking(turn, now())
            elif kind == SENTENCE_END:
                if turn.sentences:
                    turn.sentences[-1].synthesized = turn.sentences[-1].played = True
            elif kind == TURN_END:
                resampler = self._resamplers.pop(turn.index, None)
                if resampler is not None and (tail := resampler.flush()):
                    await sink.play(tail)
                if sink.realtime:  # let the last chunk finish before the mic opens again
                    await asyncio.sleep(max(0.0, sink.busy_until - now()))
                if not turn.cancelled:
                    self._finish_turn(turn, interrupted=False)

    async def _play_audio(self, turn: BotTurn, event: AudioOut) -> None:
        if not turn.sentences:
            turn.sentences.append(SentenceProgress(turn.text))
        sentence = turn.sentences[-1]
        sentence.bytes_queued += len(event.pcm)
        pcm = event.pcm
        if event.sample_rate != self.sink.sample_rate:
            resampler = self._resamplers.get(turn.index)
            if resampler is None or resampler.from_rate != event.sample_rate:
                resampler = self._resamplers[turn.index] = StreamResampler(event.sample_rate, self.sink.sample_rate)
            pcm = resampler.push(pcm)
        if not pcm:
            return
        started = await self.sink.play(pcm)
        if turn.cancelled:
            return
        sentence.bytes_played += len(event.pcm)
        self._started_speaking(turn, started)
        if self.recorder is not None:
            self.recorder.bot_audio(pcm, self.sink.sample_rate, None if self.fast else started)

    def _started_speaking(self, turn: BotTurn, t: float) -> None:
        if not turn.audio_started:
            turn.audio_started = True
            turn.clock.mark("first_played", t)
            if self.mode == "half_duplex":
                self._mic_open.clear()


async def _drain(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
    while (item := await queue.get()) is not None:
        yield item


async def _quietly(coro: Any) -> None:
    try:
        await asyncio.wait_for(coro, 5)
    except Exception as exc:  # noqa: BLE001 - an interrupt that fails must not end the conversation
        log.warning("interrupt failed: %s", exc)


def _primary(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _primary(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
