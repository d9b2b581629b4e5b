"""WAV files in and out.

Reading checks a file's header before any of its samples: the chunks must fit in the
file, the format must be PCM (8, 16, 24 or 32 bits) or float (32, 64 bits) at 8 to
192 kHz with 1 to 8 channels, and the audio must last at most
:data:`voicekit.audio.files.MAX_INPUT_SECONDS`. Only then are the samples read, in blocks,
so a stream (a pipe, ``/dev/stdin``) is never read to its end to learn what it holds.

:class:`WavSource` yields a file (WAV, FLAC, OGG or MP3: see :mod:`voicekit.audio.files`)
as 16 kHz mono int16 frames, paced in real time or as fast as the consumer takes them.
:class:`WavSink` writes int16 mono to a temporary file beside the target and puts it in
place only when it is closed: a run that fails never truncates an existing file.
"""

from __future__ import annotations

import asyncio
import struct
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from voicekit.audio import files
from voicekit.audio.pcm import frame_bytes
from voicekit.clock import now
from voicekit.errors import AudioFormatError

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_STREAMED = (0, 0xFFFFFFFF)  # data sizes written by recorders that could not seek back to fix them
_MAX_FMT_BYTES = 1024  # a fmt chunk is 16, 18 or 40 bytes
_MAX_HEADER_BYTES = 1 << 20  # chunks before the audio (LIST, bext, ...) skipped in a stream
_BLOCK_FRAMES = 1 << 16


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


@dataclass(frozen=True)
class WavInfo:
    """A WAV file's format, and where its samples are (``data_size`` bytes from ``data_offset``)."""

    sample_rate: int
    channels: int
    bits: int
    is_float: bool
    frames: int
    data_offset: int = 0
    data_size: int = 0

    @property
    def dtype(self) -> str:
        if self.is_float:
            return "<f4" if self.bits == 32 else "<f8"
        return {8: "u1", 16: "<i2", 24: "V3", 32: "<i4"}[self.bits]


def read_header(stream: Readable, name: str, size: int | None) -> WavInfo:
    """Read a WAV header from ``stream`` (positioned at the start) up to its samples, checking
    every size against ``size`` (the file's, or ``None`` for a stream of unknown length).
    Leaves ``stream`` at the first sample."""
    start = _read(stream, 12, name, "its RIFF header")
    if start[:4] not in (b"RIFF", b"RF64", b"BW64") or start[8:12] != b"WAVE":
        raise AudioFormatError(f"{name}: not a WAV file")
    pos, fmt, big_data = 12, None, None
    while True:
        head = stream.read(8)
        if len(head) < 8:
            what = "a fmt chunk" if fmt is None else "a data chunk"
            raise AudioFormatError(f"{name}: the WAV file ends before {what} (a file cut short, or not audio)")
        chunk, chunk_size = head[:4], struct.unpack("<I", head[4:])[0]
        pos += 8
        if chunk == b"data":
            if fmt is None:
                raise AudioFormatError(f"{name}: the WAV data chunk comes before its fmt chunk")
            data_size = big_data if big_data is not None and chunk_size == 0xFFFFFFFF else chunk_size
            return _checked(name, fmt, pos, data_size, size)
        if chunk == b"fmt ":
            if not 16 <= chunk_size <= _MAX_FMT_BYTES:
                raise AudioFormatError(f"{name}: a WAV fmt chunk of {chunk_size} bytes (16 to {_MAX_FMT_BYTES})")
            fmt = _parse_fmt(_read(stream, chunk_size, name, "its fmt chunk"), name)
        elif chunk == b"ds64" and 24 <= chunk_size <= _MAX_FMT_BYTES:  # RF64: the real 64-bit sizes
            big_data = struct.unpack_from("<Q", _read(stream, chunk_size, name, "its ds64 chunk"), 8)[0]
        else:
            _skip(stream, chunk_size, name, chunk, pos, size)
        pos += chunk_size + (chunk_size & 1)
        if chunk_size & 1 and chunk in (b"fmt ", b"ds64"):
            _read(stream, 1, name, "a pad byte")
        if size is not None and pos > size:
            raise AudioFormatError(f"{name}: a WAV chunk runs past the end of the file ({size} bytes)")
        if size is None and pos > _MAX_HEADER_BYTES:
            raise AudioFormatError(f"{name}: no audio in the first {_MAX_HEADER_BYTES} bytes of the WAV stream")


def _read(stream: Readable, count: int, name: str, what: str) -> bytes:
    data = stream.read(count)
    if len(data) < count:
        raise AudioFormatError(f"{name}: the file ends inside {what} ({len(data)} of {count} bytes): not a whole WAV")
    return data


def _skip(stream: Readable, count: int, name: str, chunk: bytes, pos: int, size: int | None) -> None:
    label = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in chunk.decode("latin-1")).strip() or "?"
    padded = count + (count & 1)
    if size is not None:
        if pos + padded > size + 1:  # a missing last pad byte is common and harmless
            raise AudioFormatError(
                f"{name}: the WAV chunk '{label}' of {count} bytes runs past the end of the file ({size} bytes)"
            )
        stream.seek(padded, 1)
        return
    if pos + padded > _MAX_HEADER_BYTES:
        raise AudioFormatError(f"{name}: a WAV chunk '{label}' of {count} bytes before the audio: too large to skip")
    _read(stream, padded, name, f"the chunk '{label}'")


def _parse_fmt(data: bytes, name: str) -> tuple[int, int, int, int]:
    tag, channels, rate = struct.unpack_from("<HHI", data, 0)
    bits = struct.unpack_from("<H", data, 14)[0]
    if tag == _EXTENSIBLE and len(data) >= 40:
        tag = struct.unpack_from("<H", data, 24)[0]
    return tag, channels, rate, bits


def _checked(name: str, fmt: tuple[int, int, int, int], offset: int, data_size: int, size: int | None) -> WavInfo:
    tag, channels, rate, bits = fmt
    files.check_format(name, rate, channels)
    if not ((tag == _PCM and bits in (8, 16, 24, 32)) or (tag == _FLOAT and bits in (32, 64))):
        raise AudioFormatError(
            f"{name}: unsupported WAV encoding (format {tag}, {bits} bits); use PCM (8 to 32 bits) or float"
        )
    block = channels * bits // 8
    available = None if size is None else size - offset
    if data_size in _STREAMED and (available is None or data_size > available):
        data_size = available if available is not None else -1  # -1: up to the end of the stream
    elif available is not None and data_size > available:
        files.log.warning(
            "%s: the WAV file is cut short: %d of its %d bytes of audio are there", name, available, data_size
        )
        data_size = available
    frames = -1 if data_size < 0 else data_size // block
    if frames > 0:
        files.check_duration(name, frames, rate)
    return WavInfo(rate, channels, bits, tag == _FLOAT, frames, offset, data_size)


def read_blocks(stream: BinaryIO, info: WavInfo, name: str) -> Iterator[np.ndarray[Any, Any]]:
    """The samples as (frames, channels) arrays of up to 65536 frames, never more than the
    header says nor (for a stream) more than :data:`~voicekit.audio.files.MAX_INPUT_SECONDS`."""
    block = info.channels * info.bits // 8
    left = info.frames if info.frames >= 0 else files.max_frames(info.sample_rate) + 1
    read = 0
    while left > 0:
        data = stream.read(min(left, _BLOCK_FRAMES) * block)
        whole = len(data) - len(data) % block
        if not whole:
            return
        left -= whole // block
        read += whole // block
        if info.frames < 0:
            files.check_duration(name, read, info.sample_rate)
        yield _samples(data[:whole], info)


def _samples(raw: bytes, info: WavInfo) -> np.ndarray[Any, Any]:
    if info.bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        samples = b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16)
        samples = np.where(samples & 0x800000, samples - (1 << 24), samples).astype(np.int32) << 8
    else:
        samples = np.frombuffer(raw, dtype=info.dtype)
    return samples.reshape(-1, info.channels)


def load_pcm(path: str | Path, sample_rate: int = 16000) -> bytes:
    """The whole file (WAV, FLAC, OGG or MP3) as int16 mono PCM at ``sample_rate``."""
    return files.load_pcm(path, sample_rate)


def write_wav(path: str | Path, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
    """Write int16 PCM to ``path`` (through a temporary file: an existing file is replaced whole or not at all)."""
    with files.AtomicFile(path) as out:
        with wave.open(out.file, "wb") as wav:
            wav.setnchannels(channels)
            wav.setsampwidth(2)
            wav.setframerate(sample_rate)
            wav.writeframes(pcm)
        out.commit()


class WavSource:
    """Frames of an audio file as 16 kHz mono int16, paced in real time unless ``realtime=False``.

    The file (WAV, FLAC, OGG or MP3) is checked and read when the source is made, so a bad
    file fails before the conversation starts. ``tail_ms`` of silence follow it so the end
    of the last utterance is heard.
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
    """Writes int16 mono PCM to a WAV file as it arrives.

    The audio goes to a temporary file in the target's folder; :meth:`close` fixes the
    header and renames it over the target, :meth:`discard` removes it. Until then an
    existing file at ``path`` is untouched. A target that is not a regular file
    (``/dev/null``, a pipe) is written directly.
    """

    def __init__(self, path: str | Path, sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._out = files.AtomicFile(self.path)
        self._file: wave.Wave_write | None = wave.open(self._out.file, "wb")
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(sample_rate)
        self.bytes_written = 0

    def write(self, pcm: bytes) -> None:
        if self._file is not None:
            try:
                self._file.writeframes(pcm)
            except OSError as exc:
                raise files.write_error(self.path, exc) from None
            self.bytes_written += len(pcm)

    def close(self) -> None:
        """Finish the file and put it in place."""
        if self._file is None:
            return
        wav, self._file = self._file, None
        try:
            wav.close()
        except OSError as exc:
            self._out.discard()
            raise files.write_error(self.path, exc) from None
        self._out.commit()

    def discard(self) -> None:
        """Drop what was written: the target stays as it was."""
        wav, self._file = self._file, None
        if wav is not None:
            try:
                wav.close()  # now, so that it has nothing left to write when it is collected
            except OSError:
                pass
            self._out.discard()
