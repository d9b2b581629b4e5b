"""Voice-to-voice latency with scripted services of known latency: the engine's overhead.

The services: STT final 150 ms after the end of speech (100 ms of silence to detect it,
then 50 ms), LLM first token after 300 ms then one word every 30 ms, TTS first audio
120 ms after a sentence arrives. The critical path of a turn is therefore
150 + 300 + 30 × (words in the first sentence − 1) + 120 ms; whatever voice-to-voice
takes beyond that is overhead (``overhead_*``: the engine plus the timer overshoot of
the scripted services' own sleeps). ``engine_only_*`` subtracts what the services
actually took, measured from their events, leaving the engine's share alone.
Prints one JSON line.

``python benchmarks/voice_to_voice.py --turns 20``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.audio.pcm import frame_bytes, tone
from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine.conversation import Conversation
from voicekit.engine.metrics import percentile
from voicekit.events import BotSentence, BotTurn, Event, Final, LLMDone, TurnMetrics
from voicekit.testing.scripted import ScriptedLLM, ScriptedOutput, ScriptedSTT

STT_SILENCE_MS, STT_FINAL_MS, LLM_FIRST_MS, LLM_WORD_MS, TTS_FIRST_MS = 100, 50, 300, 30, 120
REPLY = "Sure, here is the first sentence. And a second one follows it. Then a third one ends the turn."


class StampingSink(AudioSink):
    def __init__(self) -> None:
        super().__init__(24000, realtime=True)
        self.starts: list[float] = []

    async def play(self, pcm: bytes) -> float:
        started = await super().play(pcm)
        self.starts.append(started)
        return started


async def run(turns: int) -> dict[str, object]:
    sink = StampingSink()
    speech_ends: list[float] = []
    llm_done: list[float] = []
    finals: list[float] = []
    first_sentences: dict[int, float] = {}
    metrics: list[TurnMetrics] = []
    turn_over = asyncio.Event()

    def observe(event: Event) -> None:
        if isinstance(event, BotTurn):
            turn_over.set()
        elif isinstance(event, LLMDone):
            llm_done.append(event.t)
        elif isinstance(event, Final):
            finals.append(event.t)
        elif isinstance(event, BotSentence):
            first_sentences.setdefault(event.turn, event.t)
        elif isinstance(event, TurnMetrics):
            metrics.append(event)

    async def source() -> AsyncIterator[bytes]:
        step = frame_bytes(16000, 20)
        speech = tone(600, 16000, hz=300, amplitude=0.3)
        next_at = now()
        for _ in range(turns):
            turn_over.clear()
            for offset in range(0, len(speech), step):
                next_at = await _pace(next_at)
                yield speech[offset : offset + step]
            speech_ends.append(now())
            while not turn_over.is_set():
                next_at = await _pace(next_at)
                yield bytes(step)
            for _ in range(10):
                next_at = await _pace(next_at)
                yield bytes(step)

    conversation = Conversation(
        stt=ScriptedSTT(ScriptedSTT.Options(min_silence_ms=STT_SILENCE_MS, final_delay_ms=STT_FINAL_MS)),
        llm=ScriptedLLM(ScriptedLLM.Options(replies=[REPLY], first_token_ms=LLM_FIRST_MS, token_ms=LLM_WORD_MS)),
        output=ScriptedOutput(ScriptedOutput.Options(first_audio_ms=TTS_FIRST_MS, ms_per_char=5)),
        sink=sink,
        source=source(),
        observers=[observe],
    )
    await conversation.run()
    first_sentence_words = len(REPLY.split(".")[0].split())
    critical = STT_SILENCE_MS + STT_FINAL_MS + LLM_FIRST_MS + LLM_WORD_MS * (first_sentence_words - 1) + TTS_FIRST_MS
    v2v, overhead, engine, early = [], [], [], 0
    for i, end in enumerate(speech_ends):
        first = next(t for t in sink.starts if t > end)
        v2v.append((first - end) * 1000)
        overhead.append(v2v[-1] - critical)
        # what the scripted services actually took (their timers overshoot a little too)
        services = (finals[i] - end) + (first_sentences[i + 1] - finals[i]) + (metrics[i].output_ttfa_ms or 0) / 1000
        engine.append(v2v[-1] - services * 1000)
        early += first < llm_done[i]
    return {
        "benchmark": "voice_to_voice",
        "turns": turns,
        "critical_path_ms": critical,
        "v2v_p50_ms": round(percentile(v2v, 50), 2),
        "v2v_p95_ms": round(percentile(v2v, 95), 2),
        "overhead_p50_ms": round(percentile(overhead, 50), 2),
        "overhead_p95_ms": round(percentile(overhead, 95), 2),
        "overhead_max_ms": round(max(overhead), 2),
        "engine_only_p50_ms": round(percentile(engine, 50), 3),
        "engine_only_p95_ms": round(percentile(engine, 95), 3),
        "first_audio_before_llm_done": f"{early}/{turns}",
    }


async def _pace(next_at: float) -> float:
    delay = next_at - now()
    if delay > 0:
        await asyncio.sleep(delay)
    return next_at + 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    print(json.dumps(asyncio.run(run(parser.parse_args().turns))))


if __name__ == "__main__":
    main()
