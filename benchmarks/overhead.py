"""Engine cost per 20 ms audio frame, with no-op backends.

A frame travels source → N pass-through audio stages → VAD → STT stream, through the
real :class:`voicekit.engine.conversation.Conversation`. Modes:

- ``burst``: frames as fast as the engine takes them (CPU per frame, throughput);
- ``pingpong``: one frame at a time, the next only after the STT received the last
  (latency per frame);
- ``paced``: one frame every 20 ms, as a microphone delivers them.

Prints one JSON line.  Example: ``python benchmarks/overhead.py --stages 10 --frames 5000 --mode pingpong``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.audio.pcm import frame_bytes
from voicekit.audio.sinks import NullSink
from voicekit.engine.conversation import Conversation
from voicekit.engine.metrics import percentile
from voicekit.roles import STT, STTStream
from voicekit.testing.scripted import NullOutput, ScriptedLLM


class Probe:
    """Where frames end up; tells the source when a frame arrived."""

    def __init__(self) -> None:
        self.received = 0
        self.arrived: asyncio.Event = asyncio.Event()


class NoopStream(STTStream):
    def __init__(self, probe: Probe) -> None:
        super().__init__()
        self.probe = probe

    def push_audio(self, pcm: bytes) -> None:
        self.probe.received += 1
        self.probe.arrived.set()

    async def run(self) -> None:
        await self._audio.get()  # returns at end_input


class NoopSTT(STT):
    """Takes frames and recognises nothing."""

    def __init__(self, probe: Probe) -> None:
        super().__init__(ScriptedLLM.Options())
        self.probe = probe

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> STTStream:
        return NoopStream(self.probe)


async def run(stages: int, frames: int, mode: str, vad: str) -> dict[str, object]:
    probe = Probe()
    frame = bytes(frame_bytes(16000, 20))
    latencies: list[float] = []

    clock: dict[str, float] = {}

    async def source() -> AsyncIterator[bytes]:
        start = time.perf_counter()
        clock["cpu0"], clock["wall0"] = time.process_time(), start
        for i in range(frames):
            if mode == "paced":
                delay = start + i * 0.02 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent = time.perf_counter()
            probe.arrived.clear()
            yield frame
            if mode != "burst":
                if not probe.arrived.is_set():
                    await probe.arrived.wait()
                latencies.append((time.perf_counter() - sent) * 1e6)
        clock["cpu1"], clock["wall1"] = time.process_time(), time.perf_counter()

    vad_impl = None
    if vad != "none":
        from voicekit.audio.vad import create_vad

        vad_impl = create_vad(vad)
    conversation = Conversation(
        stt=NoopSTT(probe),
        llm=ScriptedLLM(),
        output=NullOutput(),
        sink=NullSink(24000, realtime=False),
        source=source(),
        filters=[(lambda pcm: pcm) for _ in range(stages)],
        vad=vad_impl,
    )
    await conversation.run()
    cpu, wall = clock["cpu1"] - clock["cpu0"], clock["wall1"] - clock["wall0"]
    baseline = await pacing_cost(frames) if mode == "paced" else 0.0
    assert probe.received == frames, f"only {probe.received} of {frames} frames arrived"
    return {
        "benchmark": "overhead",
        "mode": mode,
        "stages": stages,
        "frames": frames,
        "vad": vad,
        "cpu_us_per_frame": round(cpu / frames * 1e6 - baseline, 2),
        "pacing_cpu_us_per_frame": round(baseline, 2),
        "lat_p50_us": round(percentile(latencies, 50), 2) if latencies else None,
        "lat_p95_us": round(percentile(latencies, 95), 2) if latencies else None,
        "throughput_fps": round(frames / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


async def pacing_cost(frames: int) -> float:
    """CPU per frame of waking up every 20 ms with no engine at all (subtracted in paced mode)."""
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(frames):
        delay = start + i * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    return (time.process_time() - cpu0) / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", type=int, default=10)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--mode", choices=["burst", "pingpong", "paced"], default="pingpong")
    parser.add_argument("--vad", choices=["none", "webrtc", "silero"], default="none")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.stages, args.frames, args.mode, args.vad))))


if __name__ == "__main__":
    main()
