"""Turn-taking side by side: voicekit's configurations and Pipecat 1.14 on one scripted scenario.

The scenario, the simulated services and the measures are in ``turn_scenario.py`` (shared,
word for word, by both frameworks). voicekit runs here, with its real VAD (webrtc), turn-taking,
detectors and playback; Pipecat runs in its own environment (``benchmarks/peers``, made on
first use; never imported by voicekit) through ``peers/pipecat_turn_taking.py``, configured as
its examples do: Silero VAD on the user aggregator, ``UserTurnStrategies()`` (smart-turn v3)
with a Deepgram-like STT (``config: default``), and a Flux-like STT with eager end of turn, for
which Pipecat installs ``EagerUserTurnStrategies()`` (``config: eager``).

Prints one JSON line per configuration: ``framework``, ``config``, ``v2v_p50_ms``,
``v2v_p95_ms``, ``false_cutoffs``, ``late_turns``, ``n``, plus ``preemptive_hits``/``misses``
for voicekit. Each configuration replays the scenario in real time (about a minute).

``python benchmarks/turn_taking.py`` (all) or ``--configs silence,flux+preemptive,pipecat:default``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from turn_scenario import (  # noqa: E402
    FRAME_S,
    LLM_CHUNK_S,
    LLM_FIRST_S,
    RATE,
    REPLY,
    TTS_FIRST_S,
    Scenario,
    STTEvent,
    build,
    deepgram_like,
    flux_like,
    measure,
)

from voicekit.audio.sinks import AudioSink  # noqa: E402
from voicekit.clock import now  # noqa: E402
from voicekit.engine.conversation import Conversation  # noqa: E402
from voicekit.events import (  # noqa: E402
    EagerEndOfTurn,
    EndOfTurn,
    Event,
    Final,
    Interim,
    LLMDone,
    LLMEvent,
    SpeechStarted,
    TextDelta,
    TurnMetrics,
    TurnResumed,
    UserTurn,
)
from voicekit.options import BackendOptions  # noqa: E402
from voicekit.profiles.model import AudioConfig, TurnsConfig  # noqa: E402
from voicekit.roles import LLM, STT, Capabilities, Message, STTStream  # noqa: E402
from voicekit.testing.scripted import ScriptedOutput  # noqa: E402

VOICEKIT_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "silence": ("deepgram", {}),
    "preemptive": ("deepgram", {"preemptive": True}),
    "smart_turn": ("deepgram", {"detector": "smart_turn"}),
    "smart_turn+preemptive": ("deepgram", {"detector": "smart_turn", "preemptive": True}),
    "flux": ("flux", {}),
    "flux+preemptive": ("flux", {"preemptive": True}),
}
PIPECAT_CONFIGS = ("default", "eager")


class StreamClock:
    """When the scenario's stream time 0 was, on the wall clock (set when the first frame's span starts)."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.started = asyncio.Event()

    def start(self) -> None:
        self.t0 = now()
        self.started.set()

    def stream_time(self, t: float) -> float:
        assert self.t0 is not None
        return t - self.t0


class ScenarioSTT(STT):
    """The simulated STT: events at the scenario's times, whatever the audio."""

    Options = BackendOptions
    capabilities = Capabilities(streaming=True, interim_results=True)

    def __init__(self, events: Sequence[STTEvent], clock: StreamClock) -> None:
        super().__init__()
        self.events, self.clock = events, clock
        self.name = "scenario"

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> STTStream:
        return ScenarioStream(self)


class ScenarioStream(STTStream):
    def __init__(self, stt: ScenarioSTT) -> None:
        super().__init__()
        self.stt = stt

    def push_audio(self, pcm: bytes) -> None:
        """The audio is not listened to: the script says what was heard."""

    async def run(self) -> None:
        clock = self.stt.clock
        await clock.started.wait()
        assert clock.t0 is not None
        open_turn = False
        for event in self.stt.events:
            delay = clock.t0 + event.t - now()
            if delay > 0:
                await asyncio.sleep(delay)
            if event.kind in ("interim", "update") and event.text:
                self.emit(Interim(event.text))
            elif event.kind == "final":
                self.emit(Final(event.text))
            elif event.kind == "start_of_turn":
                open_turn = True
                self.emit(SpeechStarted(source="stt"))
            elif event.kind == "eager":
                self.emit(EagerEndOfTurn(event.text, 0.6))
            elif event.kind == "resumed":
                self.emit(TurnResumed())
            elif event.kind == "end_of_turn":
                open_turn = False
                self.emit(Final(event.text))
                self.emit(EndOfTurn(0.9))
        del open_turn
        await asyncio.sleep(LATE_TAIL_S)


LATE_TAIL_S = 1.0


class ScenarioLLM(LLM):
    """First text 300 ms after the request, then the reply's chunks 30 ms apart."""

    Options = BackendOptions
    capabilities = Capabilities(streaming=True)

    def __init__(self) -> None:
        super().__init__()
        self.name = "scenario"

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        return self._reply(now())

    async def _reply(self, asked: float) -> AsyncIterator[LLMEvent]:
        for i, chunk in enumerate(REPLY):
            delay = asked + LLM_FIRST_S + i * LLM_CHUNK_S - now()
            if delay > 0:
                await asyncio.sleep(delay)
            yield TextDelta(chunk)
        yield LLMDone("".join(REPLY))


class StampingSink(AudioSink):
    def __init__(self, rate: int) -> None:
        super().__init__(rate, realtime=True)
        self.starts: list[float] = []

    async def play(self, pcm: bytes) -> float:
        started = await super().play(pcm)
        self.starts.append(started)
        return started


async def frames(audio: np.ndarray, clock: StreamClock) -> AsyncIterator[bytes]:
    """20 ms frames, each delivered at the end of its span."""
    step = int(RATE * FRAME_S)
    data = audio.astype("<i2").tobytes()
    clock.start()
    assert clock.t0 is not None
    for i, offset in enumerate(range(0, len(data), step * 2)):
        delay = clock.t0 + (i + 1) * FRAME_S - now()
        if delay > 0:
            await asyncio.sleep(delay)
        yield data[offset : offset + step * 2].ljust(step * 2, b"\0")


async def run_voicekit(config: str, scenario: Scenario, audio: np.ndarray, model_path: str) -> dict[str, Any]:
    from voicekit.engine.runner import _make_vad, make_turn_detector, turn_policy
    from voicekit.registry import load_registry

    stt_kind, turns_options = VOICEKIT_CONFIGS[config]
    turns_options = dict(turns_options)
    if turns_options.get("detector") == "smart_turn":
        turns_options["detector"] = {"use": "smart_turn", "model_path": model_path}
    profile = SimpleNamespace(
        turns=TurnsConfig.model_validate({"mode": "full_duplex", **turns_options}),
        audio=AudioConfig(),
        language="en",
        where=lambda path: "benchmark",
    )
    clock = StreamClock()
    events = deepgram_like(scenario) if stt_kind == "deepgram" else flux_like(scenario)
    sink = StampingSink(24000)
    seen: list[Event] = []
    conversation = Conversation(
        stt=ScenarioSTT(events, clock),
        llm=ScenarioLLM(),
        output=ScriptedOutput(ScriptedOutput.Options(first_audio_ms=TTS_FIRST_S * 1000, ms_per_char=30, realtime=True)),
        sink=sink,
        source=frames(audio, clock),
        mode="full_duplex",
        vad=_make_vad(profile),
        policy=turn_policy(profile),
        detector=make_turn_detector(profile, load_registry()),
        observers=[seen.append],
    )
    await conversation.run()
    commits = [clock.stream_time(e.t) for e in seen if isinstance(e, UserTurn)]
    starts = [clock.stream_time(t) for t in sink.starts]
    metrics = [e for e in seen if isinstance(e, TurnMetrics)]
    result = {"framework": "voicekit", "config": config, **measure(scenario, commits, starts)}
    result["preemptive_hits"] = sum(1 for m in metrics if m.preemptive == "hit")
    result["preemptive_discarded"] = sum(m.preemptive_discarded for m in metrics)
    detector_ms = [m.detector_ms for m in metrics if m.detector_ms is not None]
    if detector_ms:
        result["detector_ms_p50"] = round(float(np.median(detector_ms)), 1)
    return result


def run_pipecat(config: str, folder: Path, scenario: Scenario) -> dict[str, Any]:
    from benchmarks.peers import peer_python

    python = peer_python("pipecat")
    script = Path(__file__).resolve().parent / "peers" / "pipecat_turn_taking.py"
    done = subprocess.run(
        [str(python), str(script), config, str(folder / "scenario.json"), str(folder / "audio.npy")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"pipecat {config} failed:\n{done.stderr[-3000:]}")
    times = json.loads(done.stdout.strip().splitlines()[-1])
    return {"framework": "pipecat", "config": config, **measure(scenario, times["commits"], times["audio_starts"])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    every = [*VOICEKIT_CONFIGS, *(f"pipecat:{c}" for c in PIPECAT_CONFIGS)]
    parser.add_argument("--configs", default=",".join(every), help=f"comma-separated, of: {', '.join(every)}")
    parser.add_argument("--model-path", help="smart-turn-v3.2-cpu.onnx (default: read out of the pipecat-ai wheel)")
    args = parser.parse_args(argv)
    from voicekit.testing import synthesize

    scenario, audio = build(lambda text: np.frombuffer(synthesize(text, "en", pad_ms=0), dtype="<i2"))
    model_path = args.model_path
    if model_path is None:
        from tests.smart_turn_model import smart_turn_model

        model_path = str(smart_turn_model())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenario.save(folder / "scenario.json")
        np.save(folder / "audio.npy", audio)
        for config in args.configs.split(","):
            if config.startswith("pipecat:"):
                result = run_pipecat(config.split(":", 1)[1], folder, scenario)
            else:
                result = asyncio.run(run_voicekit(config, scenario, audio, model_path))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
