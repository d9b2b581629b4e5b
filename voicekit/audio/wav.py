"""WAV files in and out.

:class:`WavSource` reads any PCM or float WAV (any rate, channels, width), turns it into
16 kHz mono int16 frames and yields them paced in real time, or as fast as the
consumer takes them. :class:`WavSink` writes int16 mono as it comes.
"""

from __future__ import annotations

import asyncio
import struct
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.audio.pcm import frame_bytes, resample, to_mono_int16
from voicekit.clock import now
from voicekit.errors import AudioFormatError

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits: int
    is_float: bool
    frames: int


def read_wav(path: str | Path) -> tuple[np.ndarray[Any, Any], WavInfo]:
    """Read a RIFF/WAVE file into (frames, channels) samples; a clear error for anything else."""
    path = Path(path)
    if not path.exists():
        raise AudioFormatError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFormatError(f"{path}: is a directory, not a WAV file")
    data = path.read_bytes()
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise AudioFormatError(f"{path}: not a WAV file (convert it first, e.g. ffmpeg -i IN -ar 16000 -ac 1 OUT.wav)")
    fmt: tuple[int, int, int, int] | None = None
    pos, body = 12, b""
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        start = pos + 8
        if chunk_id == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", data, start)
            bits = struct.unpack_from("<H", data, start + 14)[0]
            if tag == _EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", data, start + 24)[0]
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if size == 0xFFFFFFFF or start + size > len(data):  # streamed or truncated: take what is there
                size = len(data) - start
            body = data[start : start + size]
        pos = start + size + (size & 1)
    if fmt is None:
        raise AudioFormatError(f"{path}: WAV file has no fmt chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1000:
        raise AudioFormatError(f"{path}: unsupported WAV ({channels} channels at {rate} Hz)")
    if tag == _PCM and bits in (8, 16, 24, 32):
        width = bits // 8
        usable = len(body) - len(body) % (width * channels)
        raw = body[:usable]
        if bits == 24:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
            samples = b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16)
            samples = np.where(samples & 0x800000, samples - (1 << 24), samples).astype(np.int32) << 8
        else:
            dtype: str = {8: "u1", 16: "<i2", 32: "<i4"}[bits]
            samples = np.frombuffer(raw, dtype=dtype)
    elif tag == _FLOAT and bits in (32, 64):
        usable = len(body) - len(body) % (bits // 8 * channels)
        samples = np.frombuffer(body[:usable], dtype="<f4" if bits == 32 else "<f8")
    else:
        raise AudioFormatError(f"{path}: unsupported WAV encoding (format {tag}, {bits} bits); use PCM or float")
    samples = samples.reshape(-1, channels)
    return samples, WavInfo(rate, channels, bits, tag == _FLOAT, samples.shape[0])


def load_pcm(path: str | Path, sample_rate: int = 16000) -> bytes:
    """The whole file as int16 mono PCM at ``sample_rate``."""
    samples, info = read_wav(path)
    return resample(to_mono_int16(samples).tobytes(), info.sample_rate, sample_rate)


def write_wav(path: str | Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)


class WavSource:
    """Frames of a WAV file as 16 kHz mono int16, paced in real time unless ``realtime=False``.

    ``tail_ms`` of silence follow the file so the end of the last utterance is heard.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate: int = 16000,
        frame_ms: int = 20,
        realtime: bool = True,
        lead_ms: int = 0,
        tail_ms: int = 1500,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.realtime = realtime
        self._pcm = bytes(frame_bytes(sample_rate, lead_ms)) + load_pcm(self.path, sample_rate)
        self._pcm += bytes(frame_bytes(sample_rate, tail_ms))

    @property
    def duration_ms(self) -> float:
        return len(self._pcm) / 2 / self.sample_rate * 1000

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        step = frame_bytes(self.sample_rate, self.frame_ms)
        period = self.frame_ms / 1000
        started = now()
        for index, offset in enumerate(range(0, len(self._pcm), step)):
            frame = self._pcm[offset : offset + step]
            if len(frame) < step:
                frame += bytes(step - len(frame))
            if self.realtime:
                delay = started + index * period - now()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            yield frame


class WavSink:
    """Writes int16 mono PCM to a WAV file as it arrives; the header is fixed on close."""

    def __init__(self, path: str | Path, sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = wave.open(str(self.path), "wb")
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(sample_rate)
        self.bytes_written = 0

    def write(self, pcm: bytes) -> None:
        if self._file is not None:
            self._file.writeframes(pcm)
            self.bytes_written += len(pcm)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None  # type: ignore[assignment]
