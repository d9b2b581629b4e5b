"""The closed set of events that flow through a conversation.

Every event is a frozen, slotted dataclass stamped with ``t``, a monotonic time
from :func:`voicekit.clock.now` taken when the event is made. Metrics are derived
from these stamps only, never measured inside plugins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from voicekit.clock import now


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events: ``t`` is when it happened, in :func:`voicekit.clock.now` seconds."""

    t: float = field(default_factory=now)


# --- speech recognition -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted(Event):
    """The user started speaking (from the VAD, the STT service or a realtime model)."""

    source: str = "stt"


@dataclass(frozen=True, slots=True)
class SpeechEnded(Event):
    """The user stopped speaking (VAD end of speech, or the service's endpoint)."""

    source: str = "vad"


@dataclass(frozen=True, slots=True)
class Interim(Event):
    """A partial transcript that may still change."""

    text: str


@dataclass(frozen=True, slots=True)
class Final(Event):
    """A final transcript of one stretch of speech; it will not change."""

    text: str
    confidence: float | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class UtteranceEnd(Event):
    """The service decided the user's utterance is over (after one or more finals)."""


@dataclass(frozen=True, slots=True)
class EagerEndOfTurn(Event):
    """An STT with its own end-of-turn detection thinks the user may have finished
    (``text``: the turn's transcript so far). The turn may still resume (:class:`TurnResumed`);
    turn-taking may start a reply on ``text`` ahead of time, and holds it until the turn ends."""

    text: str
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class TurnResumed(Event):
    """The user went on speaking after an :class:`EagerEndOfTurn`: the turn is not over."""


@dataclass(frozen=True, slots=True)
class EndOfTurn(Event):
    """An STT with its own end-of-turn detection decided the user's turn is over. Its
    :class:`Final` (the whole turn's transcript) comes just before; turn-taking answers at once,
    whatever the local end-of-turn detector would say."""

    confidence: float | None = None


# --- language model -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta(Event):
    """A piece of the bot's reply text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class LLMDone(Event):
    """The bot's reply is complete; ``text`` is all of it."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class Interrupted(Event):
    """A realtime model stopped its own reply because the user spoke."""


@dataclass(frozen=True, slots=True)
class ToolCall(Event):
    """The model asks for a tool to run (yielded by an LLM that was given tools).

    ``id`` names this call among the turn's calls (the vendor's id, or one the backend
    makes up when its service has none); ``arguments`` is the JSON object the model wrote,
    as text, exactly as it came (the engine parses and checks it). An LLM yields its calls,
    then its ``LLMDone``; the engine runs them and asks the model again with the results.
    """

    id: str
    name: str
    arguments: str = "{}"


ToolStatus = Literal["ok", "error", "timeout", "refused", "cancelled"]


@dataclass(frozen=True, slots=True)
class ToolResult(Event):
    """What a tool call gave back, as the model receives it (made by the engine).

    ``content`` is text (a tool's error message when ``status`` is not ``"ok"``), capped in
    size; ``status`` says how the call ended: ``ok``, ``error`` (the tool raised or does not
    exist), ``timeout``, ``refused`` (a destructive tool the profile does not allow) or
    ``cancelled`` (the user interrupted). ``duration_ms`` is how long the tool ran.
    """

    id: str
    name: str
    content: str
    status: ToolStatus = "ok"
    duration_ms: float | None = None

    @property
    def is_error(self) -> bool:
        return self.status != "ok"


@dataclass(frozen=True, slots=True)
class ToolCallsCancelled(Event):
    """A realtime model withdrew tool calls it had asked for (the user interrupted)."""

    ids: tuple[str, ...]


# --- output -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioOut(Event):
    """Bot audio: 16-bit little-endian mono PCM at ``sample_rate``."""

    pcm: bytes
    sample_rate: int


@dataclass(frozen=True, slots=True)
class SpeakingStarted(Event):
    """The output started speaking ``text`` (one sentence)."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class SpeakingEnded(Event):
    """The output finished speaking ``text`` (one sentence)."""

    text: str = ""


# --- conversation (made by the engine) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class UserTurn(Event):
    """The user's complete utterance, as it goes to the language model."""

    text: str
    turn: int


@dataclass(frozen=True, slots=True)
class BotSentence(Event):
    """A sentence of the reply handed to the output."""

    text: str
    turn: int


@dataclass(frozen=True, slots=True)
class BotTurn(Event):
    """The bot's turn ended; ``text`` is what was actually spoken."""

    text: str
    turn: int
    interrupted: bool = False
    resumed: int = 0  # times the reply went on after a false interruption


@dataclass(frozen=True, slots=True)
class BargeIn(Event):
    """The user started speaking over the bot; the bot's turn was cut."""

    turn: int


@dataclass(frozen=True, slots=True)
class BotResumed(Event):
    """The bot stopped for speech that brought no words within ``false_interruption_ms``
    (a false interruption), and goes on: ``text`` is what it says again."""

    turn: int
    text: str


@dataclass(frozen=True, slots=True)
class TurnDecision(Event):
    """Turn-taking decided the user's turn ended: who decided (``detector``: ``silence``,
    ``smart_turn``, ``stt`` for a service's end of turn, ``max_wait``, or a plugin's name), the
    model's probability that the turn was complete and its compute time, when it judged."""

    turn: int
    detector: str
    probability: float | None = None
    compute_ms: float | None = None


@dataclass(frozen=True, slots=True)
class TurnMetrics(Event):
    """Stage timings of one turn in milliseconds (``None`` where a stage did not happen),
    with how its end was decided and how a preemptive reply fared."""

    turn: int
    stt_ms: float | None = None
    llm_ttft_ms: float | None = None
    output_ttfa_ms: float | None = None
    voice_to_voice_ms: float | None = None
    turn_ms: float | None = None
    engine_ms: float | None = None  # the part of voice-to-voice spent in voicekit, not in services
    tool_ms: float | None = None  # time tools ran during the turn (rounds in parallel count once)
    backends: tuple[tuple[str, str], ...] = ()
    end_of_turn_ms: float | None = None  # end of speech → the turn was committed
    detector: str | None = None  # who decided that the user's turn ended (see TurnDecision)
    detector_probability: float | None = None  # the detector's probability that the turn was complete
    detector_ms: float | None = None  # the detector's compute time for its last judgement
    preemptive: Literal["hit", "miss"] | None = None  # None: no reply was started ahead of the turn's end
    preemptive_saved_ms: float | None = None  # a hit: how much earlier the reply started than the commit
    preemptive_discarded: int = 0  # replies started ahead and thrown away in this turn
    preemptive_discarded_tokens: int = 0  # text pieces (streamed tokens) those replies had produced


@dataclass(frozen=True, slots=True)
class BackendSwitched(Event):
    """A backend failed after its retries, and the next backend of its role's ``fallback:``
    took over (``reason`` is the failure, in one line)."""

    role: str
    failed: str
    now_serving: str
    reason: str


@dataclass(frozen=True, slots=True)
class ErrorEvent(Event):
    """A backend failed; ``fatal`` ends the conversation."""

    message: str
    fatal: bool = True
    stage: Literal["input", "stt", "llm", "output", "sink", "engine"] = "engine"


STTEvent = SpeechStarted | SpeechEnded | Interim | Final | UtteranceEnd | EagerEndOfTurn | TurnResumed | EndOfTurn
LLMEvent = TextDelta | LLMDone | ToolCall
OutputEvent = AudioOut | SpeakingStarted | SpeakingEnded
RealtimeEvent = (
    SpeechStarted
    | SpeechEnded
    | Interim
    | Final
    | TextDelta
    | AudioOut
    | Interrupted
    | LLMDone
    | ToolCall
    | ToolCallsCancelled
)
ConversationEvent = (
    STTEvent
    | LLMEvent
    | OutputEvent
    | Interrupted
    | ToolResult
    | ToolCallsCancelled
    | UserTurn
    | BotSentence
    | BotTurn
    | BargeIn
    | BotResumed
    | TurnDecision
    | TurnMetrics
    | BackendSwitched
    | ErrorEvent
)
