"""``reverse``: speaks the reply with its word order reversed, through another voice.

A template for a backend that wraps another one. Its ``voice`` option holds the inner
voice's spec (``voice: {use: espeak, voice: en-us}``, any installed voice with its own
options), typed :data:`voicekit.options.NestedOutput`, so ``voicekit profiles validate``
checks it like a top-level voice. The backend builds the inner voice with
``context.build``, starts and closes it with itself, forwards ``interrupt``, and
rewrites the events so the engine still sees the sentences it sent.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator
from typing import ClassVar

from pydantic import Field
from voicekit.errors import ProfileError
from voicekit.events import OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.options import BackendOptions, NestedOutput
from voicekit.roles import BackendContext, Capabilities, Output


def reverse_words(text: str) -> str:
    """``"one two three"`` → ``"three two one"``."""
    return " ".join(reversed(text.split()))


class ReverseOptions(BackendOptions):
    """Options of the ``reverse`` voice."""

    voice: NestedOutput = Field(
        default_factory=lambda: {"use": "espeak"},
        description="The voice that speaks the reversed text, with its options: {use: espeak, voice: en-us}",
    )


class ReverseOutput(Output):
    """Reverses the word order of each sentence and has another voice speak it."""

    Options: ClassVar[type[ReverseOptions]] = ReverseOptions
    options: ReverseOptions
    capabilities = Capabilities(
        streaming=True, produces_audio=True, sample_rates=(8000, 16000, 22050, 24000, 44100, 48000)
    )

    def __init__(self, options: ReverseOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        # Build the inner voice now (it is cheap: nothing is opened before start()) so that
        # sample_rate is known before the conversation starts, as the engine expects.
        # context.build checks it like a top-level voice: errors name the profile's file,
        # line and path (output.voice.voise: unknown option (did you mean 'voice'?)).
        inner = self.context.build("output", self.options.voice, key="voice")
        if not isinstance(inner, Output):
            raise ProfileError(f"reverse: '{self.options.voice['use']}' is not an output backend")
        self._voice: Output | None = inner
        self.sample_rate = self._voice.sample_rate

    async def start(self) -> None:
        if self._voice is not None:
            await self._voice.start()
            self.sample_rate = self._voice.sample_rate

    async def aclose(self) -> None:
        voice, self._voice = self._voice, None
        if voice is not None:
            await voice.aclose()

    async def interrupt(self) -> None:
        if self._voice is not None:
            await self._voice.interrupt()

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        if self._voice is None:
            raise RuntimeError("ReverseOutput.speak() before start()")
        originals: deque[str] = deque()

        async def reversed_sentences() -> AsyncIterator[str]:
            async for sentence in sentences:
                originals.append(sentence)
                yield reverse_words(sentence)

        return self._relabel(self._voice.speak(reversed_sentences()), originals)

    @staticmethod
    async def _relabel(events: AsyncIterator[OutputEvent], originals: deque[str]) -> AsyncIterator[OutputEvent]:
        """The inner voice's events, with the text the engine sent instead of the reversed one."""
        current = ""
        async for event in events:
            if isinstance(event, SpeakingStarted):
                current = originals.popleft()
                yield dataclasses.replace(event, text=current)
            elif isinstance(event, SpeakingEnded):
                yield dataclasses.replace(event, text=current)
            else:
                yield event
