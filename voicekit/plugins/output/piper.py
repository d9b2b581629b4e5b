"""Piper: natural-sounding local voices (ONNX models, 22.05 kHz for most) through piper-tts.

A voice is a name (``en_US-lessac-medium``, ``ru_RU-irina-medium``, …) fetched once into
voicekit's model cache (``voicekit models pull piper:NAME``), or a local ``.onnx`` file with
its ``.onnx.json`` beside it (``model_path``). With no voice set, the profile's language
picks one (en → en_US-lessac-medium, ru → ru_RU-irina-medium).

Each sentence is synthesized on the voice's own worker thread, off the event loop; Piper
makes a sentence's audio in one go, which is then handed out in 100 ms chunks. After
:meth:`PiperOutput.interrupt` nothing more of the interrupted turn comes out: synthesis that
is under way finishes on its thread and is thrown away.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field, field_validator

from voicekit.errors import ProfileError, VoicekitError
from voicekit.options import BackendOptions
from voicekit.plugins.output._local_voice import LocalVoice, SentenceWork
from voicekit.roles import BackendContext, Capabilities
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from voicekit.models.registry import ModelSpec

#: The voice used for a conversation language when no voice is set.
DEFAULT_VOICES = {"en": "en_US-lessac-medium", "ru": "ru_RU-irina-medium"}
_CHUNK_S = 0.1


class PiperOptions(BackendOptions):
    """Options of the Piper voice."""

    voice: str | None = Field(
        None,
        description="Piper voice (en_US-lessac-medium, ru_RU-irina-medium, ...; fetched once into the model cache) "
        "or the path of a .onnx voice; default from the language: en → en_US-lessac-medium, ru → ru_RU-irina-medium",
    )
    model_path: str | None = Field(
        None,
        description="A local .onnx voice (its .onnx.json beside it) to use instead of voice; nothing is downloaded",
    )
    language: str | None = Field(None, description="Language of the text, to pick a voice; default: the profile's")
    speaker: Annotated[int, Field(ge=0, le=100_000)] | str | None = Field(
        None, description="Speaker of a multi-speaker voice: its number or name"
    )
    length_scale: float | None = Field(
        None, gt=0.2, le=4.0, description="Pace: above 1 speaks slower, below 1 faster; default: the voice's own"
    )

    @field_validator("voice")
    @classmethod
    def _voice_name(cls, voice: str | None) -> str | None:
        """A malformed voice name fails when the profile is validated."""
        if voice is not None and not _is_path(voice):
            from voicekit.models import UnknownModelError, piper_voice

            try:
                piper_voice(voice)
            except UnknownModelError as exc:
                raise ValueError(str(exc)) from None
        return voice


def _is_path(voice: str) -> bool:
    return voice.endswith(".onnx") or "/" in voice or voice.startswith((".", "~"))


class PiperOutput(LocalVoice):
    """Speaks each sentence with a Piper voice, yielding its PCM in 100 ms ``AudioOut`` chunks.

    Per sentence: ``SpeakingStarted(text)``, the audio, ``SpeakingEnded(text)``. After
    :meth:`interrupt` the current ``speak`` stops at once and yields nothing more (no
    ``SpeakingEnded`` for the cut sentence); the next ``speak`` is heard in full.
    """

    Options: ClassVar[type[PiperOptions]] = PiperOptions
    capabilities = Capabilities(streaming=True, sample_rates=(16000, 22050), produces_audio=True)
    extra: ClassVar[str | None] = "piper"
    sample_rate: int = 22050  # the loaded voice's rate once started (16 kHz for low-quality voices)
    options: PiperOptions

    #: the model-cache entry this backend loads (None: a local path); doctor reports it when missing
    cached_model: ModelSpec | None = None

    def __init__(self, options: PiperOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._voice: Any = None
        self._syn_config: Any = None
        self._executor: ThreadPoolExecutor | None = None
        if self.options.model_path is None and not _is_path(self.voice_name):
            from voicekit.models import piper_voice

            self.cached_model = piper_voice(self.voice_name)

    @property
    def voice_name(self) -> str:
        """The voice this output speaks with (a name or a path)."""
        if self.options.voice:
            return self.options.voice
        language = (self.options.language or self.context.language or "en").replace("_", "-").split("-")[0].lower()
        if language not in DEFAULT_VOICES:
            raise ProfileError(
                f"piper has no default voice for '{language}'; set output.voice (e.g. de_DE-thorsten-medium)"
            )
        return DEFAULT_VOICES[language]

    @property
    def option_path(self) -> str:
        return ".".join(str(part) for part in self.context.path) or "output"

    async def start(self) -> None:
        if self._voice is not None:
            return
        piper = import_sdk("piper", package="piper-tts", extra="piper", backend="piper")
        onnx = await asyncio.to_thread(self._voice_file)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        try:
            voice = await asyncio.get_running_loop().run_in_executor(executor, self._load, piper, onnx)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._syn_config = piper.SynthesisConfig(
            speaker_id=self._speaker_id(voice), length_scale=self.options.length_scale
        )
        self._voice, self._executor = voice, executor
        self.sample_rate = int(voice.config.sample_rate)

    def _voice_file(self) -> Path:
        o = self.options
        if o.model_path is not None or _is_path(self.voice_name):
            onnx = Path(o.model_path or self.voice_name).expanduser()
            where = f"{self.option_path}.{'model_path' if o.model_path else 'voice'}"
            for needed in (onnx, Path(f"{onnx}.json")):
                if not needed.is_file():
                    raise ProfileError(
                        f"piper: {where}: {needed} does not exist (a voice is a .onnx and its .onnx.json)"
                    )
            return onnx
        from voicekit.models import ensure

        assert self.cached_model is not None  # a local path returned above
        return ensure(self.cached_model, option=f"{self.option_path}.model_path")

    @staticmethod
    def _load(piper: Any, onnx: Path) -> Any:
        try:
            return piper.PiperVoice.load(onnx)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ProfileError(f"piper could not load the voice {onnx} ({reason})") from exc

    def _speaker_id(self, voice: Any) -> int | None:
        speaker = self.options.speaker
        if speaker is None:
            return None
        speakers: dict[str, int] = dict(voice.config.speaker_id_map or {})
        count = int(voice.config.num_speakers)
        if isinstance(speaker, str) and not speaker.isdigit():
            if speaker not in speakers:
                names = ", ".join(sorted(speakers)[:10]) or "none: it has one speaker"
                raise ProfileError(f"piper: {self.option_path}.speaker: no speaker '{speaker}' in this voice ({names})")
            return speakers[speaker]
        number = int(speaker)
        if not 0 <= number < count:
            raise ProfileError(f"piper: {self.option_path}.speaker: {number} is not in 0..{count - 1}")
        return number

    async def aclose(self) -> None:
        await self.interrupt()
        executor, self._executor = self._executor, None
        self._voice = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _ready(self) -> bool:
        return self._voice is not None

    def _worker(self) -> Executor:
        if self._executor is None:
            raise VoicekitError("piper: the voice was closed while speaking")
        return self._executor

    def _chunk_bytes(self) -> int:
        return int(self.sample_rate * _CHUNK_S) * 2

    def _sentence_work(self, text: str) -> SentenceWork:
        voice, config = self._voice, self._syn_config
        if voice is None:
            raise VoicekitError("piper: the voice was closed while speaking")

        def work(emit: Callable[[bytes], None], cancel: threading.Event) -> None:
            for chunk in voice.synthesize(text, config):  # one chunk per sentence Piper finds in the text
                if cancel.is_set():
                    return
                emit(chunk.audio_int16_bytes)

        return work
