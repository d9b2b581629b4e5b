"""Speech over the bot, in full duplex: what interrupts it, and what only seemed to.

- Speech the VAD hears (it lasted ``min_interruption_ms``) stops the bot — unless backchannels
  are set and the STT gives words as the user speaks: then the bot goes on until a word that
  is not a backchannel ("uh-huh", "yeah", "угу") comes, or the speech lasts a second without
  any. A transcript of backchannels only is neither an interruption nor a turn.
- With ``false_interruption_ms``, a bot stopped before any word came is only *paused*: if no
  words come within that time (a cough, a door), it goes on with the sentence it was cut in
  (a voice says the rest of it, an avatar says it again; :class:`~voicekit.events.BotResumed`);
  if words come, the interruption was real and the reply ends with what was heard.

Part of :class:`~voicekit.engine.turns.TurnTaking`, which owns it and calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicekit.engine.bot_turn import BotTurn
from voicekit.engine.end_of_turn import OpenUserTurn, only_backchannels
from voicekit.events import BargeIn, BotResumed

if TYPE_CHECKING:
    from voicekit.engine.turns import TurnTaking


class Interruptions:
    """Barge-in, backchannels and false interruptions of one conversation; see the module docstring."""

    def __init__(self, turns: TurnTaking) -> None:
        self.turns = turns
        self.paused: BotTurn | None = None  # stopped by speech that may bring no words
        self.awaiting_words: float | None = None  # speech over the bot since then, no words yet

    def backchannel(self, text: str) -> bool:
        """Whether ``text`` is only backchannels (and backchannels are set at all)."""
        words = self.turns.policy.backchannels
        return bool(words) and only_backchannels(text, words)

    def over_the_bot(self) -> bool:
        turns = self.turns
        turn = turns.current
        return turns.mode == "full_duplex" and turn is not None and turn.active and turn.audio_started

    def maybe_barge_in(self, t: float, *, words: str | None = None) -> None:
        """The user is speaking (``words``: what the STT heard so far): in full duplex, stop a
        bot that has started to speak — unless it is only a backchannel, or, when the STT
        gives words as they come and backchannels are set, before any words came."""
        turns = self.turns
        turn = turns.current
        if turns.mode != "full_duplex" or turns.fast or turn is None or not turn.active:
            return  # a file read ahead of real time cannot talk over the bot
        if not (turn.audio_started or (turns.realtime and turn.text)):
            return
        policy = turns.policy
        if words is not None:
            if not self.backchannel(words):
                self.barge_in(turn, t, with_words=True)
            return
        if policy.backchannels and policy.words_needed and not turns.realtime:
            if self.awaiting_words is None:
                self.awaiting_words = t
                turns.at("wordless", t + policy.wordless_interruption_s, self._wordless_speech)
            return
        self.barge_in(turn, t)

    def barge_in(self, turn: BotTurn, t: float, *, tell_backend: bool = True, with_words: bool = False) -> None:
        """The user spoke over the bot: stop it now and keep only what was heard — or, when
        false interruptions are recovered and no words came yet, pause it until they do."""
        turns = self.turns
        turns.actions.emit(BargeIn(turn.index, t=t))
        self.awaiting_words = None
        wait = turns.policy.false_interruption_s
        if wait > 0 and not with_words and not turns.realtime:
            turn.cancelled = True  # what it queued is not played
            turns.actions.stop_bot(turn, tell_backend=tell_backend)
            self.paused = turn
            turns.at("false_interruption", t + wait, self._false_interruption)
            return
        turns.cut(turn, tell_backend=tell_backend)

    def speech_ended(self) -> None:
        self.awaiting_words = None

    def words_heard(self, text: str, t: float) -> None:
        """Words came: a bot paused for speech over it was really interrupted."""
        if self.paused is not None and not only_backchannels(text, self.turns.policy.backchannels):
            self.turns.finish(self.paused, interrupted=True)

    def finished(self, turn: BotTurn) -> None:
        """``turn`` ended: it is no longer paused."""
        if self.paused is turn:
            self.paused = None
            self.turns.cancel("false_interruption")

    def _wordless_speech(self, t: float) -> None:
        turns = self.turns
        if self.awaiting_words is not None and turns.user.speaking:
            turn = turns.current
            if turn is not None and turn.active and turns.mode == "full_duplex":
                self.barge_in(turn, t)
        self.awaiting_words = None

    def _false_interruption(self, t: float) -> None:
        turns = self.turns
        turn = self.paused
        if turn is None:
            return
        if turns.user.speaking:  # still talking: wait for their words as long again
            turns.at("false_interruption", t + turns.policy.false_interruption_s, self._false_interruption)
            return
        self.paused = None
        if turns.user.finals and not only_backchannels(turns.user.text, turns.policy.backchannels):
            turns.finish(turn, interrupted=True)  # words came after all: a real interruption
            return
        turns.user = OpenUserTurn()  # a cough, a backchannel: nothing to answer
        text = turn.rest_of_interrupted_sentence(whole=turns.remote_output)
        if not text:
            turns.finish(turn, interrupted=True)
            return
        turn.cancelled = False
        turn.generation += 1
        turn.resumed += 1
        turns.actions.emit(BotResumed(turn.index, text, t=t))
        turns.actions.resume(turn, text)
