"""A speech-to-speech model (Gemini Live and the like) in the engine.

A realtime model hears the microphone itself and answers with its own audio, so there is
no STT or voice stage: :class:`RealtimeBridge` turns its stream's transcripts of both
sides and its audio into the same turns, history and metrics as any other profile's,
through :class:`~voicekit.engine.turns.TurnTaking` and
:class:`~voicekit.engine.playback.Playback`. When the stream fails beyond its own
reconnects, the next realtime model of the ``fallback:`` list takes over with the history
so far and the user's audio since their last transcribed words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import cast

from voicekit.clock import now
from voicekit.engine.fallback import BackendChain
from voicekit.engine.playback import Playback
from voicekit.engine.tools import ToolLoop
from voicekit.engine.turns import TurnTaking
from voicekit.events import (
    AudioOut,
    Event,
    Final,
    Interim,
    Interrupted,
    LLMDone,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    ToolCall,
    ToolCallsCancelled,
)
from voicekit.roles import LLM, RealtimeStream, ToolCallingLLM

log = logging.getLogger(__name__)

_REPLAY_LIMIT_BYTES = 60 * 32000  # a minute of 16 kHz audio at most is kept for a replacement


class RealtimeBridge:
    """Reads a realtime model's stream into the conversation; see the module docstring.

    ``on_speech_edge`` gets the model's own speech edges (the conversation forwards them to
    turn-taking, like the VAD's). With ``tools``, a model that declares tool support is
    opened with the tools; each ``ToolCall`` it yields runs in a task of its own (the model
    goes on talking meanwhile) and its result goes back through
    :meth:`~voicekit.roles.RealtimeStream.send_tool_results`; ``ToolCallsCancelled`` cancels
    the calls it names.
    """

    def __init__(
        self,
        llms: BackendChain[LLM],
        turns: TurnTaking,
        playback: Playback,
        emit: Callable[[Event], None],
        on_speech_edge: Callable[[SpeechStarted | SpeechEnded], None],
        *,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.llms = llms
        self.turns = turns
        self.playback = playback
        self.emit = emit
        self.on_speech_edge = on_speech_edge
        self.drain_timeout_s = drain_timeout_s
        self.stream: RealtimeStream | None = None
        self._unheard = bytearray()  # user audio since the model's last transcript of the user
        self._input_ended = False
        self.tools: ToolLoop | None = None
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def client_activity(self) -> bool:
        """The model wants the local VAD's edges instead of detecting speech itself."""
        return self.stream is not None and self.stream.client_activity

    async def open(self) -> None:
        if self.tools is not None:
            await self.tools.start()
        self.stream = await self._enter(self.llms.active)

    async def _enter(self, llm: LLM) -> RealtimeStream:
        if self.tools is not None and self.tools.offered_to(llm):
            stream = cast(ToolCallingLLM, llm).realtime(list(self.turns.history), tools=self.tools.specs_for_round(0))
        else:
            stream = llm.realtime(list(self.turns.history))
        return await stream.__aenter__()

    async def aclose(self) -> None:
        self._cancel_tools(list(self._tool_tasks))
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.aclose()

    # --- to the model -------------------------------------------------------------------------

    def push_audio(self, pcm: bytes) -> None:
        assert self.stream is not None
        self._unheard += pcm
        if len(self._unheard) > _REPLAY_LIMIT_BYTES:
            del self._unheard[: len(self._unheard) - _REPLAY_LIMIT_BYTES]
        self.stream.push_audio(pcm)

    async def send_text(self, text: str) -> None:
        if self.stream is not None:
            await self.stream.send_text(text)

    async def speech_edge(self, event: SpeechStarted | SpeechEnded) -> None:
        """Tell a model with client-side activity detection what the local VAD heard."""
        if self.stream is not None and self.stream.client_activity and event.source == "vad":
            await (self.stream.activity_start() if isinstance(event, SpeechStarted) else self.stream.activity_end())

    async def interrupt(self) -> None:
        """The user barged in: stop the model's reply and the tools it is waiting on (a model
        that cancels them itself is told nothing twice: a cancelled call sends no result)."""
        self._cancel_tools(list(self._tool_tasks))
        if self.stream is not None:
            await self.stream.interrupt()

    async def end_input(self) -> None:
        """No more audio: let the model answer what it heard, then end the stream."""
        self._input_ended = True
        if self.stream is not None:
            await self.stream.end_input()
        await self._drain()

    # --- from the model -----------------------------------------------------------------------

    async def read(self) -> None:
        """Turn the stream's events into turns and audio until it ends; switch models on failure."""
        while self.stream is not None:
            try:
                async for event in self.stream:
                    self._on_event(event)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the model's failure goes to its chain
                await self._replace(exc)

    def _on_event(self, event: Event) -> None:
        turns = self.turns
        if isinstance(event, (SpeechStarted, SpeechEnded)):
            self.on_speech_edge(event)
        elif isinstance(event, Interim):
            self.emit(event)
        elif isinstance(event, Final):
            self.emit(event)
            if event.text.strip():
                self._unheard.clear()
                turns.realtime_user_said(event.text.strip(), event.t)
        elif isinstance(event, TextDelta):
            turn = turns.realtime_reply(event.t)
            turn.clock.mark("first_token", event.t)
            turn.text += event.text
            self.emit(event)
        elif isinstance(event, AudioOut):
            turn = turns.realtime_reply(event.t)
            turn.clock.mark("first_token", event.t)
            turn.clock.mark("first_output", event.t)
            self.playback.audio(turn, event)
        elif isinstance(event, ToolCall):
            self.emit(event)
            self._start_tool(event)
        elif isinstance(event, ToolCallsCancelled):
            self.emit(event)
            self._cancel_tools(event.ids)
        elif isinstance(event, Interrupted):
            turns.realtime_interrupted(event.t)
        elif isinstance(event, LLMDone):
            self.emit(event)
            current = turns.current
            if current is not None and not current.finished:
                if event.text and not current.text:
                    current.text = event.text
                self.playback.turn_ended(current)

    # --- tools ---------------------------------------------------------------------------

    def _start_tool(self, call: ToolCall) -> None:
        if self.tools is None or self.stream is None:
            return
        stream, tools = self.stream, self.tools
        turn = self.turns.current

        async def run() -> None:
            started = now()
            try:
                results = await tools.run([call])
            finally:
                self._tool_tasks.pop(call.id, None)
                if turn is not None:
                    turn.clock.add_tool_time(now() - started)
            if self.stream is not stream:
                return  # a replaced stream's model never hears of the call again
            try:
                await stream.send_tool_results(results)
            except Exception as exc:  # noqa: BLE001 - a dead stream fails its reader, which replaces it
                log.warning("could not hand %s's result to the model: %s", call.name, exc)

        self._tool_tasks[call.id] = asyncio.create_task(run(), name=f"tool-{call.name}")

    def _cancel_tools(self, ids: list[str] | tuple[str, ...]) -> None:
        for call_id in ids:
            task = self._tool_tasks.pop(call_id, None)
            if task is not None:
                task.cancel()

    async def _replace(self, error: BaseException) -> None:
        """The model failed beyond its own reconnects: the next one takes over the conversation."""
        self._cancel_tools(list(self._tool_tasks))
        old, self.stream = self.stream, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        turn = self.turns.current
        if turn is not None and not turn.finished:
            self.turns.cut(turn)
        llm = await self.llms.recover(error, retry=False)  # the stream already retried its connection
        self.stream = await self._enter(llm)
        if self._unheard:
            self.stream.push_audio(bytes(self._unheard))
        if self._input_ended:
            await self.stream.end_input()

    async def _drain(self) -> None:
        """After the input ends, give the model time to answer what it last heard: until it
        has been quiet for a second after answering (five while the user's last words are
        unanswered), at most ``drain_timeout_s``."""
        turns = self.turns
        deadline = now() + self.drain_timeout_s
        quiet_since, seen = now(), turns.count
        while now() < deadline:
            if turns.count != seen or not turns.idle:
                quiet_since, seen = now(), turns.count
            spoke, answered = turns.last_speech_end, turns.last_turn_end
            unanswered = spoke is not None and (answered is None or answered < spoke)
            if now() - quiet_since > (5.0 if unanswered else 1.0):
                break
            await asyncio.sleep(0.05)
        self.playback.stop()
        await self.aclose()
