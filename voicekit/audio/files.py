"""Audio files: what voicekit reads (WAV, FLAC, OGG, MP3) and how it writes.

Reading an input file goes header first: the first bytes say which format it is, and
its header is checked (8 to 192 kHz, 1 to 8 channels, sizes that fit the file, at most
:data:`MAX_INPUT_SECONDS`) before any sample is read. WAV is read by
:mod:`voicekit.audio.wav`; FLAC, OGG (Vorbis, Opus) and MP3 by libsndfile through
`soundfile <https://python-soundfile.readthedocs.io>`_, imported only when such a file
is read. Samples are read in blocks and turned into 16 kHz mono as they come, so memory
holds the result, not the file.

Writing goes through :class:`AtomicFile`: a temporary file in the target's folder that
replaces the target only when it is complete.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import stat
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import numpy as np

from voicekit.audio.pcm import StreamResampler, to_mono_int16
from voicekit.errors import AudioFormatError, VoicekitError

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8000, 192_000
MAX_CHANNELS = 8
MAX_INPUT_SECONDS = 2 * 3600
FORMATS = "WAV, FLAC, OGG or MP3"
_CONVERT = "convert it first, e.g. ffmpeg -i IN -ar 16000 -ac 1 OUT.wav"


def check_format(name: str, rate: int, channels: int) -> None:
    """The sample rate and channel count of an input, or one clear error."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioFormatError(f"{name}: a sample rate of {rate} Hz ({MIN_RATE} to {MAX_RATE} Hz are read); {_CONVERT}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"{name}: {channels} channels (1 to {MAX_CHANNELS} are read); {_CONVERT}")


def max_frames(rate: int) -> int:
    return MAX_INPUT_SECONDS * rate


def check_duration(name: str, frames: int, rate: int) -> None:
    if frames > max_frames(rate):
        raise AudioFormatError(
            f"{name}: {frames / rate / 3600:.1f} hours of audio (at most {MAX_INPUT_SECONDS // 3600} hours are read); "
            "cut it into parts"
        )


def _sniff(head: bytes) -> str | None:
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    return None


def _open(path: Path) -> tuple[BinaryIO, int | None]:
    """The file opened for reading and its size (``None``: a pipe or device, read as a stream)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AudioFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise AudioFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise AudioFormatError(f"{path}: is a directory, not an audio file")
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise AudioFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return stream, (path.stat().st_size if stat.S_ISREG(mode) else None)


def load_pcm(path: str | Path, sample_rate: int = 16000) -> bytes:
    """The whole file as int16 mono PCM at ``sample_rate``; :class:`AudioFormatError`, one
    line naming the file, for anything it cannot read."""
    return b"".join(_pcm_blocks(Path(path), sample_rate))


def read_audio(path: str | Path) -> tuple[np.ndarray[Any, Any], int]:
    """All samples as a (frames, channels) array in the file's own encoding, and its rate."""
    path = Path(path)
    rate, blocks = _blocks(path)
    parts = list(blocks)
    if not parts:
        return np.zeros((0, 1), dtype=np.int16), rate
    return np.concatenate(parts), rate


def _pcm_blocks(path: Path, sample_rate: int) -> Iterator[bytes]:
    rate, blocks = _blocks(path)
    resampler = StreamResampler(rate, sample_rate)
    for samples in blocks:
        yield resampler.push(to_mono_int16(samples).tobytes())
    yield resampler.flush()


def _blocks(path: Path) -> tuple[int, Iterator[np.ndarray[Any, Any]]]:
    """The file's sample rate and its samples in blocks, the header checked first."""
    stream, size = _open(path)
    try:
        head = stream.read(12)
        kind = _sniff(head)
        if kind is None:
            raise AudioFormatError(f"{path}: not a WAV file, nor {FORMATS.replace('WAV, ', '')}: {_CONVERT}")
        if kind == "WAV":
            from voicekit.audio import wav

            if size is not None:
                stream.seek(0)
            info = wav.read_header(stream if size is not None else _Prefixed(head, stream), str(path), size)
            return info.sample_rate, _closing(stream, wav.read_blocks(stream, info, str(path)))
    except BaseException:
        stream.close()
        raise
    stream.close()
    if size is None:
        raise AudioFormatError(f"{path}: a {kind} input must be a regular file (only WAV is read from a stream)")
    return _soundfile_blocks(path, kind)


def _closing(stream: BinaryIO, blocks: Iterator[np.ndarray[Any, Any]]) -> Iterator[np.ndarray[Any, Any]]:
    with stream:
        yield from blocks


def _soundfile_blocks(path: Path, kind: str) -> tuple[int, Iterator[np.ndarray[Any, Any]]]:
    try:
        import soundfile
    except ImportError as exc:  # a dependency of voicekit: only a broken install lacks it
        raise VoicekitError(f"reading {kind} files needs soundfile, which is missing: pip install soundfile") from exc
    try:
        with _quiet_stderr():
            info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFormatError(f"{path}: not a readable {kind} file ({_said(exc, path)}); {_CONVERT}") from None
    check_format(str(path), info.samplerate, info.channels)
    check_duration(str(path), info.frames, info.samplerate)

    def blocks() -> Iterator[np.ndarray[Any, Any]]:
        limit = max_frames(info.samplerate)
        read = 0
        try:
            with _quiet_stderr():
                audio = soundfile.SoundFile(str(path))
            with audio:
                while read <= limit:
                    with _quiet_stderr():
                        block = audio.read(min(limit + 1 - read, 1 << 16), dtype="float32", always_2d=True)
                    if not len(block):
                        return
                    read += len(block)
                    check_duration(str(path), read, info.samplerate)
                    yield block
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise AudioFormatError(f"{path}: the {kind} file is damaged ({_said(exc, path)})") from None

    return info.samplerate, blocks()


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Keep the decoders' own warnings (libmpg123 writes to the C stderr) off the terminal:
    what matters is said once, as an :class:`AudioFormatError`."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _said(exc: BaseException, path: Path) -> str:
    """libsndfile's complaint without the file name it repeats."""
    text = _first_line(exc)
    return text.replace(f"Error opening {str(path)!r}: ", "").rstrip(".") or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Prefixed:
    """A stream whose first bytes were already read (for sniffing): gives them back first."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def read(self, count: int = -1, /) -> bytes:
        if count < 0:
            head, self._head = self._head, b""
            return head + self._rest.read()
        head, self._head = self._head[:count], self._head[count:]
        return head + self._rest.read(count - len(head)) if count > len(head) else head

    def seek(self, offset: int, whence: int = 0, /) -> int:
        raise io.UnsupportedOperation("a stream cannot seek")


# --- writing ---------------------------------------------------------------------------------


def write_error(path: Path, exc: OSError) -> VoicekitError:
    return VoicekitError(f"cannot write {path}: {exc.strerror or exc}")


class AtomicFile:
    """A file written beside ``path`` and renamed over it by :meth:`commit` (whole or not at all).

    :meth:`discard` (or leaving the ``with`` block without committing) removes it; an
    existing ``path`` is untouched until the commit, and a temporary file that is never
    committed is removed when the object is collected. A ``path`` that exists and is not a
    regular file (``/dev/null``, a pipe) is written directly. Errors are one line naming ``path``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._temp: Path | None = None
        if self.path.is_dir():
            raise VoicekitError(f"cannot write {self.path}: it is a directory")
        try:
            if self.path.exists() and not self.path.is_file():
                self.file: IO[bytes] = self.path.open("wb")
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.part"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to any new file
        except OSError as exc:
            raise write_error(self.path, exc) from None
        self._temp = temp
        self.file = os.fdopen(fd, "wb")
        self._cleanup = weakref.finalize(self, _remove_quietly, str(temp))

    def commit(self) -> None:
        """Put the finished file in place."""
        try:
            self.file.close()
            if self._temp is not None:
                os.replace(self._temp, self.path)
                self._forget_temp()
        except OSError as exc:
            self.discard()
            raise write_error(self.path, exc) from None

    def discard(self) -> None:
        """Forget what was written; the target stays as it was."""
        with contextlib.suppress(OSError):
            self.file.close()
        if self._temp is not None:
            _remove_quietly(str(self._temp))
            self._forget_temp()

    def _forget_temp(self) -> None:
        self._temp = None
        self._cleanup.detach()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._temp is not None or not self.file.closed:
            self.discard()


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
