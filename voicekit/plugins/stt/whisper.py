"""Whisper: local speech recognition with faster-whisper (CTranslate2), in many languages.

Whisper transcribes whole stretches of audio, so the stream cuts its own utterances with a
voice activity detector (webrtc by default, as the engine's): audio from a little before
speech starts to ``endpoint_silence_ms`` after it stops. Each utterance is transcribed
once, on a worker thread, giving exactly one ``Final``; with ``interim_ms`` the utterance
heard so far is also transcribed at that interval while the user speaks, for ``Interim``
results (each costs a transcription: off by default, as a CPU has little to spare).

The model is a name (``tiny.en``, ``base``, ``small``, ``large-v3-turbo``, …) fetched once into
voicekit's model cache (``voicekit models pull whisper:NAME``), or a local CTranslate2 model
folder (``model_path``). English-only models (``.en``) hear only English; the others hear
``language`` (``ru``, …) or, with ``auto``, detect it per utterance.

Transcriptions of one backend run one at a time on its own thread, in order, so Finals come
in the order the utterances were spoken.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from voicekit.errors import AudioFormatError, ProfileError, VoicekitError
from voicekit.events import Final, Interim, SpeechEnded, SpeechStarted, UtteranceEnd
from voicekit.options import BackendOptions
from voicekit.roles import STT, BackendContext, Capabilities, STTStream
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

_SAMPLE_RATE = 16000
_BYTES_PER_MS = 32

ComputeType = Literal[
    "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32", "default"
]


class WhisperOptions(BackendOptions):
    """Options of the faster-whisper recognizer."""

    model: str = Field(
        "tiny.en",
        description="Whisper model: tiny.en, tiny, base.en, base, small, medium, large-v3, large-v3-turbo, "
        "distil-large-v3 (fetched once into the model cache), or the path of a CTranslate2 model folder",
    )
    model_path: str | None = Field(
        None, description="A local CTranslate2 Whisper model folder to use instead of model; nothing is downloaded"
    )
    language: str | None = Field(
        None, description="Language spoken (en, ru, ...) or auto to detect it per utterance; default: the profile's"
    )
    compute_type: ComputeType = Field(
        "int8", description="CTranslate2 precision: int8 (fastest on CPU), float16 (GPU), float32, default (as stored)"
    )
    beam_size: int = Field(
        5, ge=1, le=10, description="Beam search width: 5 as Whisper; 1 (greedy) is ~30 % faster and less accurate"
    )
    cpu_threads: int = Field(0, ge=0, le=64, description="CPU threads per transcription; 0: the cores, up to 4")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Where the model runs")
    prompt: str | None = Field(
        None, description="Text the speech follows, to steer vocabulary and spelling (names, jargon)"
    )
    interim_ms: int | None = Field(
        None,
        ge=200,
        le=10_000,
        description="Transcribe the utterance heard so far this often, for Interim results; off by default",
    )
    vad: Literal["webrtc", "silero"] = Field("webrtc", description="Voice activity detector that cuts utterances")
    vad_mode: int = Field(3, ge=0, le=3, description="webrtc aggressiveness, 0 (least) to 3 (most)")
    endpoint_silence_ms: int = Field(400, ge=100, le=5000, description="Silence that ends an utterance")
    min_speech_ms: int = Field(150, ge=20, le=2000, description="Speech must last this long to start an utterance")
    pad_ms: int = Field(300, ge=0, le=2000, description="Audio kept from before the detected start of speech")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        """A typo in a model name fails when the profile is validated, with a close match."""
        if not _is_path(model):
            from voicekit.models import UnknownModelError, resolve

            try:
                resolve(f"whisper:{model}")
            except UnknownModelError as exc:
                raise ValueError(str(exc)) from None
        return model


def _is_path(model: str) -> bool:
    return "/" in model or os.sep in model or model.startswith((".", "~"))


def _english_only(options: WhisperOptions) -> bool:
    return options.model_path is None and not _is_path(options.model) and options.model.endswith(".en")


def _language_code(language: str | None) -> str | None:
    """Whisper's two-letter code for a profile language ("en-US" → "en"); None for auto."""
    if not language or language.lower() == "auto":
        return None
    return language.replace("_", "-").split("-")[0].lower()


class WhisperSTT(STT):
    """Local streaming recognition with faster-whisper: one Final per utterance its VAD cuts."""

    Options: ClassVar[type[WhisperOptions]] = WhisperOptions
    capabilities = Capabilities(streaming=True, interim_results=False, sample_rates=(_SAMPLE_RATE,))
    extra: ClassVar[str | None] = "whisper"
    options: WhisperOptions

    @classmethod
    def capabilities_for(cls, options: Any) -> Capabilities:
        return dataclasses.replace(
            cls.capabilities,
            interim_results=options.interim_ms is not None,
            languages=("en",) if _english_only(options) else (),
        )

    def __init__(self, options: WhisperOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._model: Any = None
        self._executor: ThreadPoolExecutor | None = None
        o = self.options
        if o.model_path is None and not _is_path(o.model):
            from voicekit.models import resolve

            self._spec = resolve(f"whisper:{o.model}")
        self._check_language(o.language or self.context.language)

    def _check_language(self, language: str | None) -> None:
        """An English-only model (by its name, or once loaded by what it is) refuses another language."""
        code = _language_code(language)
        if code in (None, "en"):
            return
        if _english_only(self.options):
            raise ProfileError(
                f"whisper model {self.options.model} hears only English, not '{language}'; "
                f"use a multilingual model (model: {self.options.model.removesuffix('.en')})"
            )
        if self._model is not None and not self._model.model.is_multilingual:
            folder = self.options.model_path or self.options.model
            raise ProfileError(
                f"the whisper model in {folder} hears only English, not '{language}'; use a multilingual model"
            )

    @property
    def option_path(self) -> str:
        """Where this backend's options are in the profile (``stt``, ``stt.fallback.0``)."""
        return ".".join(str(part) for part in self.context.path) or "stt"

    async def start(self) -> None:
        if self._model is not None:
            return
        sdk = import_sdk("faster_whisper", package="faster-whisper", extra="whisper", backend="whisper")
        from voicekit.audio.vad import create_vad

        create_vad(self.options.vad, mode=self.options.vad_mode)  # a missing VAD engine fails now, not mid-stream
        folder = await asyncio.to_thread(self._model_folder)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        try:
            self._model = await asyncio.get_running_loop().run_in_executor(executor, self._load, sdk, folder)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor
        try:
            self._check_language(self.options.language or self.context.language)
        except ProfileError:
            await self.aclose()
            raise

    def _model_folder(self) -> Path:
        o = self.options
        if o.model_path is not None or _is_path(o.model):
            folder = Path(o.model_path or o.model).expanduser()
            if not (folder / "model.bin").is_file():
                where = f"{self.option_path}.model_path" if o.model_path else f"{self.option_path}.model"
                raise ProfileError(
                    f"whisper: {where}: {folder} is not a CTranslate2 Whisper model folder (no model.bin)"
                )
            return folder
        from voicekit.models import ensure

        return ensure(self._spec, option=f"{self.option_path}.model_path")

    def _load(self, sdk: Any, folder: Path) -> Any:
        o = self.options
        threads = o.cpu_threads or min(4, os.cpu_count() or 1)
        try:
            return sdk.WhisperModel(str(folder), device=o.device, compute_type=o.compute_type, cpu_threads=threads)
        except (RuntimeError, ValueError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProfileError(
                f"whisper could not load the model in {folder} ({reason}); "
                f"check {self.option_path}.device and {self.option_path}.compute_type"
            ) from exc

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        self._model = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def stream(self, *, sample_rate: int = _SAMPLE_RATE, language: str | None = None) -> STTStream:
        if sample_rate != _SAMPLE_RATE:
            raise AudioFormatError(f"whisper takes 16 kHz audio, not {sample_rate} Hz")
        if self._model is None or self._executor is None:
            raise VoicekitError("whisper: call start() (or use 'async with') before stream()")
        spoken = self.options.language or language or self.context.language
        self._check_language(spoken)
        return WhisperStream(self, language=_language_code(spoken))

    def transcribe(self, pcm: bytes, language: str | None, *, quick: bool = False) -> tuple[str, str | None]:
        """The text of one utterance and its language (blocking: the worker thread calls it).

        ``quick`` (for interims): greedy, with no retry at higher temperatures.
        """
        o = self.options
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=1 if quick else o.beam_size,
            temperature=0.0 if quick else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            initial_prompt=o.prompt,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        return text, info.language


class WhisperStream(STTStream):
    """One recognition stream: VAD endpointing on the event loop, transcription on the worker thread."""

    def __init__(self, stt: WhisperSTT, language: str | None) -> None:
        super().__init__(_SAMPLE_RATE, language)
        self._stt = stt
        self._closed = False
        self._utterance = 0  # the number of the utterance being heard (or last heard)
        self._hearing = False  # inside an utterance
        self._interim_busy = False
        self._last_interim = ""

    async def run(self) -> None:
        from voicekit.audio.vad import create_vad
        from voicekit.plugins.stt.whisper_utterances import UtteranceCutter, UtteranceStarted

        o = self._stt.options
        vad = create_vad(o.vad, mode=o.vad_mode, min_speech_ms=o.min_speech_ms, min_silence_ms=o.endpoint_silence_ms)
        cutter = UtteranceCutter(vad, lead_ms=o.min_speech_ms + o.pad_ms)
        interim_step = o.interim_ms * _BYTES_PER_MS if o.interim_ms else 0
        next_interim = interim_step
        finals: asyncio.Queue[asyncio.Future[tuple[str, str | None]] | None] = asyncio.Queue()
        publisher = asyncio.ensure_future(self._publish(finals))
        try:
            async for chunk in self.audio():
                for edge in cutter.feed(chunk):
                    if isinstance(edge, UtteranceStarted):
                        self._utterance += 1
                        self._hearing = True
                        self._last_interim, next_interim = "", interim_step
                        self.emit(SpeechStarted(source="stt"))
                    else:
                        self._hearing = False
                        self.emit(SpeechEnded(source="stt"))
                        finals.put_nowait(self._submit(edge.pcm, quick=False))
                if publisher.done():
                    publisher.result()  # a transcription failed: raise it now, not at the end of the input
                if interim_step and cutter.in_speech and cutter.utterance_bytes >= next_interim:
                    next_interim = cutter.utterance_bytes + interim_step
                    if not self._interim_busy:
                        self._interim(cutter.utterance)
            ended = cutter.finish()
            self._hearing = False
            if ended is not None:
                self.emit(SpeechEnded(source="stt"))
                finals.put_nowait(self._submit(ended.pcm, quick=False))
            finals.put_nowait(None)
            await publisher
        finally:
            self._closed = True  # transcriptions queued and not started are skipped
            publisher.cancel()

    def _submit(self, pcm: bytes, *, quick: bool) -> asyncio.Future[tuple[str, str | None]]:
        executor = self._stt._executor
        if executor is None:
            raise VoicekitError("whisper: the backend was closed while a stream was running")
        stt, language = self._stt, self.language

        def work() -> tuple[str, str | None]:
            if self._closed:
                return "", None
            return stt.transcribe(pcm, language, quick=quick)

        return asyncio.get_running_loop().run_in_executor(executor, work)

    def _interim(self, pcm: bytes) -> None:
        utterance = self._utterance
        self._interim_busy = True
        future = self._submit(pcm, quick=True)

        def done(result: asyncio.Future[tuple[str, str | None]]) -> None:
            self._interim_busy = False
            if result.cancelled() or result.exception() is not None or self._closed:
                return
            text = result.result()[0]
            if utterance == self._utterance and self._hearing and text and text != self._last_interim:
                self._last_interim = text
                self.emit(Interim(text))

        future.add_done_callback(done)

    async def _publish(self, finals: asyncio.Queue[asyncio.Future[tuple[str, str | None]] | None]) -> None:
        """Each utterance's Final, in the order spoken; an utterance with no words gives none."""
        while (future := await finals.get()) is not None:
            text, language = await future
            if text:
                self.emit(Final(text, language=language))
                self.emit(UtteranceEnd())
