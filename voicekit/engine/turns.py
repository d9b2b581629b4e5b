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
from voicekit.engine.end_of_turn import OpenUserTurn, TurnPolicy, TurnVerdict, only_backchannels
from voicekit.engine.metrics import PreemptionInfo, TurnClock, TurnDecisionInfo
from voicekit.engine.preemption import Preemption
from voicekit.events import (
    BargeIn,
    BotResumed,
    SpeechEnded,
    SpeechStarted,
    TurnDecision,
    TurnMetrics,
    UserTurn,
)
from voicekit.events import BotTurn as BotTurnEvent
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
        self.paused: BotTurn | None = None  # stopped by speech that may bring no words
        self._backends = backends
        self._pending: list[str] = []
        self._speech_start: float | None = None
        self._speech_end: float | None = None
        self._awaiting_words: float | None = None  # speech over the bot since then, no words yet
        self._timers: dict[str, Timer] = {}
        self.last_turn_end: float | None = None
        self._mic_open = asyncio.Event()
        self._mic_open.set()
        self._idle = asyncio.Event()
        self._idle.set()

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
                self._user_started(event.t)
            self.maybe_barge_in(event.t)
            return
        if not timing:
            return
        self._speech_end = event.t
        self._awaiting_words = None
        turn = self.current
        if turn is not None and turn.clock.speech_end is None and event.t <= (turn.clock.final or event.t):
            turn.clock.speech_end = event.t  # the final came before the VAD's hangover ran out
        self._user_paused(event.t)

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
        self._words_heard(text, t)
        self.maybe_barge_in(t, words=text)

    def user_said(self, text: str, t: float) -> None:
        """A final transcript (or typed text) that a cascade answers."""
        if self.fast:
            self._answer(text, t)
            return
        if self._over_the_bot() and only_backchannels(text, self.policy.backchannels) and self.policy.backchannels:
            self.user = OpenUserTurn()  # "uh-huh" while the bot talks: not a turn
            return
        self._words_heard(text, t)
        user = self.user
        user.finals.append(text.strip())
        user.interim = ""
        self._idle.clear()  # a turn is on its way
        self._consider_commit(t)
        if self.user is user:  # not committed yet: the STT's final is a pause, answer it ahead
            self.preemption.speculate(user.text, t)

    def input_ended(self, t: float) -> None:
        """No more speech will come: what the user said is their turn, now."""
        self.preemption.drop_if_uncommittable()
        if self.user.finals:
            self._commit(t, self.user.decided_by or "end_of_input")
        elif self.current is None and not self._pending:
            self._idle.set()

    def stt_end_of_turn(self, t: float) -> None:
        """The STT decided that the user's turn is over (after its final transcript)."""
        self.user.stt_ended = True
        self._consider_commit(t)

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
        self._consider_commit(t)

    # --- barge-in -------------------------------------------------------------------------------

    def maybe_barge_in(self, t: float, *, words: str | None = None) -> None:
        """The user is speaking (``words``: what the STT heard so far): in full duplex, stop a
        bot that has started to speak — unless it is only a backchannel, or, when the STT
        gives words as they come and backchannels are set, before any words came."""
        turn = self.current
        if self.mode != "full_duplex" or self.fast or turn is None or not turn.active:
            return  # a file read ahead of real time cannot talk over the bot
        if not (turn.audio_started or (self.realtime and turn.text)):
            return
        policy = self.policy
        if words is not None:
            if policy.backchannels and only_backchannels(words, policy.backchannels):
                return
            self.barge_in(turn, t, with_words=True)
            return
        if policy.backchannels and policy.words_needed and not self.realtime:
            if self._awaiting_words is None:
                self._awaiting_words = t
                self._at("wordless", t + policy.wordless_interruption_s, self._wordless_speech)
            return
        self.barge_in(turn, t)

    def barge_in(self, turn: BotTurn, t: float, *, tell_backend: bool = True, with_words: bool = False) -> None:
        """The user spoke over the bot: stop it now and keep only what was heard — or, when
        false interruptions are recovered and no words came yet, pause it until they do."""
        self.actions.emit(BargeIn(turn.index, t=t))
        self._awaiting_words = None
        if self.policy.false_interruption_s > 0 and not with_words and not self.realtime:
            turn.cancelled = True  # what it queued is not played
            self.actions.stop_bot(turn, tell_backend=tell_backend)
            self.paused = turn
            self._at("false_interruption", t + self.policy.false_interruption_s, self._false_interruption)
            return
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
        if self.paused is turn:
            self.paused = None
            self._cancel("false_interruption")
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
            self._cancel(name)

    # --- the end of the user's turn -------------------------------------------------------------

    def _user_started(self, t: float) -> None:
        if self.realtime or self.fast:
            return
        user = self.user
        user.speaking = True
        user.verdict = None
        user.judging = None
        if user.speech_start is None:
            user.speech_start = t
        self._cancel("end_of_turn")
        self.preemption.drop()  # the user went on: what was started on their words so far is stale

    def _user_paused(self, t: float) -> None:
        if self.realtime or self.fast:
            return
        user = self.user
        user.speaking = False
        user.speech_end = t
        user.pause += 1
        self.preemption.speculate(user.text, t)
        if self.judging and user.text:
            self._request_judgement()
        self._consider_commit(t)

    def _request_judgement(self) -> None:
        user = self.user
        user.judging = user.pause
        user.verdict = None
        self.actions.judge(user.pause, user.speech_start, user.text)

    def _consider_commit(self, t: float) -> None:
        """Commit the user's turn when what is known says it is over; else wait for what is missing."""
        user = self.user
        if not user.finals:
            return
        if user.stt_ended:
            self._commit(t, user.decided_by or "stt")
            return
        if not self.judging:
            self._commit(t, self.policy.detector)
            return
        if user.speaking:
            return
        if user.speech_end is None:
            user.speech_end = t  # no edge told of the pause: the final marks it
        if user.verdict is None:
            if user.judging != user.pause:
                self._request_judgement()
            self._at("end_of_turn", user.speech_end + self.policy.timings.max_s, self._verdict_overdue)
            return
        policy = self.policy
        due = user.speech_end + policy.timings.wait(user.verdict, user.text, policy.language, policy.transcript_rules)
        if t >= due - 0.001:
            self._commit(t, policy.detector)
        else:
            self._at("end_of_turn", due, self._consider_commit)

    def _verdict_overdue(self, t: float) -> None:
        user = self.user
        if user.verdict is None and not user.speaking and user.finals:
            self._commit(t, "max_wait")

    def _commit(self, t: float, detector: str) -> None:
        """The user's turn is over: answer it (a held preemptive reply if it matches)."""
        user = self.user
        text = user.final_text
        verdict = user.verdict
        decision = TurnDecisionInfo(
            detector, verdict.probability if verdict else None, verdict.compute_ms if verdict else None
        )
        self.user = OpenUserTurn()
        self._cancel("end_of_turn")
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

    # --- interruptions ------------------------------------------------------------------------

    def _over_the_bot(self) -> bool:
        turn = self.current
        return self.mode == "full_duplex" and turn is not None and turn.active and turn.audio_started

    def _words_heard(self, text: str, t: float) -> None:
        """Words came: a bot paused for speech over it was really interrupted."""
        if self.paused is not None and not only_backchannels(text, self.policy.backchannels):
            self.finish(self.paused, interrupted=True)

    def _wordless_speech(self, t: float) -> None:
        if self._awaiting_words is not None and self.user.speaking:
            turn = self.current
            if turn is not None and turn.active and self.mode == "full_duplex":
                self.barge_in(turn, t)
        self._awaiting_words = None

    def _false_interruption(self, t: float) -> None:
        turn = self.paused
        if turn is None:
            return
        if self.user.speaking:  # still talking: wait for their words as long again
            self._at("false_interruption", t + self.policy.false_interruption_s, self._false_interruption)
            return
        self.paused = None
        if self.user.finals and not only_backchannels(self.user.text, self.policy.backchannels):
            return
        self.user = OpenUserTurn()  # a cough, a backchannel: nothing to answer
        text = turn.rest_of_interrupted_sentence(whole=self.remote_output)
        if not text:
            self.finish(turn, interrupted=True)
            return
        turn.cancelled = False
        turn.generation += 1
        turn.resumed += 1
        self.actions.emit(BotResumed(turn.index, text, t=t))
        self.actions.resume(turn, text)

    # --- timers ------------------------------------------------------------------------------

    def _at(self, name: str, t: float, callback: Callable[[float], None]) -> None:
        self._cancel(name)
        self._timers[name] = self.actions.call_at(t, lambda: self._fire(name, t, callback))

    def _fire(self, name: str, t: float, callback: Callable[[float], None]) -> None:
        self._timers.pop(name, None)
        callback(t)

    def _cancel(self, name: str) -> None:
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
