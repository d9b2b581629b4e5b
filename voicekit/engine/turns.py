"""Turn-taking: the one owner of when the user's turn ends, when the bot may speak, and
what interrupts it.

:class:`TurnTaking` is told what happens — speech edges, transcripts, a service's end of
turn, a detector's verdict, the bot's first audio, the end of a reply — and decides:

- **the end of the user's turn**: at the STT's final transcript (``silence``), or when a
  detector has judged the pause and the wait its verdict asks for has passed
  (:mod:`.end_of_turn`), or at once when the STT says the turn ended (Deepgram Flux);
- **preemptive replies** (:mod:`.preemption`): a reply started on what was said so far at a
  pause, held — never heard — until the committed transcript matches it;
- **interruptions** (full duplex): speech over the bot stops it, unless it is a backchannel
  ("uh-huh") or too short; a stop that brings no words is a false interruption, and the
  bot goes on with the sentence it was saying;
- merging what the user added to a reply not yet heard, queueing the user's words while
  the bot talks (half duplex, or a file read faster than real time).

It keeps the history (committed transcripts only), times every turn and emits the
conversation's turn events. It never touches a backend: what it decides goes through
:class:`TurnActions`, which the conversation implements; its timers too, so tests run it
on scripted time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Literal

from voicekit.clock import now
from voicekit.engine.bot_turn import BotTurn, SentenceProgress, Timer, TurnActions
from voicekit.engine.end_of_turn import OpenUserTurn, TurnEnd, TurnPolicy, TurnVerdict
from voicekit.engine.interruptions import Interruptions
from voicekit.engine.metrics import PreemptionInfo, TurnClock, TurnDecisionInfo
from voicekit.engine.preemption import Preemption
from voicekit.events import BotTurn as BotTurnEvent
from voicekit.events import (
    SpeechEnded,
    SpeechStarted,
    TurnDecision,
    TurnMetrics,
    UserTurn,
)
from voicekit.roles import Message

__all__ = ["BotTurn", "DuplexMode", "SentenceProgress", "TurnActions", "TurnTaking"]

DuplexMode = Literal["half_duplex", "full_duplex"]


class TurnTaking:
    """Decides the turns of one conversation; see the module docstring.

    ``mode`` is half duplex (the microphone is closed while the bot speaks) or full duplex
    (the user may talk over the bot, which stops: barge-in). ``fast`` is a file read faster
    than real time: every final transcript is a turn, answered in order, and nothing
    interrupts. ``realtime`` is a speech-to-speech model that answers by itself. ``has_vad``
    says that the engine's VAD times speech (its edges, not a service's later endpoint,
    mark when the user stopped). ``backends`` names, when a turn ends, the backends that
    served it, for its metrics. ``policy`` holds the profile's ``turns:`` settings;
    ``remote_output`` is an avatar (it says a cut sentence again in full when it resumes).
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
        policy: TurnPolicy | None = None,
        remote_output: bool = False,
    ) -> None:
        self.actions = actions
        self.mode: DuplexMode = mode
        self.fast = fast
        self.realtime = realtime
        self.has_vad = has_vad
        self.policy = policy or TurnPolicy()
        self.remote_output = remote_output
        self.history: list[Message] = history if history is not None else []
        self.metrics: list[TurnMetrics] = []
        self.current: BotTurn | None = None
        self.count = 0
        self.user = OpenUserTurn()
        self.preemption = Preemption(self)
        self.turn_end = TurnEnd(self)
        self.interruptions = Interruptions(self)
        self._backends = backends
        self._pending: list[str] = []
        self._speech_start: float | None = None
        self._speech_end: float | None = None
        self._timers: dict[str, Timer] = {}
        self.last_turn_end: float | None = None
        self._mic_open = asyncio.Event()
        self._mic_open.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def paused(self) -> BotTurn | None:
        """A reply stopped by speech that may yet bring no words (a false interruption)."""
        return self.interruptions.paused

    @property
    def judging(self) -> bool:
        """Whether pauses are judged by a detector (else the final transcript ends the turn)."""
        return self.policy.judges_pauses and not self.fast and not self.realtime

    # --- what the user does ---------------------------------------------------------------

    def speech_edge(self, event: SpeechStarted | SpeechEnded) -> None:
        """The user started or stopped speaking (from the VAD, the STT or a realtime model)."""
        timing = not self.has_vad or event.source == "vad"  # a service's endpoint comes after the VAD's
        if isinstance(event, SpeechStarted):
            if timing:
                self._speech_start = event.t
                self.turn_end.started(event.t)
            self.maybe_barge_in(event.t)
            return
        if not timing:
            return
        self._speech_end = event.t
        self.interruptions.speech_ended()
        turn = self.current
        if turn is not None and turn.clock.speech_end is None and event.t <= (turn.clock.final or event.t):
            turn.clock.speech_end = event.t  # the final came before the VAD's hangover ran out
        self.turn_end.paused(event.t)

    def typed(self, t: float) -> None:
        """The user typed a message: it ends their turn, with no pause to judge."""
        self._speech_end = t
        self.user.stt_ended = True
        self.user.decided_by = "typed"

    def interim(self, text: str, t: float) -> None:
        """A partial transcript: words while the bot speaks are speech over it."""
        if not text.strip():
            return
        if not self.realtime:
            self.user.interim = text.strip()
        self.interruptions.words_heard(text, t)
        self.maybe_barge_in(t, words=text)

    def user_said(self, text: str, t: float) -> None:
        """A final transcript (or typed text) that a cascade answers."""
        if self.fast:
            self._answer(text, t)
            return
        if self.interruptions.over_the_bot() and self.interruptions.backchannel(text):
            self.user = OpenUserTurn()  # "uh-huh" while the bot talks: not a turn
            return
        self.interruptions.words_heard(text, t)
        user = self.user
        user.finals.append(text.strip())
        user.interim = ""
        self._idle.clear()  # a turn is on its way
        self.turn_end.consider(t)
        if self.user is user:  # not committed yet: the STT's final is a pause, answer it ahead
            self.preemption.speculate(user.text, t)

    def input_ended(self, t: float) -> None:
        """No more speech will come: what the user said is their turn, now."""
        self.preemption.drop_if_uncommittable()
        if self.user.finals:
            self.commit(t, self.user.decided_by or "end_of_input")
        elif self.current is None and not self._pending:
            self._idle.set()

    def stt_end_of_turn(self, t: float) -> None:
        """The STT decided that the user's turn is over (after its final transcript)."""
        self.user.stt_ended = True
        self.turn_end.consider(t)

    def stt_eager_end_of_turn(self, text: str, t: float) -> None:
        """The STT thinks the turn may be over: a preemptive reply may start on ``text``."""
        if text.strip() and not self.realtime:
            self.user.interim = text.strip()  # the STT's best transcript of the turn so far
        self.preemption.speculate(self.user.text, t)

    def stt_turn_resumed(self, t: float) -> None:
        """The user went on after the STT's eager end of turn."""
        self.preemption.drop()

    def judged(self, pause: int, verdict: TurnVerdict, t: float) -> None:
        """The detector's verdict on pause number ``pause`` (stale verdicts are ignored)."""
        user = self.user
        if pause != user.pause or user.speaking:
            return
        user.verdict = verdict
        user.judging = None
        self.turn_end.consider(t)

    # --- barge-in -------------------------------------------------------------------------------

    def maybe_barge_in(self, t: float, *, words: str | None = None) -> None:
        """The user is speaking (``words``: what the STT heard so far): see :class:`Interruptions`."""
        self.interruptions.maybe_barge_in(t, words=words)

    def barge_in(self, turn: BotTurn, t: float, *, tell_backend: bool = True, with_words: bool = False) -> None:
        """The user spoke over the bot: stop it (see :meth:`Interruptions.barge_in`)."""
        self.interruptions.barge_in(turn, t, tell_backend=tell_backend, with_words=with_words)

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
            self.barge_in(turn, t, tell_backend=False, with_words=True)

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
        self.interruptions.finished(turn)
        turn.clock.mark("end", now())
        self.last_turn_end = turn.clock.end
        text = turn.spoken_text() if interrupted else (" ".join(s.text for s in turn.sentences) or turn.text.strip())
        self.history.append(Message("assistant", text, interrupted=interrupted))
        self.actions.emit(BotTurnEvent(text, turn.index, interrupted=interrupted, resumed=turn.resumed))
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
        elif not self.user.finals and self.preemption.tentative is None:
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

    def cancel_timers(self) -> None:
        """The conversation is over: no timer may fire any more."""
        for name in list(self._timers):
            self.cancel(name)

    # --- the end of the user's turn -------------------------------------------------------------

    def commit(self, t: float, detector: str) -> None:
        """The user's turn is over: answer it (a held preemptive reply if it matches)."""
        user = self.user
        text = user.final_text
        verdict = user.verdict
        decision = TurnDecisionInfo(
            detector, verdict.probability if verdict else None, verdict.compute_ms if verdict else None
        )
        self.user = OpenUserTurn()
        self.cancel("end_of_turn")
        preemption = self.preemption.settle()
        if self.preemption.confirm(text, t, decision, preemption):
            return
        self._answer(text, t, decision, preemption)

    def _answer(
        self,
        text: str,
        t: float,
        decision: TurnDecisionInfo | None = None,
        preemption: PreemptionInfo | None = None,
    ) -> None:
        if self.paused is not None:
            self.finish(self.paused, interrupted=True)  # the user's words ended the pause: a real interruption
        turn = self.current
        if turn is not None and not turn.finished:
            if self.fast:  # a file read ahead of real time: answer each utterance in turn
                self._pending.append(text)
                return
            if not turn.audio_started and not turn.cancelled:
                # the user went on before the bot said anything: answer everything together
                self._drop_unheard(turn)
                self._start(f"{turn.user_text} {text}", t, decision, preemption)
                return
            if self.mode == "half_duplex":
                self._pending.append(text)
                return
            self.barge_in(turn, t, with_words=True)
        self._start(text, t, decision, preemption)

    # --- timers ------------------------------------------------------------------------------

    def at(self, name: str, t: float, callback: Callable[[float], None]) -> None:
        """Call ``callback(t)`` at ``t``, replacing the timer of that name (the parts' timers)."""
        self.cancel(name)
        self._timers[name] = self.actions.call_at(t, lambda: self._fire(name, t, callback))

    def _fire(self, name: str, t: float, callback: Callable[[float], None]) -> None:
        self._timers.pop(name, None)
        callback(t)

    def cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    # --- inside -------------------------------------------------------------------------

    def _start(
        self,
        text: str,
        t: float,
        decision: TurnDecisionInfo | None = None,
        preemption: PreemptionInfo | None = None,
    ) -> None:
        self.count += 1
        clock = TurnClock(self.count, speech_end=self.speech_end_of_this_utterance(), final=t)
        clock.requested = clock.committed = t
        clock.decision = decision
        if preemption is not None:
            clock.preemption = preemption
        turn = BotTurn(self.count, text, clock, history=list(self.history))
        self.current = turn
        self._idle.clear()
        self.actions.emit(UserTurn(text, turn.index, t=t))
        if decision is not None:
            self.actions.emit(TurnDecision(turn.index, decision.detector, decision.probability, decision.compute_ms))
        self.history.append(Message("user", text))
        self.actions.respond(turn)

    def adopt(self, turn: BotTurn, text: str, t: float, decision: TurnDecisionInfo) -> None:
        """A held reply is confirmed: it becomes the current turn, answering ``text``."""
        self.count += 1
        turn.index = turn.clock.turn = self.count
        turn.clock.final = turn.clock.committed = t
        turn.clock.decision = decision
        if turn.clock.speech_end is None:
            turn.clock.speech_end = self.speech_end_of_this_utterance()
        self.current = turn
        self._idle.clear()
        self.actions.emit(UserTurn(text, turn.index, t=t))
        self.actions.emit(TurnDecision(turn.index, decision.detector, decision.probability, decision.compute_ms))
        self.history.append(Message("user", text))

    def _drop_unheard(self, turn: BotTurn) -> None:
        """Cancel a reply the user never heard; its user message is answered anew."""
        turn.cancelled = True
        turn.finished = True
        self.actions.stop_bot(turn, tell_backend=False)
        if self.history and self.history[-1].role == "user":
            self.history.pop()
