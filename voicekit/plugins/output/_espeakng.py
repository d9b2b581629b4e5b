"""ctypes binding to the espeak-ng library that the ``espeakng-loader`` wheel ships.

espeak-ng is a C library with process-wide state: one voice, one set of parameters
and one audio callback. So the process has a single :class:`EspeakEngine`
(:func:`get_engine`), every synthesis holds its lock, and async callers run it on the
engine's own worker thread (:attr:`EspeakEngine.executor`). Audio arrives through the
callback in chunks of about 60 ms of 22,050 Hz int16 mono; returning non-zero from the
callback makes espeak stop at once, which is how synthesis is interrupted.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from voicekit.errors import ProfileError, VoicekitError
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # the pause that follows a sentence, so consecutive sentences do not run together
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_EE_NOT_FOUND = 2

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

#: The voice used for a conversation language when no voice is set.
DEFAULT_VOICES = {"en": "en-us", "ru": "ru"}


def voice_for(language: str | None) -> str:
    """The espeak voice for a language code ("en", "ru", "en-GB", ...); English if none."""
    if not language:
        return DEFAULT_VOICES["en"]
    code = language.replace("_", "-").lower()
    return DEFAULT_VOICES.get(code, code)


class EspeakEngine:
    """The process's espeak-ng instance. Use :func:`get_engine`; never build a second one."""

    def __init__(self) -> None:
        loader = import_sdk("espeakng_loader", package="espeakng-loader", extra="offline", backend="espeak")
        try:
            self._lib = ctypes.CDLL(loader.get_library_path())
            data_path = loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise VoicekitError(
                f"espeak-ng could not be loaded ({exc}); pip install --force-reinstall espeakng-loader"
            ) from exc
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise VoicekitError(f"espeak-ng failed to start with the data in {data_path}; reinstall espeakng-loader")
        self.sample_rate: int = rate
        self.lock = threading.Lock()
        #: One worker thread: all async synthesis runs here, off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._voice: str | None = None
        self._params: dict[int, int] = {}
        self._sink: Callable[[bytes], None] | None = None
        self._cancel: threading.Event | None = None
        # The CFUNCTYPE object must outlive every call into the library.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, numsamples: int, _events: Any) -> int:
        cancel = self._cancel
        if cancel is not None and cancel.is_set():
            return 1
        if numsamples > 0 and wav and self._sink is not None:
            self._sink(ctypes.string_at(wav, numsamples * 2))
        return 1 if cancel is not None and cancel.is_set() else 0

    def set_voice(self, voice: str) -> None:
        """Select a voice by name ("en-us", "ru", ...); :class:`ProfileError` if espeak has none such."""
        with self.lock:
            self._set_voice(voice)

    def _set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        status = self._lib.espeak_SetVoiceByName(voice.encode())
        if status != 0:
            self._voice = None
            reason = "no such voice" if status == _EE_NOT_FOUND else f"error {status}"
            raise ProfileError(f"espeak: cannot use voice '{voice}' ({reason}); set output.voice to e.g. en-us, ru")
        self._voice = voice
        self._params.clear()  # a new voice resets rate and pitch to its own defaults

    def _set_param(self, param: int, value: int) -> None:
        if self._params.get(param) != value:
            self._lib.espeak_SetParameter(param, value, 0)
            self._params[param] = value

    def synthesize(
        self,
        text: str,
        on_audio: Callable[[bytes], None],
        *,
        voice: str = "en-us",
        rate: int = 175,
        pitch: int = 50,
        volume: int = 100,
        cancel: threading.Event | None = None,
    ) -> bool:
        """Speak ``text``, handing each chunk of PCM to ``on_audio`` as it is made.

        Blocks until done (call it from a worker thread). Returns ``False`` when
        ``cancel`` was set and synthesis stopped early.
        """
        data = text.encode("utf-8") + b"\0"
        with self.lock:
            self._set_voice(voice)
            self._set_param(_PARAM_RATE, rate)
            self._set_param(_PARAM_PITCH, pitch)
            self._set_param(_PARAM_VOLUME, volume)
            self._sink, self._cancel = on_audio, cancel
            try:
                status = self._lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
                )
            finally:
                self._sink, self._cancel = None, None
        if cancel is not None and cancel.is_set():
            return False
        if status != 0:
            raise VoicekitError(f"espeak-ng failed to synthesize (error {status})")
        return True

    def synthesize_all(self, text: str, **params: Any) -> bytes:
        """All of ``text`` as one block of PCM at :attr:`sample_rate` (blocking)."""
        chunks: list[bytes] = []
        self.synthesize(text, chunks.append, **params)
        return b"".join(chunks)


_engine: EspeakEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> EspeakEngine:
    """The process-wide espeak-ng engine, started on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = EspeakEngine()
            log.debug("espeak-ng started at %d Hz", _engine.sample_rate)
        return _engine
