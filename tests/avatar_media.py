"""Synthetic avatar media for the recorder tests and benchmark: I420 frames, a tone."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def i420_frames(width: int, height: int, count: int = 25) -> list[bytes]:
    """``count`` distinct I420 frames: a moving bar over a gradient, with some texture."""
    rng = np.random.default_rng(7)
    base = np.tile(np.linspace(16, 235, width, dtype=np.uint8), (height, 1))
    grain = rng.integers(0, 12, size=(height, width), dtype=np.uint8)
    chroma = np.full((height // 2, width // 2), 128, dtype=np.uint8)
    frames = []
    for i in range(count):
        luma = base + grain
        x = (i * width // count) % width
        luma[:, x : x + width // 10] = 235
        frames.append(luma.tobytes() + chroma.tobytes() + (chroma + i).tobytes())
    return frames


def tone(n_samples: int, start: int = 0, rate: int = 48000, hz: float = 440.0) -> bytes:
    t = np.arange(start, start + n_samples) / rate
    return (np.sin(2 * math.pi * hz * t) * 8000).astype(np.int16).tobytes()


def probe(path: str) -> dict[str, Any]:
    """Decode a media file fully: per stream type its end time (s), frame count, peak level."""
    import av

    out: dict[str, Any] = {}
    with av.open(path) as container:
        for frame in container.decode(*container.streams):
            kind = "video" if isinstance(frame, av.VideoFrame) else "audio"
            info = out.setdefault(kind, {"frames": 0, "end": 0.0, "peak": 0.0, "start": None})
            info["frames"] += 1
            start = float(frame.pts * frame.time_base)
            if info["start"] is None:
                info["start"] = start
            if kind == "audio":
                end = start + frame.samples / frame.sample_rate
                info["peak"] = max(info["peak"], float(np.abs(frame.to_ndarray()).max()))
            else:
                end = start + 1 / 25
            info["end"] = max(info["end"], end)
    return out
