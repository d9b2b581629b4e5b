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
import dataclasses
import logging
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine.bot_turn import Timer
from voicekit.engine.end_of_turn import TurnAudio, TurnDetector, TurnPolicy, TurnVerdict
from voicekit.engine.fallback import BackendChain
from voicekit.engine.listening import VAD, AudioFilter, Listener
from voicekit.engine.playback import Playback, Recorder
from voicekit.engine.realtime import RealtimeBridge
from voicekit.engine.reply import Replier, quietly
from voicekit.engine.tools import ToolLoop
from voicekit.engine.turns import BotTurn, DuplexMode, TurnTaking
from voicekit.errors import ProfileError
from voicekit.events import Event, Final, TurnMetrics
from voicekit.options import RetryPolicy
from voicekit.roles import LLM, STT, Backend, Message, Output, missing_roles

log = logging.getLogger(__name__)

Observer = Callable[[Event], None]
B = TypeVar("B", bound=Backend)


__all__ = ["Conversation", "ConversationResult", "Recorder"]


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
    (``history``) and handed to the LLM on every turn. ``policy`` holds the ``turns:``
    settings (preemptive replies, waits, backchannels, false interruptions) and ``detector``
    the end-of-turn detector, loaded at the start and run off the loop when turn-taking asks.
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
        tools: ToolLoop | None = None,
        policy: TurnPolicy | None = None,
        detector: TurnDetector | None = None,
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
            raise ProfileError(str(missing[0]))
        self.is_realtime = llm_caps.accepts_audio
        remote_output = self.outputs is not None and self.outputs.active.capabilities.remote_session
        self.detector = detector
        policy = policy or TurnPolicy()
        if detector is not None:
            policy = dataclasses.replace(policy, detector=detector.name, judges_pauses=detector.judges_pauses)
        if self.stts is not None:
            policy = dataclasses.replace(policy, words_needed=self.stts.active.capabilities.interim_results)
        if policy.judges_pauses and (vad is None or source is None):
            if source is not None:
                warn(f"turns.detector {policy.detector} judges the pauses the VAD hears, and audio.vad is none: "
                     "the STT's final transcript ends each turn")  # fmt: skip
            policy = dataclasses.replace(policy, judges_pauses=False)  # nothing to judge: the final ends the turn
        self.turns = TurnTaking(
            self,
            mode=mode,
            fast=fast,
            realtime=self.is_realtime,
            has_vad=vad is not None,
            history=history,
            backends=self._serving,
            policy=policy,
            remote_output=remote_output,
        )
        self._detector_thread: ThreadPoolExecutor | None = None
        self.playback = Playback(sink, self.turns, recorder=recorder, fast=fast, remote_output=remote_output)
        self.tools = tools
        if tools is not None:
            tools.emit, tools.history = self._emit, self.turns.history
            self.observers.append(tools.on_event)  # files each turn's tool rounds into the history
        self.replier = (
            Replier(self.llms, self.outputs, self.playback, self._emit, remote_output=remote_output, tools=tools)
            if self.outputs is not None and not self.is_realtime
            else None
        )
        self.realtime = (
            RealtimeBridge(
                self.llms,
                self.turns,
                self.playback,
                self._emit,
                lambda edge: self.listener.on_speech_edge(edge),
                drain_timeout_s=drain_timeout_s,
            )
            if self.is_realtime
            else None
        )
        if self.realtime is not None:
            self.realtime.tools = tools
        self.listener = Listener(
            self.turns, self._emit, self._spawn, source=source, stts=self.stts, realtime=self.realtime,
            vad=vad, filters=filters, recorder=recorder, fast=fast, language=language,
            keep_audio=self.turns.judging,
        )  # fmt: skip
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
                    tg.create_task(self.listener.pump(), name="audio-pump")
                if self.realtime is not None:
                    tg.create_task(self.realtime.read(), name="realtime-reader")
                elif self.listener.stream is not None:
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
            turn.task = self._spawn(self.replier.answer(turn, turn.history), f"turn-{turn.index}")

    def discard(self, turn: BotTurn) -> None:
        if turn.task is not None:
            turn.task.cancel()

    def resume(self, turn: BotTurn, text: str) -> None:
        if self.replier is not None:
            turn.task = self._spawn(self.replier.resume(turn, text), f"turn-{turn.index}-resumed")

    def judge(self, pause: int, since: float | None, transcript: str) -> None:
        if self.detector is None:
            self.turns.judged(pause, TurnVerdict(True), now())
            return
        audio = TurnAudio(self.listener.recent_audio(since), transcript, self.language)
        self._spawn(self._judge(self.detector, pause, audio), "turn-detector")

    async def _judge(self, detector: TurnDetector, pause: int, audio: TurnAudio) -> None:
        if self._detector_thread is None:
            self._detector_thread = ThreadPoolExecutor(1, thread_name_prefix="turn-detector")
        try:
            verdict = await asyncio.get_running_loop().run_in_executor(self._detector_thread, detector.judge, audio)
        except Exception as exc:  # noqa: BLE001 - a failed judgement must not end the conversation
            log.warning("the %s turn detector failed (%s); ending the turn on silence", detector.name, exc)
            verdict = TurnVerdict(True)
        self.turns.judged(pause, verdict, now())

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, t - now()), callback)

    def stop_bot(self, turn: BotTurn, *, tell_backend: bool) -> None:
        if turn.task is not None:
            turn.task.cancel()
        self.playback.silence(turn)
        if not tell_backend:
            return
        if self.outputs is not None and self.replier is not None:
            output = self.outputs.active
            self.replier.interrupting = self._spawn(
                quietly(output.interrupt(), f"interrupting {output.label}"), "output-interrupt"
            )
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
        if self.detector is not None and self.turns.judging:
            await asyncio.to_thread(self.detector.load)
        chains = [c for c in (self.stts, self.llms, self.outputs) if c is not None]
        starting: list[Any] = [c.start() for c in chains]
        if self.tools is not None:
            starting.append(self.tools.start())  # MCP servers start with the conversation, and stop with it
        results = await asyncio.gather(*starting, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise next((e for e in errors if not isinstance(e, asyncio.CancelledError)), errors[0])
        if self.realtime is not None:
            await self.realtime.open()
        else:
            await self.listener.open()

    async def _shutdown(self) -> None:
        """Close everything, even when cancelled again meanwhile; never hide the real error."""

        self.turns.cancel_timers()

        async def close_all() -> None:
            if self._detector_thread is not None:
                self._detector_thread.shutdown(wait=False, cancel_futures=True)
            if self.detector is not None:
                self.detector.close()
            turn = self.turns.current
            if turn is not None and not turn.finished and turn.task is not None:
                turn.task.cancel()
            await _close_quietly(self.listener.aclose(), "the stt stream")
            if self.realtime is not None:
                await _close_quietly(self.realtime.aclose(), "the realtime stream")
            if self.tools is not None:
                await _close_quietly(self.tools.aclose(), "stopping the tools")
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

    async def _read_text(self) -> None:
        assert self.text_input is not None
        async for line in self.text_input:
            if line.strip():
                self.submit_text(line)
                await self.turns.wait_idle()
        await self.turns.wait_idle()
        if self.source is None:  # typing was the only input: the conversation ends with it
            if self.realtime is not None:
                await self.realtime.end_input()  # lets the model finish, stops playback, closes the stream
            else:
                self.playback.stop()

    async def _read_stt(self) -> None:
        await self.listener.read_stt()
        self.turns.input_ended(now())
        await self.turns.wait_idle()
        self.playback.stop()


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
