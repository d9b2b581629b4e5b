"""``voicekit bench``: conversation turns from audio files, timed per stage.

Each turn plays one input file in real time, then silence until the bot has answered
and finished speaking, so every turn is measured the way a person would experience it.
"""

from __future__ import annotations

import asyncio
import json

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voicekit.audio.pcm import frame_bytes
from voicekit.audio.sinks import NullSink
from voicekit.audio.wav import load_pcm
from voicekit.clock import now
from voicekit.engine.metrics import STAGE_LABELS, STAGES, summarize
from voicekit.events import BotTurn, Event, TurnMetrics
from voicekit.settings import settings

SCHEMA_VERSION = 1
FRAME_MS = 20


@dataclass
class BenchRequest:
    profile: str
    inputs: Sequence[Path]
    turns: int = 3
    overrides: Sequence[str] = ()
    turn_timeout_s: float = field(default_factory=lambda: settings().bench_turn_timeout)


@dataclass
class BenchReport:
    """The JSON written by ``--json`` (see docs/bench.md for the schema)."""

    profile: str
    inputs: list[str]
    turns_requested: int
    turns_completed: int
    backends: dict[str, str]
    stages: dict[str, dict[str, Any]]
    turns: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


class TurnDrivenSource:
    """Plays each input in real time, then silence until the bot's turn is over."""

    def __init__(self, clips: Sequence[bytes], turns: int, timeout_s: float) -> None:
        self.clips = clips
        self.turns = turns
        self.timeout_s = timeout_s
        self.turn_over = asyncio.Event()
        self.on_turn: Callable[[int], None] = lambda index: None

    def observe(self, event: Event) -> None:
        if isinstance(event, BotTurn):
            self.turn_over.set()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        step = frame_bytes(16000, FRAME_MS)
        silent = bytes(step)
        next_at = now()
        for turn in range(self.turns):
            self.turn_over.clear()
            clip = self.clips[turn % len(self.clips)]
            for offset in range(0, len(clip), step):
                next_at = await _pace(next_at)
                yield clip[offset : offset + step].ljust(step, b"\0")
            deadline = now() + self.timeout_s
            while not self.turn_over.is_set() and now() < deadline:
                next_at = await _pace(next_at)
                yield silent
            for _ in range(300 // FRAME_MS):  # a breath between turns
                next_at = await _pace(next_at)
                yield silent
            self.on_turn(turn + 1)


async def _pace(next_at: float) -> float:
    delay = next_at - now()
    if delay > 0:
        await asyncio.sleep(delay)
    return next_at + FRAME_MS / 1000


async def run_bench(request: BenchRequest, on_turn: Callable[[int], None] | None = None) -> BenchReport:
    """Run the turns and summarise every stage."""
    from voicekit.engine.runner import ChatRequest, prepare, run_prepared

    clips = [load_pcm(path) + bytes(frame_bytes(16000, 200)) for path in request.inputs]
    source = TurnDrivenSource(clips, request.turns, request.turn_timeout_s)
    if on_turn is not None:
        source.on_turn = on_turn
    metrics: list[TurnMetrics] = []
    chat = ChatRequest(
        profile=request.profile,
        overrides=request.overrides,
        source=source,
        observers=[source.observe, lambda e: metrics.append(e) if isinstance(e, TurnMetrics) else None],
        sink_factory=lambda rate: NullSink(rate, realtime=True),
    )
    conversation, finish = await prepare(chat)
    await run_prepared(conversation, finish)
    summary = summarize(metrics)
    stages = {
        stage: {"label": STAGE_LABELS[stage], "count": s.count, "p50": s.p50, "p95": s.p95, "max": s.max}
        for stage, s in summary.items()
    }
    backends = {role: name for role, name in (metrics[0].backends if metrics else ())}
    return BenchReport(
        profile=request.profile,
        inputs=[str(p) for p in request.inputs],
        turns_requested=request.turns,
        turns_completed=len(metrics),
        backends=backends,
        stages=stages,
        turns=[{k: v for k, v in asdict(m).items() if k not in ("backends",)} for m in metrics],
    )


def plot(report: BenchReport, path: Path) -> None:
    """A stacked bar per turn: STT, LLM first token, output first audio, the rest."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        from voicekit.errors import MissingExtraError

        raise MissingExtraError("matplotlib", "plot") from exc
    turns = [t["turn"] for t in report.turns]
    parts = [
        ("stt_ms", "STT final"),
        ("llm_ttft_ms", "LLM first token"),
        ("output_ttfa_ms", "first audio"),
        ("engine_ms", "engine"),
    ]
    fig, ax = plt.subplots(figsize=(max(5, len(turns) * 0.8 + 2), 4))
    bottom = [0.0] * len(turns)
    for key, label in parts:
        values = [float(t.get(key) or 0.0) for t in report.turns]
        ax.bar(turns, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    v2v = [float(t.get("voice_to_voice_ms") or 0.0) for t in report.turns]
    ax.plot(turns, v2v, "k_", markersize=20, label="voice-to-voice")
    ax.set_xlabel("turn")
    ax.set_ylabel("ms")
    ax.set_title(f"voicekit bench — {report.profile}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["STAGES", "BenchReport", "BenchRequest", "plot", "run_bench"]
