"""One bot reply as turn-taking tracks it, and what turn-taking asks of the conversation.

:class:`BotTurn` is the state of one reply (its sentences, what of them was heard, whether
it is still *tentative* — started ahead of the user's confirmed turn — and held);
:class:`TurnActions` is the small interface through which
:class:`~voicekit.engine.turns.TurnTaking` has its decisions carried out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from voicekit.engine.metrics import TurnClock
from voicekit.events import Event
from voicekit.roles import Message

_SECONDS_PER_CHARACTER = 0.06  # English read aloud at about 165 words a minute


@dataclass
class SentenceProgress:
    """One sentence of the reply and how much of its audio has been played."""

    text: str
    bytes_queued: int = 0
    bytes_played: int = 0
    synthesized: bool = False  # the output finished producing it
    played: bool = False  # all of it reached the listener
    seconds_played: float = 0.0

    def heard_words(self) -> list[str]:
        """The words of the sentence the listener heard, by the share of its audio played.

        A voice that streams in real time hands over its audio as it plays, so the share of
        what was handed over says little; then the time played against the time the sentence
        takes at an ordinary speaking rate is the better guess, whichever is smaller.
        """
        if self.played:
            return self.text.split()
        if not self.bytes_played or not self.bytes_queued:
            return []
        words = self.text.split()
        share = self.bytes_played / self.bytes_queued
        if self.seconds_played:
            share = min(share, self.seconds_played / (len(self.text) * _SECONDS_PER_CHARACTER))
        return words[: int(len(words) * min(1.0, share))]


@dataclass
class BotTurn:
    """One reply in progress: its task, its sentences and its clock.

    ``generation`` counts fresh starts of the reply (a failed LLM replaced by its
    fallback, a reply resumed after a false interruption): audio of an older generation is
    never played. A ``tentative`` reply was started before the user's turn was confirmed
    (preemptive): its audio and its events are held until :meth:`confirm`, and thrown away
    if the turn turns out otherwise. ``history`` is the conversation before this turn, as
    the LLM receives it.
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
    tentative: bool = False
    history: list[Message] = field(default_factory=list)
    held: list[Event] = field(default_factory=list)  # events of a tentative reply, emitted on confirm
    resumed: int = 0
    _settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def active(self) -> bool:
        return not self.finished and not self.cancelled

    def restart(self) -> None:
        """Forget the reply so far: it is answered again from the start."""
        self.generation += 1
        self.text = ""
        self.sentences = []

    def settle(self) -> None:
        """The tentative reply was confirmed or thrown away: whoever holds it back may go on."""
        self._settled.set()

    async def confirmed(self) -> bool:
        """Wait until a tentative reply is confirmed (True) or thrown away (False)."""
        if self.tentative:
            await self._settled.wait()
        return not self.cancelled and not self.tentative

    def spoken_text(self) -> str:
        """The part of the reply the user heard: whole played sentences plus the played
        share of the words of a sentence cut mid-way."""
        parts: list[str] = []
        for sentence in self.sentences:
            if sentence.played:
                parts.append(sentence.text)
                continue
            heard = sentence.heard_words()
            if heard:
                parts.append(" ".join(heard) + "…")
            break
        return " ".join(parts)

    def rest_of_interrupted_sentence(self, *, whole: bool) -> str:
        """Get ready to go on after a false interruption: the text still to say of the
        sentence that was cut (all of it with ``whole``: an avatar says it again), with the
        sentences as heard so far kept for :meth:`spoken_text`."""
        for i, sentence in enumerate(self.sentences):
            if sentence.played:
                continue
            words = sentence.text.split()
            heard = [] if whole else sentence.heard_words()
            del self.sentences[i:]
            if heard:
                self.sentences.append(SentenceProgress(" ".join(heard), played=True, synthesized=True))
            return " ".join(words[len(heard) :])
        return ""


class Timer(Protocol):
    def cancel(self) -> None: ...


class TurnActions(Protocol):
    """What turn-taking asks of the conversation."""

    def respond(self, turn: BotTurn) -> None:
        """Start answering ``turn`` (a cascade runs LLM → output; a realtime model answers by itself)."""

    def stop_bot(self, turn: BotTurn, *, tell_backend: bool) -> None:
        """Stop the reply now: cancel its work and silence the sink; with ``tell_backend``
        also interrupt the voice or the realtime model (barge-in)."""

    def discard(self, turn: BotTurn) -> None:
        """Throw away a tentative reply nobody heard: cancel its work; nothing else stops."""

    def resume(self, turn: BotTurn, text: str) -> None:
        """Speak ``text`` as the rest of ``turn`` (after a false interruption), without the LLM."""

    def judge(self, pause: int, since: float | None, transcript: str) -> None:
        """Have the end-of-turn detector judge this pause (the user's audio from ``since``,
        with its transcript) off the event loop; answer with ``TurnTaking.judged``."""

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` at ``t`` (:func:`voicekit.clock.now` seconds)."""

    def emit(self, event: Event) -> None:
        """Hand a conversation event to the observers."""
