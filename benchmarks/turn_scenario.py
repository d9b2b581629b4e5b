"""The scripted turn-taking scenario any framework can replay (numpy and the standard library only).

Audio: espeak-ng (en-us) utterances at 16 kHz, each followed by 2.5 s of silence, fed in
real time as 20 ms frames (a frame is delivered at the end of its span); ``‖`` is a 350 ms
pause inside a sentence; the list is played twice. The services are simulated from the
script's timeline, identically for every framework:

- Deepgram-like STT: an interim every 250 ms while voiced (words revealed in proportion to
  the time spoken), a final 150 ms after the end of every speech segment (a pause too);
- Flux-like STT: StartOfTurn 250 ms after speech starts, Update every 250 ms while voiced,
  EagerEndOfTurn 200 ms after speech stops (a pause too), TurnResumed when speech resumes,
  EndOfTurn with the final transcript 400 ms after the end of the utterance;
- LLM: first text 300 ms after the request, then "Sure." " Here is" " my answer" " to that."
  30 ms apart; TTS: first audio 120 ms after it receives text.

Measured per utterance: v2v = first bot audio reaching the output − the end of the user's
last word; a false cut-off is a turn committed, or bot audio started, between the start of
a pause inside the sentence and the end of that utterance; a late turn gets no reply within
5 s (or before the next utterance).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RATE = 16000
FRAME_S = 0.02
LEAD_S = 0.5
PAUSE_S = 0.35
AFTER_S = 2.5
REPEAT = 2
UTTERANCES = (
    "what is the weather like today",
    "please book a table for two",
    "i would like to order ‖ a large pizza please",
    "i would like to order a pizza",
    "can you play some music",
    "remind me to call ‖ my mother tomorrow",
    "tell me a joke about cats",
)
INTERIM_EVERY_S = 0.25
FINAL_AFTER_S = 0.15
START_OF_TURN_S = 0.25
UPDATE_EVERY_S = 0.25
EAGER_AFTER_S = 0.2
END_OF_TURN_AFTER_S = 0.4
LLM_FIRST_S = 0.3
LLM_CHUNK_S = 0.03
REPLY = ("Sure.", " Here is", " my answer", " to that.")
TTS_FIRST_S = 0.12
LATE_S = 5.0


@dataclass
class Segment:
    start: float
    end: float
    words: list[str]


@dataclass
class Utterance:
    text: str
    segments: list[Segment]

    @property
    def start(self) -> float:
        return self.segments[0].start

    @property
    def end(self) -> float:
        return self.segments[-1].end

    @property
    def words(self) -> list[str]:
        return [w for s in self.segments for w in s.words]

    @property
    def pauses(self) -> list[tuple[float, float]]:
        return [(a.end, b.start) for a, b in zip(self.segments, self.segments[1:], strict=False)]


@dataclass
class Scenario:
    utterances: list[Utterance] = field(default_factory=list)
    duration: float = 0.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Scenario:
        data = json.loads(path.read_text())
        return cls(
            [Utterance(u["text"], [Segment(**s) for s in u["segments"]]) for u in data["utterances"]],
            data["duration"],
        )


def trim(pcm: np.ndarray, threshold: int = 200) -> np.ndarray:
    """Speech without the synthesizer's leading and trailing silence."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    return pcm[loud[0] : loud[-1] + 1] if loud.size else pcm[:0]


def build(synthesize: object) -> tuple[Scenario, np.ndarray]:
    """The scenario's audio (int16) and timeline; ``synthesize(text) -> int16 array`` speaks a part."""
    pieces: list[np.ndarray] = [np.zeros(int(LEAD_S * RATE), dtype=np.int16)]
    position = LEAD_S
    scenario = Scenario()
    for _ in range(REPEAT):
        for text in UTTERANCES:
            segments = []
            parts = [p.strip() for p in text.split("‖")]
            for i, part in enumerate(parts):
                speech = trim(synthesize(part))  # type: ignore[operator]
                segments.append(Segment(round(position, 4), round(position + speech.size / RATE, 4), part.split()))
                pieces.append(speech)
                position += speech.size / RATE
                gap = PAUSE_S if i < len(parts) - 1 else AFTER_S
                pieces.append(np.zeros(round(gap * RATE), dtype=np.int16))
                position += round(gap * RATE) / RATE
            scenario.utterances.append(Utterance(" ".join(parts), segments))
    audio = np.concatenate(pieces)
    scenario.duration = audio.size / RATE
    return scenario, audio


# --- the simulated STT --------------------------------------------------------------------------


@dataclass(frozen=True)
class STTEvent:
    t: float  # stream seconds
    kind: str  # interim | final | start_of_turn | update | eager | resumed | end_of_turn
    text: str = ""


def _revealed(u: Utterance, t: float) -> str:
    """The words of the utterance revealed in proportion to the time spoken by ``t``."""
    total = sum(s.end - s.start for s in u.segments)
    spoken = sum(max(0.0, min(t, s.end) - s.start) for s in u.segments)
    words = u.words
    count = min(len(words), math.floor(len(words) * spoken / total + 1e-9)) if total > 0 else 0
    return " ".join(words[:count])


def deepgram_like(scenario: Scenario) -> list[STTEvent]:
    events: list[STTEvent] = []
    for u in scenario.utterances:
        for i, seg in enumerate(u.segments):
            t = seg.start + INTERIM_EVERY_S
            while t < seg.end:
                text = _revealed(u, t)
                if text:
                    events.append(STTEvent(round(t, 4), "interim", text))
                t += INTERIM_EVERY_S
            del i
            events.append(STTEvent(round(seg.end + FINAL_AFTER_S, 4), "final", " ".join(seg.words)))
    return sorted(events, key=lambda e: e.t)


def flux_like(scenario: Scenario) -> list[STTEvent]:
    events: list[STTEvent] = []
    for u in scenario.utterances:
        started = u.start + START_OF_TURN_S
        events.append(STTEvent(round(started, 4), "start_of_turn", _revealed(u, started)))
        for i, seg in enumerate(u.segments):
            t = max(seg.start, started) + UPDATE_EVERY_S
            while t < seg.end:
                events.append(STTEvent(round(t, 4), "update", _revealed(u, t)))
                t += UPDATE_EVERY_S
            heard = " ".join(w for s in u.segments[: i + 1] for w in s.words)
            if i < len(u.segments) - 1:
                gap = u.segments[i + 1].start - seg.end
                if gap > EAGER_AFTER_S:
                    events.append(STTEvent(round(seg.end + EAGER_AFTER_S, 4), "eager", heard))
                    events.append(STTEvent(round(u.segments[i + 1].start, 4), "resumed"))
            else:
                events.append(STTEvent(round(seg.end + EAGER_AFTER_S, 4), "eager", heard))
                events.append(STTEvent(round(seg.end + END_OF_TURN_AFTER_S, 4), "end_of_turn", heard))
    return sorted(events, key=lambda e: e.t)


# --- the measures -------------------------------------------------------------------------------


def measure(scenario: Scenario, commits: list[float], audio_starts: list[float]) -> dict[str, object]:
    """v2v p50/p95, false cut-offs and late turns from stream times of commits and bot audio starts."""
    v2v: list[float] = []
    false_cutoffs = late = 0
    utterances = scenario.utterances
    for i, u in enumerate(utterances):
        for pause_start, _ in u.pauses:
            if any(pause_start <= t < u.end for t in [*commits, *audio_starts]):
                false_cutoffs += 1
        limit = u.end + LATE_S
        if i + 1 < len(utterances):
            limit = min(limit, utterances[i + 1].start)
        first = next((t for t in sorted(audio_starts) if u.end <= t < limit), None)
        if first is None:
            late += 1
        else:
            v2v.append((first - u.end) * 1000)
    return {
        "v2v_p50_ms": round(float(np.percentile(v2v, 50)), 1) if v2v else None,
        "v2v_p95_ms": round(float(np.percentile(v2v, 95)), 1) if v2v else None,
        "false_cutoffs": false_cutoffs,
        "late_turns": late,
        "n": len(utterances),
    }
