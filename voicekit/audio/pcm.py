"""16-bit PCM helpers and streaming resampling (soxr)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SAMPLE_WIDTH = 2  # bytes per sample: everything inside voicekit is int16 mono


def frame_bytes(sample_rate: int, ms: float) -> int:
    """Bytes in ``ms`` of mono int16 audio at ``sample_rate``."""
    return int(sample_rate * ms / 1000) * SAMPLE_WIDTH


def duration_ms(pcm: bytes | int, sample_rate: int) -> float:
    """Duration in ms of mono int16 audio (``pcm`` or its length in bytes)."""
    size = pcm if isinstance(pcm, int) else len(pcm)
    return size / SAMPLE_WIDTH / sample_rate * 1000.0


def silence(ms: float, sample_rate: int) -> bytes:
    return bytes(frame_bytes(sample_rate, ms))


def rms(pcm: bytes) -> float:
    """Root mean square level of int16 PCM (0..32768)."""
    if len(pcm) < SAMPLE_WIDTH:
        return 0.0
    samples = np.frombuffer(pcm, dtype=np.int16, count=len(pcm) // SAMPLE_WIDTH).astype(np.float32)
    return float(math.sqrt(float(np.mean(samples * samples))))


def tone(ms: float, sample_rate: int, hz: float = 440.0, amplitude: float = 0.3) -> bytes:
    """A sine tone, handy for tests and scripted voices."""
    n = int(sample_rate * ms / 1000)
    t = np.arange(n, dtype=np.float32) / sample_rate
    wave = (np.sin(2 * np.pi * hz * t) * amplitude * 32767).astype(np.int16)
    return wave.tobytes()


def to_mono_int16(samples: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Mix (frames, channels) samples of any numeric dtype down to mono int16."""
    if samples.dtype.kind == "f":
        data = np.clip(samples, -1.0, 1.0) * 32767.0
    elif samples.dtype == np.uint8:
        data = (samples.astype(np.float32) - 128.0) * 256.0
    else:
        shift = samples.dtype.itemsize * 8 - 16
        data = samples.astype(np.float64) / (2**shift) if shift > 0 else samples.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    mono: np.ndarray[Any, Any] = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
    return mono


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """One-shot resampling of int16 mono PCM."""
    if from_rate == to_rate or not pcm:
        return pcm
    import soxr

    samples = np.frombuffer(pcm, dtype=np.int16)
    return bytes(soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.int16).tobytes())


class StreamResampler:
    """Resamples a stream of int16 mono chunks without clicks between chunks."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream: Any = None
        if from_rate != to_rate:
            import soxr

            self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")

    def push(self, pcm: bytes, last: bool = False) -> bytes:
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16)
        return bytes(self._stream.resample_chunk(samples, last=last).tobytes())

    def flush(self) -> bytes:
        return self.push(b"", last=True)
