"""The conversation engine: the one place where the stages are wired together.

::

    source ─► filters ─► VAD ─► STT ─► turns ─► LLM ─► sentences ─► output ─► playback ─► sink
                           └──────────────► realtime LLM (audio in, audio out) ──────────┘

One task per edge (audio pump, STT reader or realtime reader, text reader, playback) plus
one task per bot reply, all in one TaskGroup. Audio frames cross no queue between the
source and the STT: filters and the VAD are plain calls, so a frame costs microseconds.

Who decides what: :class:`~voicekit.engine.turns.TurnTaking` decides the turns,
:class:`~voicekit.engine.reply.Replier` runs a cascade's reply,
:class:`~voicekit.engine.realtime.RealtimeBridge` reads a realtime model,
:class:`~voicekit.engine.playback.Playback` plays, and each role's
:class:`~voicekit.engine.fallback.BackendChain` retries and falls back. This class starts
them, feeds them and ends them: every failure leaves :meth:`Conversation.run` as one
:class:`~voicekit.errors.VoicekitError` that names the backend, after everything was closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine.fallback import BackendChain
from voicekit.engine.playback import Playback, Recorder
from voicekit.engine.realtime import RealtimeBridge
from voicekit.engine.reply import Replier, quietly
from voicekit.engine.turns import BotTurn, DuplexMode, TurnTaking
from voicekit.errors import VoicekitError
from voicekit.events import Event, Final, Interim, SpeechEnded, SpeechStarted, TurnMetrics
from voicekit.options import RetryPolicy
from voicekit.roles import LLM, STT, Backend, Message, Output, STTStream, missing_roles

log = logging.getLogger(__name__)

Observer = Callable[[Event], None]
AudioFilter = Callable[[bytes], "bytes | None"]
B = TypeVar("B", bound=Backend)

_REPLAY_LIMIT_BYTES = 60 * 32000  # at most a minute of 16 kHz audio is replayed to a replacement STT

__all__ = ["Conversation", "ConversationResult", "Recorder"]


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

    Each of ``stt``, ``llm`` and ``output`` is a backend, a list of backends (the first
    serves; the others are its fallbacks, in order) or a ready :class:`BackendChain`;
    ``retry`` gives a role's :class:`~voicekit.options.RetryPolicy` for lists. Backends are
    started by :meth:`run` and always closed by it, whatever happens; remote billable
    sessions opened through ``remote_sessions`` are closed too. The history is kept here
    (``history``) and handed to the LLM on every turn.
    """

    def __init__(
        self,
        *,
        llm: LLM | Sequence[LLM] | BackendChain[LLM],
        stt: STT | Sequence[STT] | BackendChain[STT] | None = None,
        output: Output | Sequence[Output] | BackendChain[Output] | None = None,
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
        retry: Mapping[str, RetryPolicy] | None = None,
        warn: Callable[[str], None] = log.warning,
    ) -> None:
        self.observers = list(observers)
        policies = dict(retry or {})
        self.llms: BackendChain[LLM] = self._chain("llm", llm, policies, warn)
        self.stts: BackendChain[STT] | None = self._chain("stt", stt, policies, warn) if stt is not None else None
        self.outputs: BackendChain[Output] | None = (
            self._chain("output", output, policies, warn) if output is not None else None
        )
        self.sink, self.source, self.text_input = sink, source, text_input
        self.vad, self.filters, self.recorder = vad, tuple(filters), recorder
        self.fast, self.language = fast, language
        self.remote_sessions = remote_sessions
        llm_caps = self.llms.active.capabilities
        missing = missing_roles(
            self.llms.name,
            llm_caps,
            has_stt=self.stts is not None,
            has_output=self.outputs is not None,
            audio_input=source is not None,
        )
        if missing:
            raise VoicekitError(str(missing[0]))
        self.is_realtime = llm_caps.accepts_audio
        remote_output = self.outputs is not None and self.outputs.active.capabilities.remote_session
        self.turns = TurnTaking(
            self,
            mode=mode,
            fast=fast,
            realtime=self.is_realtime,
            has_vad=vad is not None,
            history=history,
            backends=self._serving,
        )
        self.playback = Playback(sink, self.turns, recorder=recorder, fast=fast, remote_output=remote_output)
        self.replier = (
            Replier(self.llms, self.outputs, self.playback, self._emit, remote_output=remote_output)
            if self.outputs is not None and not self.is_realtime
            else None
        )
        self.realtime = (
            RealtimeBridge(
                self.llms, self.turns, self.playback, self._emit, self._on_speech_edge, drain_timeout_s=drain_timeout_s
            )
            if self.is_realtime
            else None
        )
        self._stt_stream: STTStream | None = None
        self._utterance = bytearray()  # audio since the last final transcript, for a replacement STT
        self._input_ended = False
        self._input_s = 0.0  # seconds of audio taken from the source so far
        self._tg: asyncio.TaskGroup | None = None

    def _chain(self, role: str, given: Any, policies: dict[str, RetryPolicy], warn: Callable[[str], None]) -> Any:
        if isinstance(given, BackendChain):
            given.emit = self._emit
            return given
        backends = list(given) if isinstance(given, Sequence) else [given]
        return BackendChain(role, backends, policies.get(role), emit=self._emit, warn=warn)

    # --- public -----------------------------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        return self.turns.history

    @property
    def metrics(self) -> list[TurnMetrics]:
        return self.turns.metrics

    @property
    def mode(self) -> DuplexMode:
        return self.turns.mode

    @property
    def llm(self) -> LLM:
        """The LLM serving now."""
        return self.llms.active

    async def run(self) -> ConversationResult:
        """Run until the input ends (and the last reply is spoken), an error, or cancellation.

        Raises one :class:`~voicekit.errors.VoicekitError` naming the failed backend when no
        fallback is left; everything is closed before it leaves.
        """
        try:
            await self._start()
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.playback.run(), name="playback")
                if self.text_input is not None:
                    tg.create_task(self._read_text(), name="text-input")
                if self.source is not None:
                    tg.create_task(self._pump_audio(), name="audio-pump")
                if self.realtime is not None:
                    tg.create_task(self.realtime.read(), name="realtime-reader")
                elif self._stt_stream is not None:
                    tg.create_task(self._read_stt(), name="stt-reader")
        except BaseExceptionGroup as group:
            error = _primary(group)
            raise error from error.__cause__  # the backend's own traceback stays behind it, for -v
        finally:
            await self._shutdown()
        return ConversationResult(self.history, self.metrics, self.turns.count)

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def submit_text(self, text: str) -> None:
        """A typed user message, answered like a spoken one (call from the running loop)."""
        text = text.strip()
        if not text:
            return
        t = now()
        self.turns.typed(t)
        self._emit(Final(text, t=t))
        if self.realtime is not None:
            self._spawn(self.realtime.send_text(text), "realtime-text")
            self.turns.realtime_user_said(text, t)
        else:
            self.turns.user_said(text, t)

    # --- what turn-taking asks (TurnActions) --------------------------------------------------

    def respond(self, turn: BotTurn) -> None:
        if self.replier is not None:
            history = self.history[:-1]  # the conversation before this turn's user message
            turn.task = self._spawn(self.replier.answer(turn, history), f"turn-{turn.index}")

    def stop_bot(self, turn: BotTurn, *, tell_backend: bool) -> None:
        if turn.task is not None:
            turn.task.cancel()
        self.playback.silence(turn)
        if not tell_backend:
            return
        if self.outputs is not None and self.replier is not None:
            output = self.outputs.active
            self._spawn(quietly(output.interrupt(), f"interrupting {output.label}"), "output-interrupt")
        if self.realtime is not None:
            self._spawn(quietly(self.realtime.interrupt(), "interrupting the realtime model"), "realtime-interrupt")

    def emit(self, event: Event) -> None:
        self._emit(event)

    def _emit(self, event: Event) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer failed on %s", type(event).__name__)

    def _serving(self) -> list[tuple[str, str]]:
        chains = (self.stts, self.llms, self.outputs)
        return [(chain.role, chain.name) for chain in chains if chain is not None]

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        assert self._tg is not None, "the conversation is not running"
        return self._tg.create_task(coro, name=name)

    # --- lifecycle ------------------------------------------------------------------------------

    async def _start(self) -> None:
        chains = [c for c in (self.stts, self.llms, self.outputs) if c is not None]
        results = await asyncio.gather(*(c.start() for c in chains), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise next((e for e in errors if not isinstance(e, asyncio.CancelledError)), errors[0])
        if self.realtime is not None:
            await self.realtime.open()
        elif self.stts is not None and self.source is not None:
            self._stt_stream = await self._open_stt()

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

    async def _shutdown(self) -> None:
        """Close everything, even when cancelled again meanwhile; never hide the real error."""

        async def close_all() -> None:
            turn = self.turns.current
            if turn is not None and not turn.finished and turn.task is not None:
                turn.task.cancel()
            if self._stt_stream is not None:
                await _close_quietly(self._stt_stream.aclose(), "the stt stream")
            if self.realtime is not None:
                await _close_quietly(self.realtime.aclose(), "the realtime stream")
            for chain in (self.outputs, self.llms, self.stts):
                if chain is not None:
                    await chain.aclose()
            if self.remote_sessions is not None:
                await _close_quietly(self.remote_sessions.close_all(), "closing remote sessions")
            await _close_quietly(self.sink.aclose(), "closing the audio sink")

        task = asyncio.ensure_future(close_all())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await asyncio.wait([task])
            raise

    # --- input ------------------------------------------------------------------------------------

    async def _pump_audio(self) -> None:
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
                    self._input_s += len(frame) / 32000
                    if vad is not None:
                        for event in vad.process(frame):
                            self._on_speech_edge(self._when_it_happened(event))
                    self._push(frame)
        finally:
            self._input_ended = True
            if self._stt_stream is not None:
                self._stt_stream.end_input()
        if self.realtime is not None:
            await self.realtime.end_input()

    def _push(self, frame: bytes) -> None:
        if self.realtime is not None:
            self.realtime.push_audio(frame)
            return
        if self.stts is None:
            return
        self._utterance += frame  # kept until a final transcript: a replacement STT hears it again
        if len(self._utterance) > _REPLAY_LIMIT_BYTES:
            del self._utterance[: len(self._utterance) - _REPLAY_LIMIT_BYTES]
        if self._stt_stream is not None:  # None only while a failed STT is being replaced
            self._stt_stream.push_audio(frame)

    async def _read_text(self) -> None:
        assert self.text_input is not None
        async for line in self.text_input:
            if line.strip():
                self.submit_text(line)
                await self.turns.wait_idle()
        await self.turns.wait_idle()
        if self.source is None:
            self.playback.stop()

    async def _read_stt(self) -> None:
        while self._stt_stream is not None:
            try:
                async for event in self._stt_stream:
                    self._on_stt_event(event)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - goes to the chain
                await self._replace_stt(exc)
        await self.turns.wait_idle()
        self.playback.stop()

    def _on_stt_event(self, event: Event) -> None:
        if isinstance(event, (SpeechStarted, SpeechEnded)):
            self._on_speech_edge(event)
        elif isinstance(event, Interim):
            self._emit(event)
            self.turns.interim(event.text, event.t)
        elif isinstance(event, Final):
            self._emit(event)
            if event.text.strip():
                self._utterance.clear()
                self.turns.user_said(event.text.strip(), event.t)
        else:
            self._emit(event)

    async def _replace_stt(self, error: BaseException) -> None:
        """The STT failed beyond its own reconnects: the next one hears the utterance again."""
        assert self.stts is not None
        old, self._stt_stream = self._stt_stream, None
        if old is not None:
            await _close_quietly(old.aclose(), "the failed stt stream")
        await self.stts.recover(error, retry=False)  # a streaming STT has retried its connection itself
        stream = await self._open_stt()
        if self._utterance:
            stream.push_audio(bytes(self._utterance))
        if self._input_ended:
            stream.end_input()
        self._stt_stream = stream

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
        if self.realtime is not None and self.realtime.client_activity and event.source == "vad":
            self._spawn(self.realtime.speech_edge(event), "realtime-activity")
        self.turns.speech_edge(event)


async def _close_quietly(coro: Any, what: str) -> None:
    try:
        await asyncio.wait_for(coro, 10)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - keep closing the rest
        log.warning("%s failed: %s", what, exc)


def _primary(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _primary(exc)
            if not isinstance(inner, asyncio.CancelledError):
                return inner
        elif not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
