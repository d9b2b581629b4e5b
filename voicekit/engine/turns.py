"""Turn-taking: the one owner of when the user's turn ends, when the bot may speak, and
what interrupts it.

:class:`TurnTaking` is told what happens — speech edges, transcripts, the bot's first
audio, the end of a reply — and decides: start a reply, merge what the user added to a
reply not yet heard, queue the user's words while the bot talks (half duplex, or a file
read faster than real time), or stop the bot (barge-in). It keeps the history, times
every turn and emits the conversation's turn events. It never touches a backend: what it
decides goes through :class:`TurnActions`, which the conversation implements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from voicekit.clock import now
from voicekit.engine.metrics import TurnClock
from voicekit.events import BargeIn, Event, SpeechEnded, SpeechStarted, TurnMetrics, UserTurn
from voicekit.events import BotTurn as BotTurnEvent
from voicekit.roles import Message

DuplexMode = Literal["half_duplex", "full_duplex"]


@dataclass
class SentenceProgress:
    """One sentence of the reply and how much of its audio has been played."""

    text: str
    bytes_queued: int = 0
    bytes_played: int = 0
    synthesized: bool = False  # the output finished producing it
    played: bool = False  # all of it reached the listener


@dataclass
class BotTurn:
    """One reply in progress: its task, its sentences and its clock.

    ``generation`` counts fresh starts of the reply (a failed LLM replaced by its
    fallback): audio of an older generation is never played.
    """

    index: int
    user_text: str
    clock: TurnClock
    task: asyncio.Task[None] | None = None
    text: str = ""  # everything the LLM wrote so far
    sentences: list[SentenceProgress] = field(default_factory=list)
    audio_started: bool = False
    cancelled: bool = False
    finished: bool = False
    generation: int = 0

    @property
    def active(self) -> bool:
        return not self.finished and not self.cancelled

    def restart(self) -> None:
        """Forget the reply so far: it is answered again from the start."""
        self.generation += 1
        self.text = ""
        self.sentences = []

    def spoken_text(self) -> str:
        """The part of the reply the user heard: whole played sentences plus the played
        share of the words of a sentence cut mid-way."""
        parts: list[str] = []
        for sentence in self.sentences:
            if sentence.played:
                parts.append(sentence.text)
            elif sentence.bytes_played and sentence.bytes_queued:
                words = sentence.text.split()
                share = sentence.bytes_played / sentence.bytes_queued
                heard = words[: int(len(words) * share)]
                if heard:
                    parts.append(" ".join(heard) + "…")
                break
            else:
                break
        return " ".join(parts)


class TurnActions(Protocol):
    """What turn-taking asks of the conversation."""

    def respond(self, turn: BotTurn) -> None:
        """Start answering ``turn`` (a cascade runs LLM → output; a realtime model answers by itself)."""

    def stop_bot(self, turn: BotTurn, *, tell_backend: bool) -> None:
        """Stop the reply now: cancel its work and silence the sink; with ``tell_backend``
        also interrupt the voice or the realtime model (barge-in)."""

    def emit(self, event: Event) -> None:
        """Hand a conversation event to the observers."""


class TurnTaking:
    """Decides the turns of one conversation; see the module docstring.

    ``mode`` is half duplex (the microphone is closed while the bot speaks) or full duplex
    (the user may talk over the bot, which stops: barge-in). ``fast`` is a file read faster
    than real time: every utterance is answered in turn and nothing interrupts. ``realtime``
    is a speech-to-speech model that answers by itself. ``has_vad``
    says that the engine's VAD times speech (its edges, not a service's later endpoint,
    mark when the user stopped). ``backends`` names, when a turn ends, the backends that
    served it, for its metrics.
    """

    def __init__(
        self,
        actions: TurnActions,
        *,
        mode: DuplexMode = "half_duplex",
        fast: bool = False,
        realtime: bool = False,
        has_vad: bool = False,
        history: list[Message] | None = None,
        backends: Callable[[], Sequence[tuple[str, str]]] = tuple,
    ) -> None:
        self.actions = actions
        self.mode: DuplexMode = mode
        self.fast = fast
        self.realtime = realtime
        self.has_vad = has_vad
        self.history: list[Message] = history if history is not None else []
        self.metrics: list[TurnMetrics] = []
        self.current: BotTurn | None = None
        self.count = 0
        self._backends = backends
        self._pending: list[str] = []
        self._speech_start: float | None = None
        self._speech_end: float | None = None
        self.last_turn_end: float | None = None
        self._mic_open = asyncio.Event()
        self._mic_open.set()
        self._idle = asyncio.Event()
        self._idle.set()

    # --- what the user does ---------------------------------------------------------------

    def speech_edge(self, event: SpeechStarted | SpeechEnded) -> None:
        """The user started or stopped speaking (from the VAD, the STT or a realtime model)."""
        timing = not self.has_vad or event.source == "vad"  # a service's endpoint comes after the VAD's
        if isinstance(event, SpeechStarted):
            if timing:
                self._speech_start = event.t
            self.maybe_barge_in(event.t)
            return
        if not timing:
            return
        self._speech_end = event.t
        turn = self.current
        if turn is not None and turn.clock.speech_end is None and event.t <= (turn.clock.final or event.t):
            turn.clock.speech_end = event.t  # the final came before the VAD's hangover ran out

    def typed(self, t: float) -> None:
        """The user typed a message: it ends their turn as speech would."""
        self._speech_end = t

    def interim(self, text: str, t: float) -> None:
        """A partial transcript: words while the bot speaks are speech over it."""
        if text.strip():
            self.maybe_barge_in(t)

    def user_said(self, text: str, t: float) -> None:
        """A final transcript (or typed text) that a cascade answers."""
        turn = self.current
        if turn is not None and not turn.finished:
            if self.fast:  # a file read ahead of real time: answer each utterance in turn
                self._pending.append(text)
                return
            if not turn.audio_started and not turn.cancelled:
                # the user went on before the bot said anything: answer everything together
                self._drop_unheard(turn)
                self._start(f"{turn.user_text} {text}", t)
                return
            if self.mode == "half_duplex":
                self._pending.append(text)
                return
            self.barge_in(turn, t)
        self._start(text, t)

    def maybe_barge_in(self, t: float) -> None:
        """The user is speaking: in full duplex, stop a bot that has started to speak."""
        turn = self.current
        if self.mode != "full_duplex" or self.fast or turn is None or not turn.active:
            return  # a file read ahead of real time cannot talk over the bot
        if turn.audio_started or (self.realtime and turn.text):
            self.barge_in(turn, t)

    def barge_in(self, turn: BotTurn, t: float, *, tell_backend: bool = True) -> None:
        """The user spoke over the bot: stop it now and keep only what was heard."""
        self.actions.emit(BargeIn(turn.index, t=t))
        self.cut(turn, tell_backend=tell_backend)

    def cut(self, turn: BotTurn, *, tell_backend: bool = False) -> None:
        """End the reply where it is (barge-in, or its model failed): the history keeps what was heard."""
        turn.cancelled = True
        self.actions.stop_bot(turn, tell_backend=tell_backend)
        self.finish(turn, interrupted=True)

    # --- a realtime model, which answers by itself ----------------------------------------------

    def realtime_user_said(self, text: str, t: float) -> None:
        """The model's transcript of what the user said (or typed text): a turn of its own."""
        turn = self.current
        if turn is not None and not turn.finished and not turn.user_text:
            turn.user_text = text  # the model began its answer before this transcript arrived
            self.history.append(Message("user", text))
            self.actions.emit(UserTurn(text, turn.index, t=t))
            return
        if turn is not None and not turn.finished:
            self.finish(turn, interrupted=turn.cancelled or not turn.audio_started)
        self._start(text, t)

    def realtime_reply(self, t: float) -> BotTurn:
        """The turn the model is answering now (one without a transcript yet, if need be)."""
        if self.current is not None and not self.current.finished:
            return self.current
        self.count += 1
        turn = BotTurn(self.count, "", TurnClock(self.count, speech_end=self.speech_end_of_this_utterance(), final=t))
        self.current = turn
        self._idle.clear()
        return turn

    def realtime_interrupted(self, t: float) -> None:
        """The model stopped its own reply because it heard the user."""
        turn = self.current
        if turn is not None and not turn.finished:
            self.barge_in(turn, t, tell_backend=False)

    # --- what the bot does ------------------------------------------------------------------

    def bot_audio_started(self, turn: BotTurn, t: float) -> None:
        """The first audio of ``turn`` reached the listener."""
        if not turn.audio_started:
            turn.audio_started = True
            turn.clock.mark("first_played", t)
            if self.mode == "half_duplex":
                self._mic_open.clear()

    def bot_done(self, turn: BotTurn) -> None:
        """The reply was spoken to its end."""
        if not turn.cancelled:
            self.finish(turn, interrupted=False)

    def finish(self, turn: BotTurn, *, interrupted: bool) -> None:
        """Close the turn: history, events, metrics; then answer what the user said meanwhile."""
        if turn.finished:
            return
        turn.finished = True
        turn.clock.mark("end", now())
        self.last_turn_end = turn.clock.end
        text = turn.spoken_text() if interrupted else (" ".join(s.text for s in turn.sentences) or turn.text.strip())
        self.history.append(Message("assistant", text, interrupted=interrupted))
        self.actions.emit(BotTurnEvent(text, turn.index, interrupted=interrupted))
        metrics = turn.clock.metrics(self._backends())
        self.metrics.append(metrics)
        self.actions.emit(metrics)
        if self.current is turn:
            self.current = None
        self._mic_open.set()
        if self._pending:
            if self.fast:
                text = self._pending.pop(0)
            else:
                text, self._pending = " ".join(self._pending), []
            self._start(text, now())
        else:
            self._idle.set()

    # --- questions the engine asks -----------------------------------------------------------

    @property
    def mic_open(self) -> bool:
        """Whether the user's audio goes on to the STT (half duplex closes it while the bot speaks)."""
        return self.mode != "half_duplex" or self._mic_open.is_set()

    async def wait_mic_open(self) -> None:
        await self._mic_open.wait()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    async def wait_idle(self) -> None:
        """Until no reply is in progress and nothing the user said waits for one."""
        while not self._idle.is_set():
            await self._idle.wait()

    @property
    def last_speech_end(self) -> float | None:
        return self._speech_end

    def speech_end_of_this_utterance(self) -> float | None:
        """When the user stopped speaking, if the utterance being answered has ended."""
        end, start = self._speech_end, self._speech_start
        if end is None or (start is not None and start > end):
            return None  # still open: the VAD will tell when it ended
        return end

    # --- inside -------------------------------------------------------------------------

    def _start(self, text: str, t: float) -> None:
        self.count += 1
        turn = BotTurn(self.count, text, TurnClock(self.count, speech_end=self.speech_end_of_this_utterance(), final=t))
        self.current = turn
        self._idle.clear()
        self.actions.emit(UserTurn(text, turn.index, t=t))
        self.history.append(Message("user", text))
        self.actions.respond(turn)

    def _drop_unheard(self, turn: BotTurn) -> None:
        """Cancel a reply the user never heard; its user message is answered anew."""
        turn.cancelled = True
        turn.finished = True
        self.actions.stop_bot(turn, tell_backend=False)
        if self.history and self.history[-1].role == "user":
            self.history.pop()
