"""How many conversations one process (one core) carries in real time.

N conversations with scripted services (STT final 150 ms after the end of speech, LLM
first token 100 ms, TTS first audio 50 ms) each receive 20 ms frames in real time from
one shared ticker, spread over the 20 ms as a server receives them from its sockets: 600 ms of speech, then
1.4 s of silence, three turns each, starts spread over one turn. Added latency =
measured voice-to-voice − the 300 ms the services take. N grows until the p95 added
latency passes the limit. Prints one JSON line (and one per N to stderr).

``python benchmarks/concurrency.py --start 100 --step 100 --limit-ms 20``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.audio.pcm import frame_bytes, tone
from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine.conversation import Conversation
from voicekit.engine.metrics import percentile
from voicekit.testing.scripted import ScriptedLLM, ScriptedOutput, ScriptedSTT

FRAME = frame_bytes(16000, 20)
SPEECH_FRAMES, SILENCE_FRAMES, TURNS = 30, 70, 3
SERVICES_MS = 100 + 50 + 100 + 50
PHASES = 10  # frame arrivals spread over 10 slots of 2 ms


class FirstAudioSink(AudioSink):
    def __init__(self) -> None:
        super().__init__(24000, realtime=True)
        self.starts: list[float] = []

    async def play(self, pcm: bytes) -> float:
        started = await super().play(pcm)
        self.starts.append(started)
        return started


class Feed:
    """One conversation's frames, pushed by the shared ticker."""

    def __init__(self, offset: int) -> None:
        self.offset = offset  # ticks before its first frame
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.speech_ends: list[float] = []

    async def frames(self) -> AsyncIterator[bytes]:
        while (frame := await self.queue.get()) is not None:
            yield frame


async def run_n(n: int) -> dict[str, float]:
    speech = tone(SPEECH_FRAMES * 20, 16000, hz=300, amplitude=0.3)
    speech_frames = [speech[i : i + FRAME] for i in range(0, len(speech), FRAME)]
    silent = bytes(FRAME)
    script = (speech_frames + [silent] * SILENCE_FRAMES) * TURNS + [silent] * 20
    feeds = [Feed(random.randrange(0, SPEECH_FRAMES + SILENCE_FRAMES)) for _ in range(n)]
    # like packets from many sockets, each conversation's frames arrive at its own phase of the 20 ms
    phases: list[list[Feed]] = [feeds[p::PHASES] for p in range(PHASES)]
    sinks = [FirstAudioSink() for _ in range(n)]
    conversations = [
        Conversation(
            stt=ScriptedSTT(ScriptedSTT.Options(min_silence_ms=100, final_delay_ms=50)),
            llm=ScriptedLLM(ScriptedLLM.Options(replies=["Okay. Sure."], first_token_ms=100)),
            output=ScriptedOutput(ScriptedOutput.Options(first_audio_ms=50, ms_per_char=10)),
            sink=sink,
            source=feed.frames(),
        )
        for feed, sink in zip(feeds, sinks, strict=True)
    ]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tasks = [asyncio.create_task(c.run()) for c in conversations]
    await asyncio.sleep(1.0)  # let every conversation start before the clock runs
    total_ticks = max(f.offset for f in feeds) + len(script)
    cpu0, start = time.process_time(), now()
    lag: list[float] = []
    for step in range(total_ticks * PHASES):
        tick, phase = divmod(step, PHASES)
        due = start + tick * 0.02 + phase * 0.02 / PHASES
        delay = due - now()
        if delay > 0:
            await asyncio.sleep(delay)
        lag.append((now() - due) * 1000)
        for feed in phases[phase]:
            index = tick - feed.offset
            if 0 <= index < len(script):
                feed.queue.put_nowait(script[index])
                if index % (SPEECH_FRAMES + SILENCE_FRAMES) == SPEECH_FRAMES - 1 and index < len(script) - 20:
                    feed.speech_ends.append(due)  # a frame arrives when its last sample was captured
            elif index == len(script):
                feed.queue.put_nowait(None)
    for feed in feeds:
        if total_ticks - feed.offset <= len(script):
            feed.queue.put_nowait(None)
    await asyncio.gather(*tasks)
    cpu = time.process_time() - cpu0
    added: list[float] = []
    missing = 0
    for feed, sink in zip(feeds, sinks, strict=True):
        for end in feed.speech_ends:
            first = next((t for t in sink.starts if t > end), None)
            if first is None:
                missing += 1
            else:
                added.append((first - end) * 1000 - SERVICES_MS)
    return {
        "n": n,
        "turns": len(added),
        "missing_turns": missing,
        "added_p50_ms": round(percentile(added, 50), 2),
        "added_p95_ms": round(percentile(added, 95), 2),
        "ticker_lag_p95_ms": round(percentile(lag, 95), 2),
        "cpu_util": round(cpu / (now() - start), 3),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024, 1),
    }


async def main_async(start: int, step: int, limit_ms: float, max_n: int) -> dict[str, object]:
    best: dict[str, float] | None = None
    runs = []
    n = start
    while n <= max_n:
        result = await run_n(n)
        gc.collect()
        runs.append(result)
        print(json.dumps(result), file=sys.stderr)
        if result["missing_turns"] or result["added_p95_ms"] > limit_ms:
            break
        best = result
        n += step
    return {
        "benchmark": "concurrency",
        "limit_ms": limit_ms,
        "max_conversations_one_core": best["n"] if best else 0,
        "at_max": best,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--max", type=int, default=2000)
    parser.add_argument("--limit-ms", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    print(json.dumps(asyncio.run(main_async(args.start, args.step, args.limit_ms, args.max))))


if __name__ == "__main__":
    main()
