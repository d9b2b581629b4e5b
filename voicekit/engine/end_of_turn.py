"""When has the user finished their turn? Detectors judge a pause; turn-taking decides.

A **detector** looks at a pause in the user's speech — the audio of their turn and its
transcript so far — and says how likely the turn is complete (:class:`TurnVerdict`).
:class:`~voicekit.engine.turns.TurnTaking` asks for a judgement when the VAD hears a
pause, and waits a short silence when the verdict is *complete* (``complete_wait_ms``), a
longer one when it is *incomplete* (``incomplete_wait_ms``, up to ``max_wait_ms`` while the
transcript still ends on a word that cannot end a sentence). The ``silence`` detector judges
nothing: the STT's final transcript ends the turn, as its own endpointing decides.

Detectors are plugins (``register_turn_detectors``); built in are ``silence`` and
``smart_turn`` (:mod:`voicekit.plugins.turn.smart_turn`). A detector's :meth:`TurnDetector.judge`
blocks (a model runs): the conversation runs it on a worker thread, never on the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from voicekit.engine.turns import TurnTaking

#: English and Russian words a sentence does not end on: articles, prepositions, conjunctions
OPEN_ENDINGS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "a an the to of in on at by for with from into onto about as than and or but nor so because "
        "if that which who whose whom when while although though unless until since whether my your "
        "our their his her its this these those some any is are was were am be been very".split()
    ),
    "ru": frozenset(
        "и а но или да в во на с со к ко о об обо от до по за из у без для под над при про через что "
        "чтобы потому как если когда который которая которое которые хотя ли же то мой моя мою твой "
        "наш ваш их его её это этот эта эти".split()
    ),
}
#: endings of more than one word
OPEN_PHRASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "en": (("such", "as"), ("so", "that"), ("in", "order")),
    "ru": (("потому", "что"), ("так", "как"), ("для", "того"), ("из-за", "того")),
}
_WORD = re.compile(r"[\w'-]+", re.UNICODE)


def words_of(text: str) -> list[str]:
    """Lower-case words of a transcript, punctuation dropped."""
    return [w.lower() for w in _WORD.findall(text)]


def ends_open(text: str, language: str | None = None) -> bool:
    """Whether ``text`` ends on an article, preposition or conjunction ("to", "and",
    "the"; Russian "и", "в", "потому что"), so the sentence cannot be over. Without a
    language, English and Russian rules both apply."""
    words = words_of(text)
    if not words:
        return False
    if text.rstrip().endswith(("?", "!")):
        return False
    lang = (language or "").split("-")[0].lower()
    tables = [lang] if lang in OPEN_ENDINGS else list(OPEN_ENDINGS)
    for table in tables:
        if words[-1] in OPEN_ENDINGS[table]:
            return True
        for phrase in OPEN_PHRASES[table]:
            if tuple(words[-len(phrase) :]) == phrase:
                return True
    return False


@dataclass(frozen=True)
class TurnVerdict:
    """A detector's judgement of one pause: is the user's turn complete?"""

    complete: bool
    probability: float | None = None  # the probability that the turn is complete, if the detector has one
    compute_ms: float | None = None  # how long judging took


@dataclass(frozen=True)
class TurnAudio:
    """What a detector judges: the user's audio of this turn (16 kHz mono int16, up to the
    pause, with some lead-in before the speech started) and its transcript so far."""

    pcm: bytes
    transcript: str
    language: str | None = None

    def samples(self) -> np.ndarray:
        """The audio as float32 in [-1, 1]."""
        return np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) / 32768.0


class TurnDetector:
    """Base of end-of-turn detectors (plugins register them with ``register_turn_detectors``).

    A detector is built from its ``Options`` (a profile's ``turns: {detector: {use: NAME, ...}}``),
    loaded once with :meth:`load` (on a worker thread, before the conversation starts) and
    asked :meth:`judge` at pauses, also on a worker thread, one call at a time. It decides
    nothing itself: turn-taking turns verdicts into waits and commits. ``judges_pauses = False``
    (the ``silence`` detector) means the STT's final transcript ends the turn.
    """

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    name: ClassVar[str] = ""
    judges_pauses: ClassVar[bool] = True

    def __init__(self, options: Any = None, *, language: str | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.language = language

    def check(self) -> None:
        """Raise a clear error now if the detector cannot work (a missing model file)."""

    def load(self) -> None:
        """Load the model (blocking; called once, off the event loop)."""

    def judge(self, turn: TurnAudio) -> TurnVerdict:
        """Judge one pause (blocking; called off the event loop)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the model."""


class SilenceDetector(TurnDetector):
    """No judgement: the STT's final transcript (its endpointing after a silence) ends the turn."""

    name: ClassVar[str] = "silence"
    judges_pauses: ClassVar[bool] = False

    def judge(self, turn: TurnAudio) -> TurnVerdict:
        return TurnVerdict(True)


@dataclass(frozen=True)
class PauseTimings:
    """How long turn-taking waits after the end of speech, by verdict (seconds)."""

    complete_s: float = 0.2
    incomplete_s: float = 1.5
    max_s: float = 3.0

    def wait(self, verdict: TurnVerdict, transcript: str, language: str | None, transcript_rules: bool) -> float:
        """Silence to wait after the end of speech before the turn is committed."""
        if transcript_rules and ends_open(transcript, language):
            return self.max_s if not verdict.complete else self.incomplete_s
        return self.complete_s if verdict.complete else self.incomplete_s


@dataclass
class OpenUserTurn:
    """What the user has said since the last committed turn, and the pause they are in."""

    finals: list[str] = field(default_factory=list)
    interim: str = ""
    speaking: bool = False
    speech_start: float | None = None  # the first speech of this turn
    speech_end: float | None = None  # the end of the latest speech
    pause: int = 0  # counts pauses: a verdict belongs to one
    judging: int | None = None  # the pause whose judgement is under way
    verdict: TurnVerdict | None = None  # the verdict of the current pause
    stt_ended: bool = False  # the STT said the turn is over
    decided_by: str | None = None

    @property
    def text(self) -> str:
        """The transcript so far: the finals, then the words still being recognised."""
        return " ".join([*self.finals, self.interim]).strip()

    @property
    def final_text(self) -> str:
        return " ".join(self.finals).strip()


def normalised(text: str) -> str:
    """A transcript compared for meaning: lower case, no punctuation, single spaces."""
    return " ".join(words_of(text))


def only_backchannels(text: str, backchannels: Sequence[str]) -> bool:
    """Whether every word of ``text`` is a backchannel ("uh-huh", "yeah", "угу") — or there is none."""
    allowed = {normalised(b) for b in backchannels}
    words = words_of(text)
    if not words:
        return True
    joined = " ".join(words)
    if joined in allowed:
        return True
    return all(w in allowed for w in words)


#: what a user says over the bot without asking for the floor, per language
BACKCHANNELS: dict[str, tuple[str, ...]] = {
    "en": (
        "uh-huh",
        "uh huh",
        "mhm",
        "mm",
        "mm-hmm",
        "hmm",
        "yeah",
        "yep",
        "yes",
        "right",
        "okay",
        "ok",
        "sure",
        "i see",
    ),
    "ru": ("ага", "угу", "да", "ну", "так", "ясно", "понятно", "хорошо", "мгм", "ок"),
}


@dataclass(frozen=True)
class TurnPolicy:
    """The turn-taking settings of one conversation (a profile's ``turns:`` section).

    - ``detector``: the end-of-turn detector's name; ``judges_pauses``: whether it judges
      pauses (else the STT's final transcript ends the turn).
    - ``timings``: the waits after the end of speech; ``transcript_rules``: a transcript
      ending on "the", "to", "and" … is not the end of a turn.
    - ``preemptive``: start replies on what the user said so far at a pause (or at the STT's
      eager end of turn), holding them until the turn is confirmed.
    - ``backchannels``: words that do not interrupt the bot; ``words_needed``: the STT gives
      words as the user speaks, so speech over the bot waits for them before it interrupts.
    - ``false_interruption_s``: the bot stopped for speech that brings no words within this
      long goes on with the sentence it was saying (0: off).
    """

    detector: str = "silence"
    judges_pauses: bool = False
    timings: PauseTimings = PauseTimings()
    transcript_rules: bool = True
    preemptive: bool = False
    backchannels: tuple[str, ...] = ()
    words_needed: bool = False
    wordless_interruption_s: float = 1.0
    false_interruption_s: float = 0.0
    language: str | None = None


class TurnEnd:
    """When the user's open turn is over, from speech edges, finals and verdicts.

    Part of :class:`~voicekit.engine.turns.TurnTaking`, which owns it and calls it: it asks for
    judgements at pauses, keeps the timers of the waits, and calls ``TurnTaking.commit`` when
    the turn is over.
    """

    def __init__(self, turns: TurnTaking) -> None:
        self.turns = turns

    def started(self, t: float) -> None:
        """The user speaks: the pause (and its verdict) is over."""
        turns = self.turns
        if turns.realtime or turns.fast:
            return
        user = turns.user
        user.speaking = True
        user.verdict = None
        user.judging = None
        if user.speech_start is None:
            user.speech_start = t
        turns.cancel("end_of_turn")
        turns.preemption.drop()  # the user went on: what was started on their words so far is stale

    def paused(self, t: float) -> None:
        """The user stopped speaking: judge the pause, maybe answer ahead, maybe commit."""
        turns = self.turns
        if turns.realtime or turns.fast:
            return
        user = turns.user
        user.speaking = False
        user.speech_end = t
        user.pause += 1
        turns.preemption.speculate(user.text, t)
        if turns.judging and user.text:
            self.request()
        self.consider(t)

    def request(self) -> None:
        """Ask the detector about the current pause."""
        user = self.turns.user
        user.judging = user.pause
        user.verdict = None
        self.turns.actions.judge(user.pause, user.speech_start, user.text)

    def consider(self, t: float) -> None:
        """Commit the user's turn when what is known says it is over; else wait for what is missing."""
        turns = self.turns
        user, policy = turns.user, turns.policy
        if not user.finals:
            return
        if user.stt_ended:
            turns.commit(t, user.decided_by or "stt")
            return
        if not turns.judging:
            turns.commit(t, policy.detector)
            return
        if user.speaking:
            return
        if user.speech_end is None:
            user.speech_end = t  # no edge told of the pause: the final marks it
        if user.verdict is None:
            if user.judging != user.pause:
                self.request()
            turns.at("end_of_turn", user.speech_end + policy.timings.max_s, self._overdue)
            return
        due = user.speech_end + policy.timings.wait(user.verdict, user.text, policy.language, policy.transcript_rules)
        if t >= due - 0.001:
            turns.commit(t, policy.detector)
        else:
            turns.at("end_of_turn", due, self.consider)

    def _overdue(self, t: float) -> None:
        user = self.turns.user
        if user.verdict is None and not user.speaking and user.finals:
            self.turns.commit(t, "max_wait")
