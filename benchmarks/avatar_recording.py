"""Record minutes of synthetic 720p25 avatar video + 48 kHz audio through the avatar recorder.

The frames take the same path as a live avatar's: local LiveKit ``VideoSource`` /
``AudioSource`` tracks, handed to an (unconnected) ``rtc.Room`` as subscribed tracks,
read by the recorder's bounded ``VideoStream`` / ``AudioStream`` and encoded to
fragmented MP4 while they come, at real-time pace. Prints one JSON line: peak and
final RSS, how RSS moved after the first minute (MB per minute: flat is ~0), encode
frame rate, CPU use, dropped frames, and both stream durations of the file.

``--fast`` instead pushes frames straight into the recorder as fast as it encodes them,
to measure the highest encode rate.

    python benchmarks/avatar_recording.py --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.recording_av import AvatarRecorder

WIDTH, HEIGHT, FPS, RATE = 1280, 720, 25, 48000


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def frames(count: int = 25) -> list[bytes]:
    """Distinct I420 frames: a moving bar over a gradient, with camera-like grain that changes."""
    rng = np.random.default_rng(1)
    base = np.tile(np.linspace(30, 220, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    chroma = np.full((HEIGHT // 2, WIDTH // 2), 128, dtype=np.uint8)
    out = []
    for i in range(count):
        luma = base + rng.integers(0, 8, size=(HEIGHT, WIDTH), dtype=np.uint8)
        x = i * WIDTH // count
        luma[:, x : x + 64] = 235
        out.append(luma.tobytes() + chroma.tobytes() + (chroma + (i % 16)).tobytes())
    return out


def tone(start: int, n: int) -> bytes:
    t = np.arange(start, start + n) / RATE
    return (np.sin(2 * math.pi * 220 * t) * 6000).astype(np.int16).tobytes()


def durations(path: Path) -> dict[str, float]:
    import av

    ends: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None:
                continue
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            kind = packet.stream.type
            ends[kind] = max(ends.get(kind, 0.0), end)
    return ends


class Sampler:
    """RSS every few seconds, for the peak and the slope."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.t0 = time.monotonic()

    async def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self.t0, rss_mb()[0]))
            await asyncio.sleep(2.0)

    def slope_after(self, warmup_s: float) -> float | None:
        points = [(t, m) for t, m in self.samples if t >= warmup_s]
        if len(points) < 3:
            return None
        t, m = np.array(points).T
        return float(np.polyfit(t / 60, m, 1)[0])


async def live(recorder: AvatarRecorder, seconds: float, images: list[bytes]) -> None:
    from livekit import rtc

    room = rtc.Room()
    recorder.attach(room)
    vsrc, asrc = rtc.VideoSource(WIDTH, HEIGHT), rtc.AudioSource(RATE, 1, queue_size_ms=200)
    room.emit("track_subscribed", rtc.LocalVideoTrack.create_video_track("avatar", vsrc), None, None)
    room.emit("track_subscribed", rtc.LocalAudioTrack.create_audio_track("avatar", asrc), None, None)
    start = time.monotonic()

    async def video() -> None:
        for i in range(int(seconds * FPS)):
            vsrc.capture_frame(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.I420, images[i % len(images)]))
            await asyncio.sleep(max(0.0, start + (i + 1) / FPS - time.monotonic()))

    async def audio() -> None:
        n = RATE // 100
        for i in range(int(seconds * 100)):
            await asrc.capture_frame(rtc.AudioFrame(tone(i * n, n), RATE, 1, n))
            await asyncio.sleep(max(0.0, start + (i + 1) / 100 - time.monotonic()))

    await asyncio.gather(video(), audio())
    await asyncio.sleep(0.3)


async def fast(recorder: AvatarRecorder, seconds: float, images: list[bytes]) -> None:
    from livekit import rtc

    n = RATE // FPS
    start = time.monotonic()
    for i in range(int(seconds * FPS)):
        while recorder.stats.video_in - recorder.stats.video_encoded - recorder.stats.video_dropped > 4:
            await asyncio.sleep(0.002)
        frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.I420, images[i % len(images)])
        at = start + i / FPS  # capture times of the content, not of the (faster or slower) push
        recorder.push_video(frame, i * 1_000_000 // FPS, captured_at=at)
        recorder.push_audio(tone(i * n, n), captured_at=at + 1 / FPS)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fast", action="store_true", help="push as fast as the encoder takes frames")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--out", type=Path, default=None, help="MP4 to write (default: a temporary file)")
    args = parser.parse_args()

    images = frames()
    baseline = rss_mb()[0]
    out = args.out or Path(tempfile.mkdtemp(prefix="vk-avatar-bench-")) / "avatar.mp4"
    recorder = AvatarRecorder(out, preset=args.preset, fps=FPS)
    sampler = Sampler()
    sampling = asyncio.ensure_future(sampler.run())
    cpu0, t0 = os.times(), time.monotonic()
    await (fast if args.fast else live)(recorder, args.minutes * 60, images)
    stats = await recorder.aclose()
    wall = time.monotonic() - t0
    cpu1 = os.times()
    sampling.cancel()
    current, peak = rss_mb()
    ends = durations(out)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(
        json.dumps(
            {
                "mode": "fast" if args.fast else "realtime",
                "minutes": args.minutes,
                "size": f"{WIDTH}x{HEIGHT}@{FPS}",
                "preset": args.preset,
                "rss_peak_mb": round(peak, 1),
                "rss_end_mb": round(current, 1),
                "rss_before_mb": round(baseline, 1),
                "rss_slope_mb_per_min_after_1min": None if (s := sampler.slope_after(60)) is None else round(s, 2),
                "encode_fps": round(stats.video_encoded / wall, 1),
                "cpu_cores": round(cpu / wall, 2),
                "frames_in": stats.video_in,
                "frames_encoded": stats.video_encoded,
                "frames_dropped": stats.video_dropped,
                "audio_dropped_samples": stats.audio_samples_dropped,
                "video_duration_s": round(ends.get("video", 0.0), 2),
                "audio_duration_s": round(ends.get("audio", 0.0), 2),
                "file_mb": round(out.stat().st_size / 1e6, 1),
                "wall_s": round(wall, 1),
            }
        )
    )
    if args.out is None:
        out.unlink()
        out.parent.rmdir()


if __name__ == "__main__":
    asyncio.run(main())
