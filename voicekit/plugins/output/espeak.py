"""espeak-ng: the offline voice that works right after ``pip install 'voicekit[offline]'``.

It runs the espeak-ng library from the ``espeakng-loader`` wheel (library and voice
data included: no system package, no download). English and Russian are tested;
any other espeak voice can be named with the ``voice`` option.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.options import BackendOptions
from voicekit.roles import BackendContext, Capabilities, Output

if TYPE_CHECKING:
    from voicekit.plugins.output._espeakng import EspeakEngine

_DONE = object()


class EspeakOptions(BackendOptions):
    """Options of the espeak-ng voice."""

    voice: str | None = Field(
        None, description="espeak voice name (en-us, en-gb, ru, ...); default from the language: en → en-us, ru → ru"
    )
    language: str | None = Field(None, description="Language of the text; default: the profile's language")
    rate: int = Field(175, ge=80, le=450, description="Speaking rate in words per minute")
    pitch: int = Field(50, ge=0, le=100, description="Base pitch, 0-100")
    volume: int = Field(100, ge=0, le=200, description="Volume, 0-200 (100 is normal)")


class EspeakOutput(Output):
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
        self._generation = 0  # bumped by interrupt(): a speak() from an older generation stops
        self._active: set[threading.Event] = set()

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

    async def interrupt(self) -> None:
        """Stop synthesis now; audio of the interrupted turn never comes later."""
        self._generation += 1
        for cancel in list(self._active):
            cancel.set()

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        # the generation of this call, not of the first read: interrupt() from now on stops it
        return self._speak(sentences, self._generation)

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        if self._engine is None:
            await self.start()
        async for sentence in sentences:
            if self._generation != generation:
                return
            text = sentence.strip()
            if not text:
                continue
            yield SpeakingStarted(text)
            async with aclosing(self._synthesize(text)) as chunks:
                async for pcm in chunks:
                    if self._generation != generation:
                        return
                    yield AudioOut(pcm, self.sample_rate)
            if self._generation != generation:
                return
            yield SpeakingEnded(text)

    async def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """PCM chunks of one sentence, handed over from the worker thread as espeak makes them."""
        engine = self._engine
        assert engine is not None
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
                engine.synthesize(
                    text,
                    post,
                    voice=self.voice,
                    rate=self.options.rate,
                    pitch=self.options.pitch,
                    volume=self.options.volume,
                    cancel=cancel,
                )
            except BaseException as exc:  # handed to the reader, who raises it  # noqa: BLE001
                post(exc)
            finally:
                post(_DONE)

        self._active.add(cancel)
        try:
            future = loop.run_in_executor(engine.executor, work)
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                yield item
            await future
        finally:
            cancel.set()  # also stops the worker when the consumer went away early
            self._active.discard(cancel)
