"""``reverse``: speaks the reply with its word order reversed, through another voice.

A template for a backend that wraps another one: it builds the inner voice from the
registry (so any installed voice can be used, with its own options), forwards
``interrupt`` and ``aclose``, and rewrites the events so the engine still sees the
sentences it sent.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field
from voicekit.errors import ProfileError
from voicekit.events import OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.options import BackendOptions
from voicekit.roles import BackendContext, Capabilities, Output


def reverse_words(text: str) -> str:
    """``"one two three"`` → ``"three two one"``."""
    return " ".join(reversed(text.split()))


class ReverseOptions(BackendOptions):
    """Options of the ``reverse`` voice."""

    voice: str = Field("espeak", description="The registered output backend that speaks the reversed text")
    voice_options: dict[str, Any] = Field(default_factory=dict, description="Options for that voice")


class ReverseOutput(Output):
    """Reverses the word order of each sentence and has another voice speak it."""

    Options: ClassVar[type[ReverseOptions]] = ReverseOptions
    options: ReverseOptions
    capabilities = Capabilities(
        streaming=True, produces_audio=True, sample_rates=(8000, 16000, 22050, 24000, 44100, 48000)
    )

    def __init__(self, options: ReverseOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        if self.options.voice == "reverse":
            raise ProfileError("reverse: 'voice' must name another output backend, e.g. espeak")
        # Build the inner voice now (it is cheap: nothing is opened before start()) so that
        # sample_rate is known before the conversation starts, as the engine expects.
        # context.build validates the inner voice like a top-level one: errors name the
        # profile's file, line and path (output.voice_options.voise: unknown option ...)
        inner = self.context.build(
            "output", {"use": self.options.voice, **self.options.voice_options}, key="voice_options"
        )
        if not isinstance(inner, Output):
            raise ProfileError(f"reverse: '{self.options.voice}' is not an output backend")
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
