"""Preemptive replies: answering what the user said so far before their turn is confirmed.

At a pause (or when the STT predicts the end of the turn), with ``turns.preemptive: true``,
:class:`Preemption` starts a *tentative* reply on the transcript so far. The LLM writes and a
voice that renders audio locally synthesizes, but nothing is heard: the playback holds the
audio, an avatar gets no text, and the reply's events wait. When the turn is committed and
its final transcript matches the tentative one (compared :func:`normalised`: case,
punctuation and spacing aside), the held reply plays at once; otherwise it is thrown away
and the committed transcript is answered afresh. The history only ever holds committed
transcripts. Every turn's metrics say whether a preemptive reply was a hit or a miss, the
time it saved and the tokens thrown away.

Part of :class:`~voicekit.engine.turns.TurnTaking`, which owns it and calls it; it decides
nothing about when the turn ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicekit.engine.bot_turn import BotTurn
from voicekit.engine.end_of_turn import normalised
from voicekit.engine.metrics import PreemptionInfo, TurnClock, TurnDecisionInfo
from voicekit.events import TextDelta

if TYPE_CHECKING:
    from voicekit.engine.turns import TurnTaking


class Preemption:
    """The tentative reply of the user's open turn, and its bookkeeping."""

    def __init__(self, turns: TurnTaking) -> None:
        self.turns = turns
        self.tentative: BotTurn | None = None
        self.info = PreemptionInfo()

    def speculate(self, text: str, t: float) -> None:
        """Start a tentative reply on ``text``, unless one on the same words runs already."""
        turns = self.turns
        text = text.strip()
        if not turns.policy.preemptive or turns.fast or turns.realtime or not text:
            return
        if turns.current is not None and not turns.current.finished:
            return  # the bot is answering already: this is not the moment
        if turns.paused is not None:
            return
        held = self.tentative
        if held is not None:
            if normalised(held.user_text) == normalised(text):
                return
            self.drop()
        index = turns.count + 1
        clock = TurnClock(index, speech_end=turns.user.speech_end)
        clock.requested = t
        turn = BotTurn(index, text, clock, tentative=True, history=list(turns.history))
        self.tentative = turn
        turns.actions.respond(turn)

    def drop(self) -> None:
        """Throw the tentative reply away (the user went on, or said something else)."""
        turn, self.tentative = self.tentative, None
        if turn is None:
            return
        turn.cancelled = turn.finished = True
        self.info.missed(sum(1 for event in turn.held if isinstance(event, TextDelta)))
        turn.held.clear()
        self.turns.actions.discard(turn)
        turn.settle()

    def drop_if_uncommittable(self) -> None:
        """The input ended with no final transcript to confirm the tentative reply."""
        if not self.turns.user.finals:
            self.drop()

    def settle(self) -> PreemptionInfo:
        """The turn is committed: hand over this turn's bookkeeping and start afresh."""
        info, self.info = self.info, PreemptionInfo()
        return info

    def confirm(self, text: str, t: float, decision: TurnDecisionInfo, info: PreemptionInfo) -> bool:
        """The turn was committed with ``text``: play the held reply if it answered the same
        words (True), else throw it away (False: answer ``text`` afresh)."""
        turn = self.tentative
        if turn is None:
            return False
        if not turn.active or normalised(turn.user_text) != normalised(text):
            self.drop()
            info.discarded += self.info.discarded
            info.discarded_tokens += self.info.discarded_tokens
            info.outcome = info.outcome or "miss"
            self.info = PreemptionInfo()
            return False
        self.tentative = None
        info.outcome = "hit"
        assert turn.clock.requested is not None
        info.saved_ms = round(max(0.0, t - turn.clock.requested) * 1000, 2)
        turn.clock.preemption = info
        self.turns.adopt(turn, text, t, decision)
        turn.tentative = False
        held, turn.held = turn.held, []
        for event in held:
            self.turns.actions.emit(event)
        turn.settle()
        return True
