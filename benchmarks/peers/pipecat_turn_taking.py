"""Runs inside the Pipecat 1.14 side environment: the turn-taking scenario through a Pipecat pipeline.

``python pipecat_turn_taking.py default|eager SCENARIO.json AUDIO.npy`` prints one JSON line:
the stream times (seconds) at which Pipecat committed user turns (``UserStoppedSpeakingFrame``)
and at which bot audio reached the end of the pipeline.

The pipeline is Pipecat's recommended shape: input audio → STT → user aggregator (Silero VAD
as ``vad_analyzer``, the default turn strategies) → LLM → TTS → output, with the scenario's
simulated services written the way Pipecat's own services are:

- ``default``: a Deepgram-like STT (interim and final ``TranscriptionFrame``s, Deepgram's
  ``ttfs_p99_latency``) and ``UserTurnStrategies()``: VAD and transcription start a turn,
  ``TurnAnalyzerUserTurnStopStrategy(LocalSmartTurnAnalyzerV3())`` ends it;
- ``eager``: a Flux-like STT built on ``EagerEndOfTurnSTTServiceMixin`` with eager end of turn
  on, which pushes what Pipecat's ``DeepgramFluxSTTService`` pushes for each Flux event and
  recommends ``EagerUserTurnStrategies()`` in its ``STTMetadataFrame``.

The LLM (on ``LLMService``, so Pipecat's speculation gate holds an eager response) and the TTS
(on ``TTSService``) have the scenario's latencies. Only numpy, Pipecat and this folder's
``turn_scenario`` twin are imported: voicekit is not.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
logger.remove()
if "--debug" in sys.argv:
    logger.add(sys.stderr, level="DEBUG")

from pipecat.audio.vad.silero import SileroVADAnalyzer  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    StartFrame,
    STTMetadataFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.services.llm_service import LLMService  # noqa: E402
from pipecat.services.stt_latency import DEEPGRAM_TTFS_P99  # noqa: E402
from pipecat.services.stt_service import STTService  # noqa: E402
from pipecat.services.tts_service import TTSService  # noqa: E402
from pipecat.turns.eager_end_of_turn_mixin import EagerEndOfTurnSTTServiceMixin  # noqa: E402
from pipecat.utils.time import time_now_iso8601  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402
from turn_scenario import (  # noqa: E402
    FRAME_S,
    LLM_CHUNK_S,
    LLM_FIRST_S,
    RATE,
    REPLY,
    TTS_FIRST_S,
    Scenario,
    deepgram_like,
    flux_like,
)

CLOCK: dict[str, float] = {}  # "t0": when stream time 0 was, on time.monotonic()


def stream_time() -> float:
    return time.monotonic() - CLOCK["t0"]


class Microphone(FrameProcessor):
    """Pushes the scenario's audio as 20 ms frames, each at the end of its span."""

    def __init__(self, audio: np.ndarray, done: asyncio.Event) -> None:
        super().__init__()
        self._audio, self._done = audio.astype("<i2").tobytes(), done

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.create_task(self._feed())

    async def _feed(self) -> None:
        step = int(RATE * FRAME_S) * 2
        CLOCK["t0"] = time.monotonic()
        for i, offset in enumerate(range(0, len(self._audio), step)):
            delay = CLOCK["t0"] + (i + 1) * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = self._audio[offset : offset + step].ljust(step, b"\0")
            await self.push_frame(InputAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1))
        self._done.set()


class ScriptedSTT(STTService):
    """Deepgram-like: the scenario's interim and final transcripts at their times."""

    def __init__(self, scenario: Scenario, **kwargs: object) -> None:
        super().__init__(ttfs_p99_latency=DEEPGRAM_TTFS_P99, **kwargs)
        self._events = deepgram_like(scenario)
        self._started = False

    async def run_stt(self, audio: bytes):  # type: ignore[no-untyped-def]
        if not self._started:
            self._started = True
            self.create_task(self._play())
        yield None

    async def _play(self) -> None:
        for event in self._events:
            delay = CLOCK["t0"] + event.t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if event.kind == "interim":
                await self.push_frame(InterimTranscriptionFrame(event.text, "user", time_now_iso8601()))
            else:
                await self.push_frame(TranscriptionFrame(event.text, "user", time_now_iso8601()))


class ScriptedFluxSTT(EagerEndOfTurnSTTServiceMixin, STTService):
    """Flux-like: what Pipecat's Deepgram Flux service pushes for each Flux event, at its time."""

    def __init__(self, scenario: Scenario, **kwargs: object) -> None:
        super().__init__(enable_eager_end_of_turn=True, ttfs_p99_latency=DEEPGRAM_TTFS_P99, **kwargs)
        self._events = flux_like(scenario)
        self._started = False

    def service_metadata_frame(self) -> STTMetadataFrame:
        frame = super().service_metadata_frame()
        frame.user_turn_strategies = self.recommended_user_turn_strategies(enable_interruptions=True)
        return frame

    async def run_stt(self, audio: bytes):  # type: ignore[no-untyped-def]
        if not self._started:
            self._started = True
            self.create_task(self._play())
        yield None

    async def _play(self) -> None:
        for event in self._events:
            delay = CLOCK["t0"] + event.t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if event.kind == "start_of_turn":
                await self.broadcast_frame(ProposedUserStartedSpeakingFrame)
            elif event.kind == "update" and event.text:
                await self.push_frame(InterimTranscriptionFrame(event.text, "user", time_now_iso8601()))
            elif event.kind == "eager":
                await self._push_eager_end_of_turn(event.text, user_id="user")
            elif event.kind == "resumed":
                await self._cancel_eager_end_of_turn()
            elif event.kind == "end_of_turn":
                self._clear_eager_end_of_turn()
                await self.push_frame(TranscriptionFrame(event.text, "user", time_now_iso8601(), finalized=True))
                await self.broadcast_frame(ProposedUserStoppedSpeakingFrame)


class ScriptedLLM(LLMService):
    """First text 300 ms after the context arrives, then the reply's chunks 30 ms apart."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            asked = time.monotonic()
            await self.push_frame(LLMFullResponseStartFrame())
            for i, chunk in enumerate(REPLY):
                delay = asked + LLM_FIRST_S + i * LLM_CHUNK_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._push_llm_text(chunk)
            await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)


class ScriptedTTS(TTSService):
    """First audio 120 ms after it receives text."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(sample_rate=24000, **kwargs)

    async def run_tts(self, text: str, context_id: str):  # type: ignore[no-untyped-def]
        await asyncio.sleep(TTS_FIRST_S)
        samples = int(24000 * 0.03 * len(text))
        yield TTSAudioRawFrame(bytes(samples * 2), 24000, 1, context_id=context_id)


class Speaker(FrameProcessor):
    """The output: when bot audio arrives."""

    def __init__(self, starts: list[float]) -> None:
        super().__init__()
        self._starts = starts

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame) and "t0" in CLOCK:
            self._starts.append(stream_time())
        await self.push_frame(frame, direction)


class TurnProbe(FrameProcessor):
    """After the user aggregator: when a user turn was committed."""

    def __init__(self, commits: list[float]) -> None:
        super().__init__()
        self._commits = commits

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, UserStoppedSpeakingFrame) and "t0" in CLOCK:
            self._commits.append(stream_time())
        await self.push_frame(frame, direction)


async def main(config: str, scenario_path: Path, audio_path: Path) -> None:
    scenario = Scenario.load(scenario_path)
    audio = np.load(audio_path)
    commits: list[float] = []
    starts: list[float] = []
    done = asyncio.Event()
    stt = ScriptedSTT(scenario) if config == "default" else ScriptedFluxSTT(scenario)
    context = LLMContext([{"role": "system", "content": "You are a helpful assistant."}])
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            Microphone(audio, done),
            stt,
            aggregators.user(),
            TurnProbe(commits),
            ScriptedLLM(),
            ScriptedTTS(),
            Speaker(starts),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=24000))

    async def stop_at_the_end() -> None:
        await done.wait()
        await asyncio.sleep(1.0)
        await worker.queue_frame(EndFrame())

    stopper = asyncio.create_task(stop_at_the_end())
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
    stopper.cancel()
    print(json.dumps({"commits": commits, "audio_starts": starts}))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--debug"]
    asyncio.run(main(args[0], Path(args[1]), Path(args[2])))
