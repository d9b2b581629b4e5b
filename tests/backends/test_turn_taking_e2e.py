"""Turn-taking end to end: whole conversations with real detectors, real VAD and the Flux fake.

- A pause inside a sentence cuts the user off with ``silence`` but not with ``smart_turn`` at
  the same short VAD setting (smart-turn v3.2 from the pipecat-ai wheel, through onnxruntime).
- Preemptive replies on Deepgram Flux's eager end of turn: a hit plays only after the turn
  ended; a miss never reaches the sink; the history holds only committed transcripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tests.fakes.deepgram_flux import FakeFlux
from tests.smart_turn_model import smart_turn_model
from voicekit.audio.sinks import AudioSink
from voicekit.audio.vad import create_vad
from voicekit.clock import now
from voicekit.engine.conversation import Conversation
from voicekit.engine.end_of_turn import TurnPolicy
from voicekit.events import EagerEndOfTurn, EndOfTurn, Event, TurnMetrics, TurnResumed, UserTurn
from voicekit.options import RetryPolicy
from voicekit.plugins.stt.deepgram_flux import DeepgramFluxSTT
from voicekit.roles import BackendContext
from voicekit.testing import synthesize
from voicekit.testing.scripted import ScriptedLLM, ScriptedOutput, ScriptedSTT

RATE = 16000
FRAME = 640


class RecordingSink(AudioSink):
    """A paced sink that remembers when each chunk was written."""

    def __init__(self, rate: int) -> None:
        super().__init__(rate, realtime=True)
        self.writes: list[float] = []

    def _write(self, pcm: bytes) -> None:
        self.writes.append(now())


async def realtime_frames(pcm: bytes) -> AsyncIterator[bytes]:
    """20 ms frames, each delivered at the end of its span, as a microphone does."""
    start = now()
    for i, offset in enumerate(range(0, len(pcm), FRAME)):
        delay = start + (i + 1) * 0.02 - now()
        if delay > 0:
            await asyncio.sleep(delay)
        yield pcm[offset : offset + FRAME].ljust(FRAME, b"\0")


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * 2)


def tone(seconds: float, freq: float = 220.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def model_path() -> str:
    return str(smart_turn_model())


async def converse_with_a_pause(detector: object | None) -> list[Event]:
    audio = (
        silence(0.3)
        + synthesize("i want to go to the", pad_ms=0)
        + silence(0.5)
        + synthesize("train station please", pad_ms=0)
        + silence(2.5)
    )
    events: list[Event] = []
    conversation = Conversation(
        stt=ScriptedSTT(ScriptedSTT.Options(transcripts=["i want to go to the", "train station please"],
                                            min_silence_ms=200, final_delay_ms=50)),
        llm=ScriptedLLM(ScriptedLLM.Options()),
        output=ScriptedOutput(ScriptedOutput.Options(ms_per_char=10)),
        sink=RecordingSink(24000),
        source=realtime_frames(audio),
        vad=create_vad("webrtc", mode=3, min_speech_ms=100, min_silence_ms=200),
        policy=TurnPolicy(language="en"),
        detector=detector,  # type: ignore[arg-type]
        observers=[events.append],
    )  # fmt: skip
    await conversation.run()
    return events


@pytest.mark.slow
async def test_a_pause_inside_a_sentence_cuts_off_with_silence_but_not_with_smart_turn(model_path: str) -> None:
    from voicekit.plugins.turn.smart_turn import SmartTurnDetector

    with_silence = await converse_with_a_pause(None)
    assert next(e.text for e in with_silence if isinstance(e, UserTurn)) == "i want to go to the", (
        "silence ends the turn at the final inside the pause"
    )
    detector = SmartTurnDetector(SmartTurnDetector.Options(model_path=model_path), language="en")
    with_model = await converse_with_a_pause(detector)
    assert [e.text for e in with_model if isinstance(e, UserTurn)] == ["i want to go to the train station please"]
    (metrics,) = [e for e in with_model if isinstance(e, TurnMetrics)]
    assert metrics.detector == "smart_turn" and isinstance(metrics.detector_probability, float)
    assert metrics.detector_ms is not None and metrics.detector_ms > 0


# --- preemptive replies on Deepgram Flux ---------------------------------------------------------


def flux(fake: FakeFlux) -> DeepgramFluxSTT:
    stt = DeepgramFluxSTT(
        DeepgramFluxSTT.Options(api_key="test-key", base_url=fake.url, eager_eot_threshold=0.5),
        BackendContext(language="en", retry=RetryPolicy.model_validate({"attempts": 2, "initial_ms": 10})),
    )
    stt.name = "deepgram_flux"
    return stt


async def converse_on_flux(
    audio: bytes, script: list[str]
) -> tuple[list[Event], RecordingSink, ScriptedLLM, Conversation]:
    events: list[Event] = []
    sink = RecordingSink(24000)
    llm = ScriptedLLM(ScriptedLLM.Options(first_token_ms=20))
    async with FakeFlux(script=script) as fake:
        conversation = Conversation(
            stt=flux(fake),
            llm=llm,
            output=ScriptedOutput(ScriptedOutput.Options(ms_per_char=10, first_audio_ms=10)),
            sink=sink,
            source=realtime_frames(audio),
            policy=TurnPolicy(preemptive=True),
            observers=[events.append],
        )
        await conversation.run()
    return events, sink, llm, conversation


async def test_a_preemptive_hit_is_rendered_ahead_and_played_only_after_the_end_of_turn() -> None:
    events, sink, llm, conversation = await converse_on_flux(silence(0.3) + tone(0.8) + silence(1.5), ["book a table"])
    eager = next(e for e in events if isinstance(e, EagerEndOfTurn))
    end = next(e for e in events if isinstance(e, EndOfTurn))
    assert [c.user_text for c in llm.calls] == ["book a table"], "one reply, started at the eager end of turn"
    assert sink.writes, "the reply was heard"
    assert min(sink.writes) >= end.t, "no audio reached the sink before the turn was confirmed"
    assert eager.t < end.t
    (metrics,) = [e for e in events if isinstance(e, TurnMetrics)]
    assert metrics.preemptive == "hit" and metrics.preemptive_saved_ms is not None and metrics.preemptive_saved_ms >= 0
    assert [m.text for m in conversation.history] == ["book a table", "You said: book a table."]


async def test_a_preemptive_miss_never_reaches_the_sink_or_the_history() -> None:
    audio = silence(0.3) + tone(0.8) + silence(0.3) + tone(0.6, 260) + silence(1.5)
    events, sink, llm, conversation = await converse_on_flux(audio, ["i would like to order a pizza"])
    resumed = next(e for e in events if isinstance(e, TurnResumed))
    end = next(e for e in events if isinstance(e, EndOfTurn))
    assert len(llm.calls) >= 2, "a reply was started at the eager end of turn inside the pause"
    assert llm.calls[0].user_text == "i would like to order a pizza"
    assert min(sink.writes) >= end.t > resumed.t, "the dropped reply's rendered audio was never played"
    (metrics,) = [e for e in events if isinstance(e, TurnMetrics)]
    assert metrics.preemptive_discarded >= 1
    assert [m.role for m in conversation.history] == ["user", "assistant"]
    assert [e.text for e in events if isinstance(e, UserTurn)] == ["i would like to order a pizza"]
