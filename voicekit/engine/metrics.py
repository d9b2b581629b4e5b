"""Per-turn stage timings, derived only from event timestamps taken by the core."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from voicekit.events import TurnMetrics

STAGES = (
    "stt_ms", "end_of_turn_ms", "llm_ttft_ms", "tool_ms", "output_ttfa_ms", "voice_to_voice_ms", "turn_ms",
    "engine_ms",
)  # fmt: skip
STAGE_LABELS = {
    "stt_ms": "end of speech → STT final",
    "end_of_turn_ms": "end of speech → turn committed",
    "llm_ttft_ms": "LLM request → LLM first token (or first tool call)",
    "tool_ms": "tools running (turns that called tools)",
    "output_ttfa_ms": "first sentence → first audio",
    "voice_to_voice_ms": "end of speech → first audio out",
    "turn_ms": "end of speech → end of turn",
    "engine_ms": "engine's own share of voice-to-voice",
}


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 2)


@dataclass
class TurnClock:
    """Timestamps of one turn's milestones (``voicekit.clock.now`` seconds)."""

    turn: int
    speech_end: float | None = None  # the user stopped speaking
    final: float | None = None  # the STT's final transcript (the turn starts here)
    first_token: float | None = None
    first_sentence: float | None = None
    first_output: float | None = None  # first AudioOut (or SpeakingStarted for avatars) from the output
    first_played: float | None = None  # first bot audio reached the sink
    end: float | None = None
    tool_s: float | None = None  # wall time tool rounds took (parallel calls count once)

    def add_tool_time(self, seconds: float) -> None:
        """A tool round took ``seconds``."""
        self.tool_s = (self.tool_s or 0.0) + seconds

    requested: float | None = None  # the LLM was asked (at the final, or ahead of it: preemptive)
    committed: float | None = None  # turn-taking decided the user's turn ended
    decision: TurnDecisionInfo | None = None
    preemption: PreemptionInfo = field(default_factory=lambda: PreemptionInfo())

    def mark(self, name: str, t: float) -> None:
        """Record a milestone the first time it happens."""
        if getattr(self, name) is None:
            setattr(self, name, t)

    def engine_share(self) -> float | None:
        """Time from the output handing over its first audio to that audio reaching the
        sink: resampling, queueing and playback scheduling, all voicekit's own."""
        return _ms(self.first_output, self.first_played)

    def metrics(self, backends: Sequence[tuple[str, str]] = ()) -> TurnMetrics:
        start = self.speech_end
        decision, pre = self.decision, self.preemption
        return TurnMetrics(
            turn=self.turn,
            stt_ms=_ms(start, self.final),
            llm_ttft_ms=_ms(self.requested or self.final, self.first_token),
            output_ttfa_ms=_ms(self.first_sentence, self.first_output),
            voice_to_voice_ms=_ms(start, self.first_played),
            turn_ms=_ms(start, self.end),
            engine_ms=self.engine_share(),
            tool_ms=round(self.tool_s * 1000, 2) if self.tool_s is not None else None,
            backends=tuple(backends),
            end_of_turn_ms=_ms(start, self.committed),
            detector=decision.detector if decision else None,
            detector_probability=decision.probability if decision else None,
            detector_ms=decision.compute_ms if decision else None,
            preemptive=pre.outcome,
            preemptive_saved_ms=pre.saved_ms,
            preemptive_discarded=pre.discarded,
            preemptive_discarded_tokens=pre.discarded_tokens,
        )


@dataclass
class TurnDecisionInfo:
    """How the end of the user's turn was decided (see :class:`voicekit.events.TurnDecision`)."""

    detector: str
    probability: float | None = None
    compute_ms: float | None = None


@dataclass
class PreemptionInfo:
    """Replies started before the user's turn was confirmed, for one turn."""

    outcome: Literal["hit", "miss"] | None = None
    saved_ms: float | None = None
    discarded: int = 0
    discarded_tokens: int = 0

    def missed(self, tokens: int) -> None:
        self.discarded += 1
        self.discarded_tokens += tokens
        self.outcome = self.outcome or "miss"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class StageSummary:
    stage: str
    count: int
    p50: float | None
    p95: float | None
    max: float | None
    values: list[float] = field(default_factory=list)


def summarize(metrics: Iterable[TurnMetrics]) -> dict[str, StageSummary]:
    """p50 / p95 / max of each stage over many turns."""
    rows = list(metrics)
    out: dict[str, StageSummary] = {}
    for stage in STAGES:
        values = [v for m in rows if (v := getattr(m, stage)) is not None]
        out[stage] = StageSummary(
            stage,
            len(values),
            round(percentile(values, 50), 2) if values else None,
            round(percentile(values, 95), 2) if values else None,
            round(max(values), 2) if values else None,
            values,
        )
    return out


def format_turn(m: TurnMetrics) -> str:
    """A one-line summary for the live display."""
    parts = []
    for stage, label in (
        ("stt_ms", "stt"),
        ("llm_ttft_ms", "llm"),
        ("tool_ms", "tools"),
        ("output_ttfa_ms", "tts"),
        ("voice_to_voice_ms", "voice→voice"),
    ):
        value = getattr(m, stage)
        if value is not None:
            parts.append(f"{label} {value:.0f} ms")
    return " · ".join(parts) if parts else "no timings"
