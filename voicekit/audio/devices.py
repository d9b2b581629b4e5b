"""Microphone and speaker through PyAudio (extra ``mic``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from voicekit.audio.pcm import frame_bytes
from voicekit.audio.sinks import AudioSink
from voicekit.errors import AudioDeviceError, MissingExtraError

log = logging.getLogger(__name__)


def _pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError as exc:
        raise MissingExtraError("pyaudio", "mic") from exc
    silence_native_audio_logs()
    return pyaudio


_quiet_handlers: list[Any] = []  # the C callbacks must outlive every call into the libraries


def silence_native_audio_logs() -> bool:
    """Stop ALSA and JACK from writing to stderr behind voicekit's back ("ALSA lib pcm.c: ...
    underrun occurred", JACK's server probing) for the rest of the process; idempotent.

    Both libraries print through a handler that can be replaced: ALSA's
    ``snd_lib_error_set_handler``, JACK's ``jack_set_error_function`` and
    ``jack_set_info_function``. Whether ALSA's was replaced is returned (``False`` without libasound).
    """
    import ctypes
    import ctypes.util

    if _quiet_handlers:
        return True
    silenced = False
    alsa_name = ctypes.util.find_library("asound")
    if alsa_name:
        try:
            alsa = ctypes.CDLL(alsa_name)
            # void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
            handler_type = ctypes.CFUNCTYPE(
                None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
            )
            handler = handler_type(lambda *_: None)
            alsa.snd_lib_error_set_handler(handler)
            _quiet_handlers.append(handler)
            silenced = True
        except (OSError, AttributeError):
            log.debug("could not quiet ALSA's messages", exc_info=True)
    jack_name = ctypes.util.find_library("jack")
    if jack_name:
        try:
            jack = ctypes.CDLL(jack_name)
            message_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
            quiet = message_type(lambda _: None)
            jack.jack_set_error_function(quiet)
            jack.jack_set_info_function(quiet)
            _quiet_handlers.append(quiet)
        except (OSError, AttributeError):
            log.debug("could not quiet JACK's messages", exc_info=True)
    return silenced


def _open_portaudio(pa_mod: Any) -> Any:
    """PortAudio probes ALSA and JACK noisily on stderr; keep that off the user's terminal."""
    import os
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return pa_mod.PyAudio()
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        return pa_mod.PyAudio()
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    inputs: int
    outputs: int
    default_rate: int
    is_default_input: bool
    is_default_output: bool


def list_devices() -> list[DeviceInfo]:
    """Every audio device PortAudio sees."""
    pa_mod = _pyaudio()
    pa = _open_portaudio(pa_mod)
    try:
        try:
            default_in = pa.get_default_input_device_info()["index"]
        except OSError:
            default_in = -1
        try:
            default_out = pa.get_default_output_device_info()["index"]
        except OSError:
            default_out = -1
        devices = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            devices.append(
                DeviceInfo(
                    index=i,
                    name=str(info["name"]),
                    inputs=int(info["maxInputChannels"]),
                    outputs=int(info["maxOutputChannels"]),
                    default_rate=int(info["defaultSampleRate"]),
                    is_default_input=i == default_in,
                    is_default_output=i == default_out,
                )
            )
        return devices
    finally:
        pa.terminate()


def _resolve(pa: Any, device: int | str | None, *, input: bool) -> int | None:
    kind = "input" if input else "output"
    if device is None:
        try:
            return int(
                pa.get_default_input_device_info()["index"] if input else pa.get_default_output_device_info()["index"]
            )
        except OSError:
            raise AudioDeviceError(
                f"no default {kind} audio device found; run 'voicekit devices' to list devices"
                + (", or use --input FILE.wav" if input else ", or use --output FILE.wav")
            ) from None
    if isinstance(device, int) or str(device).isdigit():
        return int(device)
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        channels = info["maxInputChannels"] if input else info["maxOutputChannels"]
        if channels > 0 and str(device).lower() in str(info["name"]).lower():
            return i
    raise AudioDeviceError(f"no {kind} device matches '{device}'; run 'voicekit devices' to list devices")


class MicSource:
    """16 kHz mono frames from a microphone; async-iterate to read."""

    def __init__(self, device: int | str | None = None, *, sample_rate: int = 16000, frame_ms: int = 20) -> None:
        self.device = device
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self._pa: Any = None
        self._stream: Any = None

    def open(self) -> None:
        pa_mod = _pyaudio()
        self._pa = _open_portaudio(pa_mod)
        index = _resolve(self._pa, self.device, input=True)
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=500)

        def callback(data: bytes, *_: Any) -> tuple[None, int]:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._offer, data)
            return None, pa_mod.paContinue

        try:
            self._stream = self._pa.open(
                format=pa_mod.paInt16,
                channels=1,
                rate=self.sample_rate,
                input=True,
                input_device_index=index,
                frames_per_buffer=frame_bytes(self.sample_rate, self.frame_ms) // 2,
                stream_callback=callback,
            )
        except OSError as exc:
            self.close()
            raise AudioDeviceError(f"cannot open the microphone: {exc}; use --input FILE.wav instead") from exc

    def _offer(self, data: bytes) -> None:
        if self._queue.full():  # the consumer fell behind: drop the oldest, keep recent speech
            self._queue.get_nowait()
        self._queue.put_nowait(data)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        if self._stream is None:
            self.open()
        try:
            while True:
                yield await self._queue.get()
        finally:
            self.close()

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.stop_stream()
            stream.close()
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()


class SpeakerSink(AudioSink):
    """Plays through a speaker; a writer thread feeds PortAudio in ~100 ms blocks."""

    def __init__(self, device: int | str | None = None, *, sample_rate: int = 24000) -> None:
        super().__init__(sample_rate, realtime=True, lookahead_ms=120)
        pa_mod = _pyaudio()
        self._pa = _open_portaudio(pa_mod)
        index = _resolve(self._pa, device, input=False)
        try:
            self._stream = self._pa.open(
                format=pa_mod.paInt16,
                channels=1,
                rate=sample_rate,
                output=True,
                output_device_index=index,
                frames_per_buffer=frame_bytes(sample_rate, 100) // 2,
            )
        except OSError as exc:
            self._pa.terminate()
            raise AudioDeviceError(f"cannot open the speaker: {exc}; use --output FILE.wav instead") from exc
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._writer, name="voicekit-speaker", daemon=True)
        self._thread.start()

    def _writer(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            try:
                self._stream.write(chunk)
            except OSError as exc:
                log.warning("speaker write failed: %s", exc)

    def _write(self, pcm: bytes) -> None:
        self._chunks.put(pcm)

    def _clear(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._chunks.get_nowait()

    async def aclose(self) -> None:
        self._chunks.put(None)
        await asyncio.to_thread(self._thread.join, 5)
        with contextlib.suppress(OSError):
            self._stream.stop_stream()
        self._stream.close()
        self._pa.terminate()
