"""The base of voices synthesized on this machine, on a worker thread (espeak, Piper)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import aclosing
from typing import Any

from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.roles import BackendContext, Output

#: one sentence's synthesis, run on the worker: it hands each PCM block to ``emit`` as it is
#: made and stops early when the event is set
SentenceWork = Callable[[Callable[[bytes], None], threading.Event], None]

_DONE = object()


class LocalVoice(Output):
    """A voice whose engine runs in this process, off the event loop.

    Who does what: the subclass opens its engine in :meth:`start`, says whether it is open
    (:meth:`_ready`), which executor runs it (:meth:`_worker`) and how one sentence is made
    (:meth:`_sentence_work`, blocking). This base turns sentences into ``SpeakingStarted``,
    ``AudioOut`` (as the worker makes them, split into :meth:`_chunk_bytes` pieces when that
    is set) and ``SpeakingEnded``; after :meth:`interrupt` the current ``speak`` stops at once
    and yields nothing more (no ``SpeakingEnded`` for the cut sentence), and the worker stops
    at its next block.
    """

    def __init__(self, options: Any = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._generation = 0  # bumped by interrupt(): a speak() from an older generation stops
        self._active: set[threading.Event] = set()

    def _ready(self) -> bool:
        raise NotImplementedError

    def _worker(self) -> Executor:
        raise NotImplementedError

    def _sentence_work(self, text: str) -> SentenceWork:
        raise NotImplementedError

    def _chunk_bytes(self) -> int | None:
        """The size of the ``AudioOut`` pieces (None: the worker's blocks as they come)."""
        return None

    async def interrupt(self) -> None:
        """Stop speaking now; audio of the interrupted turn never comes later."""
        self._generation += 1
        for cancel in list(self._active):
            cancel.set()

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        # the generation of this call, not of the first read: interrupt() from now on stops it
        return self._speak(sentences, self._generation)

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        if not self._ready():
            await self.start()
        step = self._chunk_bytes()
        async for sentence in sentences:
            if self._generation != generation:
                return
            text = sentence.strip()
            if not text:
                continue
            yield SpeakingStarted(text)
            async with aclosing(self._synthesize(text)) as blocks:
                async for pcm in blocks:
                    for offset in range(0, len(pcm), step or len(pcm)):
                        if self._generation != generation:
                            return
                        yield AudioOut(pcm[offset : offset + step] if step else pcm, self.sample_rate)
            if self._generation != generation:
                return
            yield SpeakingEnded(text)

    async def _synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """The PCM blocks of one sentence, handed over from the worker thread as they are made."""
        work, executor = self._sentence_work(text), self._worker()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                cancel.set()

        def run() -> None:
            try:
                work(post, cancel)
            except BaseException as exc:  # handed to the reader, who raises it  # noqa: BLE001
                post(exc)
            finally:
                post(_DONE)

        self._active.add(cancel)
        try:
            future = loop.run_in_executor(executor, run)
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                if item:
                    yield item
            await future
        finally:
            cancel.set()  # also stops the worker when the reader went away early
            self._active.discard(cancel)
