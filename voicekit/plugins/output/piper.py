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
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from voicekit.errors import ProfileError, VoicekitError
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.options import BackendOptions
from voicekit.roles import BackendContext, Capabilities, Output
from voicekit.sdk import import_sdk

#: The voice used for a conversation language when no voice is set.
DEFAULT_VOICES = {"en": "en_US-lessac-medium", "ru": "ru_RU-irina-medium"}
_CHUNK_S = 0.1
_DONE = object()


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
    speaker: int | str | None = Field(None, description="Speaker of a multi-speaker voice: its number or name")
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


class PiperOutput(Output):
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

    def __init__(self, options: PiperOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._voice: Any = None
        self._syn_config: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._generation = 0  # bumped by interrupt(): a speak() from an older generation stops
        self._active: set[threading.Event] = set()
        if self.options.model_path is None and not _is_path(self.voice_name):
            from voicekit.models import piper_voice

            self._spec = piper_voice(self.voice_name)

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

        return ensure(self._spec, option=f"{self.option_path}.model_path")

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

    async def interrupt(self) -> None:
        """Stop speaking now; audio of the interrupted turn never comes later."""
        self._generation += 1
        for cancel in list(self._active):
            cancel.set()

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        # the generation of this call, not of the first read: interrupt() from now on stops it
        return self._speak(sentences, self._generation)

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        if self._voice is None:
            await self.start()
        step = int(self.sample_rate * _CHUNK_S) * 2
        async for sentence in sentences:
            if self._generation != generation:
                return
            text = sentence.strip()
            if not text:
                continue
            yield SpeakingStarted(text)
            async with aclosing(self._synthesize(text)) as blocks:
                async for pcm in blocks:
                    for offset in range(0, len(pcm), step):
                        if self._generation != generation:
                            return
                        yield AudioOut(pcm[offset : offset + step], self.sample_rate)
            if self._generation != generation:
                return
            yield SpeakingEnded(text)

    async def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """The PCM of ``text``, one block per sentence Piper finds in it, made on the worker thread."""
        voice, config, executor = self._voice, self._syn_config, self._executor
        if voice is None or executor is None:
            raise VoicekitError("piper: the voice was closed while speaking")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        def work() -> None:
            try:
                for chunk in voice.synthesize(text, config):
                    if cancel.is_set():
                        return
                    post(chunk.audio_int16_bytes)
            except BaseException as exc:  # handed to the reader, who raises it  # noqa: BLE001
                post(exc)
            finally:
                post(_DONE)

        self._active.add(cancel)
        try:
            future = loop.run_in_executor(executor, work)
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                if item:
                    yield item
            await future
        finally:
            cancel.set()  # also stops the worker between sentences when the reader went away early
            self._active.discard(cancel)
