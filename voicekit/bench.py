"""``voicekit bench``: conversation turns from audio files, timed per stage, for one or more profiles.

A turn is one utterance: each input file is split into utterances with the webrtc voice
activity detector (a file of two questions gives two turns), and each turn plays one
utterance in real time, then silence until the bot has answered and finished speaking,
so every turn is measured the way a person would experience it. Every profile hears the
same utterances in the same order. The report is one JSON document of
:mod:`voicekit.report`'s schema (``kind: bench``, one entry of ``runs`` per profile).
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
from voicekit.engine.metrics import STAGES
from voicekit.events import BotTurn, Event, TurnMetrics
from voicekit.report import SCHEMA_VERSION, backends_of, stage_summary, turn_record
from voicekit.settings import settings

FRAME_MS = 20
RATE = 16000
LEAD_S, TAIL_S = 0.2, 0.3  # audio kept before and after each detected utterance
SPLIT_SILENCE_MS = 400  # a pause this long ends an utterance, as it ends a turn by default (turns.end_of_speech_ms)


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech of an input file, with a little audio around it."""

    source: str
    start_s: float
    end_s: float
    pcm: bytes = field(repr=False)


def split_utterances(paths: Sequence[Path]) -> list[Utterance]:
    """Every utterance of every file, in order; a file with no speech is an error."""
    from voicekit.audio.vad import create_vad, detect_segments
    from voicekit.errors import AudioFormatError

    utterances: list[Utterance] = []
    for path in paths:
        pcm = load_pcm(path)
        segments = detect_segments(
            pcm, create_vad("webrtc", mode=3, min_speech_ms=150, min_silence_ms=SPLIT_SILENCE_MS)
        )
        if not segments:
            raise AudioFormatError(f"{path}: no speech found (a bench turn is one utterance of the input)")
        total_s = len(pcm) / 2 / RATE
        for index, (start, end) in enumerate(segments):
            before = segments[index - 1][1] if index else 0.0
            after = segments[index + 1][0] if index + 1 < len(segments) else total_s
            begin_s = max(before + (start - before) / 2, start - LEAD_S, 0.0)
            end_s = min(end + (after - end) / 2, end + TAIL_S, total_s)
            piece = pcm[int(begin_s * RATE) * 2 : int(end_s * RATE) * 2]
            utterances.append(Utterance(str(path), round(start, 3), round(end, 3), piece))
    return utterances


@dataclass
class BenchRequest:
    """What to bench: profiles, input files, how many turns (``None``: each utterance once)."""

    profiles: Sequence[str]
    inputs: Sequence[Path]
    turns: int | None = None
    overrides: Sequence[str] = ()
    turn_timeout_s: float = field(default_factory=lambda: settings().bench_turn_timeout)


@dataclass
class BenchRun:
    """One profile's turns and their per-stage summary."""

    profile: str
    backends: dict[str, str]
    turns_requested: int
    turns_completed: int  # utterances the bot answered within the turn timeout
    status: str = "ended"  # ended | failed
    reason: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    turns: list[dict[str, Any]] = field(default_factory=list)  # one per measured turn (TurnMetrics)


@dataclass
class BenchReport:
    """The JSON ``--json`` writes (docs/bench.md: schema and example)."""

    inputs: list[dict[str, Any]]
    turns_requested: int
    runs: list[BenchRun]
    schema_version: int = SCHEMA_VERSION
    kind: str = "bench"
    created_at: float = field(default_factory=time.time)
    #: profile -> the error that ended its run (not written: ``status``/``reason`` say it)
    errors: dict[str, BaseException] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "created_at": self.created_at,
            "inputs": self.inputs,
            "turns_requested": self.turns_requested,
            "runs": [asdict(run) for run in self.runs],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


class TurnDrivenSource:
    """Plays one utterance per turn in real time, then silence until the bot's turn is over."""

    def __init__(self, clips: Sequence[bytes], turns: int, timeout_s: float) -> None:
        self.clips = clips
        self.turns = turns
        self.timeout_s = timeout_s
        self.turn_over = asyncio.Event()
        self.answered = 0
        self.started_at: float | None = None
        self.on_turn: Callable[[int], None] = lambda index: None

    def observe(self, event: Event) -> None:
        if isinstance(event, BotTurn):
            self.turn_over.set()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        step = frame_bytes(RATE, FRAME_MS)
        silent = bytes(step)
        next_at = self.started_at = now()
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
            self.answered += self.turn_over.is_set()
            for _ in range(300 // FRAME_MS):  # a breath between turns
                next_at = await _pace(next_at)
                yield silent
            self.on_turn(turn + 1)


async def _pace(next_at: float) -> float:
    delay = next_at - now()
    if delay > 0:
        await asyncio.sleep(delay)
    return next_at + FRAME_MS / 1000


async def run_profile(
    profile: str,
    utterances: Sequence[Utterance],
    request: BenchRequest,
    on_turn: Callable[[int], None] | None = None,
    errors: dict[str, BaseException] | None = None,
) -> BenchRun:
    """Bench one profile on the utterances; a failure is the run's ``status``/``reason`` (and, in
    ``errors``, the exception itself), not raised: the next profile still runs."""
    from voicekit.engine.runner import ChatRequest, prepare, run_prepared

    turns = request.turns or len(utterances)
    source = TurnDrivenSource([u.pcm for u in utterances], turns, request.turn_timeout_s)
    if on_turn is not None:
        source.on_turn = on_turn
    metrics: list[TurnMetrics] = []
    chat = ChatRequest(
        profile=profile,
        overrides=request.overrides,
        source=source,
        observers=[source.observe, lambda e: metrics.append(e) if isinstance(e, TurnMetrics) else None],
        sink_factory=lambda rate: NullSink(rate, realtime=True),
    )
    run = BenchRun(profile, {}, turns, 0)
    try:
        conversation, finish = await prepare(chat)
        await run_prepared(conversation, finish)
    except Exception as exc:  # noqa: BLE001 - the command raises it once every profile had its turn
        run.status, run.reason = "failed", str(exc) or type(exc).__name__
        if errors is not None:
            errors[profile] = exc
    run.turns_completed = source.answered
    run.backends = backends_of(metrics)
    run.stages = stage_summary(metrics)
    run.turns = [turn_record(m, source.started_at) for m in metrics]
    return run


async def run_bench(
    request: BenchRequest,
    on_turn: Callable[[str, int], None] | None = None,
    *,
    utterances: Sequence[Utterance] | None = None,
) -> BenchReport:
    """Split the inputs into utterances and bench every profile on them, one after the other.

    Every profile is loaded first, so a missing key or a bad profile stops the bench before
    any turn is played. ``on_turn(profile, turns_done)`` follows the progress.
    """
    from voicekit.profiles import load_profile

    for profile in request.profiles:
        load_profile(profile, request.overrides)
    if utterances is None:
        utterances = split_utterances(request.inputs)
    turns = request.turns or len(utterances)
    runs = []
    errors: dict[str, BaseException] = {}
    for profile in request.profiles:

        def progress(done: int, profile: str = profile) -> None:
            if on_turn is not None:
                on_turn(profile, done)

        runs.append(await run_profile(profile, utterances, request, progress, errors))
    inputs: dict[str, list[list[float]]] = {}
    for u in utterances:
        inputs.setdefault(u.source, []).append([u.start_s, u.end_s])
    return BenchReport(
        inputs=[{"path": path, "utterances": spans} for path, spans in inputs.items()],
        turns_requested=turns,
        runs=runs,
        errors=errors,
    )


def load_report(path: Path) -> dict[str, Any]:
    """A bench or conversation report written by voicekit (``--json``, ``metrics.json``)."""
    from voicekit.errors import VoicekitError
    from voicekit.report import check_document

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VoicekitError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise VoicekitError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
    return check_document(data, str(path))


def runs_of(document: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The runs of a report: a bench's ``runs``, or a recorded conversation as one run."""
    if document.get("kind") == "bench":
        return [dict(run, source=source) for run in document.get("runs", [])]
    return [
        {
            "profile": document.get("profile", "?"),
            "backends": document.get("backends", {}),
            "stages": document.get("stages", {}),
            "turns": document.get("turns", []),
            "source": source,
        }
    ]


__all__ = ["STAGES", "BenchReport", "BenchRequest", "BenchRun", "Utterance", "run_bench", "split_utterances"]
