"""espeak-ng: the offline voice that works right after ``pip install 'voicekit[offline]'``.

It runs the espeak-ng library from the ``espeakng-loader`` wheel (library and voice
data included: no system package, no download). English and Russian are tested;
any other espeak voice can be named with the ``voice`` option.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from voicekit.options import BackendOptions
from voicekit.plugins.output._local_voice import LocalVoice, SentenceWork
from voicekit.roles import BackendContext, Capabilities

if TYPE_CHECKING:
    from voicekit.plugins.output._espeakng import EspeakEngine


class EspeakOptions(BackendOptions):
    """Options of the espeak-ng voice."""

    voice: str | None = Field(
        None, description="espeak voice name (en-us, en-gb, ru, ...); default from the language: en → en-us, ru → ru"
    )
    language: str | None = Field(None, description="Language of the text; default: the profile's language")
    rate: int = Field(175, ge=80, le=450, description="Speaking rate in words per minute")
    pitch: int = Field(50, ge=0, le=100, description="Base pitch, 0-100")
    volume: int = Field(100, ge=0, le=200, description="Volume, 0-200 (100 is normal)")


class EspeakOutput(LocalVoice):
    """Speaks each sentence with espeak-ng, streaming 22,050 Hz PCM as it is synthesized.

    Per sentence it yields ``SpeakingStarted(text)``, ``AudioOut`` chunks of about 60 ms
    and ``SpeakingEnded(text)``. After :meth:`interrupt` the current ``speak`` call
    stops at once and yields nothing more (no ``SpeakingEnded`` for the cut sentence).
    """

    Options: ClassVar[type[EspeakOptions]] = EspeakOptions
    capabilities = Capabilities(streaming=True, languages=("en", "ru"), sample_rates=(22050,), produces_audio=True)
    extra: ClassVar[str | None] = "offline"
    sample_rate: int = 22050
    options: EspeakOptions

    def __init__(self, options: EspeakOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._engine: EspeakEngine | None = None

    @property
    def voice(self) -> str:
        """The espeak voice this output speaks with."""
        from voicekit.plugins.output._espeakng import voice_for

        return self.options.voice or voice_for(self.options.language or self.context.language)

    async def start(self) -> None:
        from voicekit.plugins.output._espeakng import get_engine

        loop = asyncio.get_running_loop()
        engine = await loop.run_in_executor(None, get_engine)
        await loop.run_in_executor(engine.executor, engine.set_voice, self.voice)  # unknown voice: error now
        self.sample_rate = engine.sample_rate
        self._engine = engine

    async def aclose(self) -> None:
        await self.interrupt()

    def _ready(self) -> bool:
        return self._engine is not None

    def _worker(self) -> Executor:
        assert self._engine is not None
        return self._engine.executor

    def _sentence_work(self, text: str) -> SentenceWork:
        engine = self._engine
        assert engine is not None
        o = self.options

        def work(emit: Callable[[bytes], None], cancel: threading.Event) -> None:
            engine.synthesize(text, emit, voice=self.voice, rate=o.rate, pitch=o.pitch, volume=o.volume, cancel=cancel)

        return work
