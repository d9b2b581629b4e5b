"""``beep``: a voice that speaks each word as a tone. A template for a TTS backend.

What a real TTS backend does the same way:

- ``Options`` is a pydantic model (unknown keys are an error) whose fields all have a
  description; ``capabilities`` says what it produces, ``sample_rate`` the rate of its audio.
- ``speak`` yields, per sentence, ``SpeakingStarted(text)``, ``AudioOut`` chunks of
  16-bit mono PCM at ``sample_rate``, and ``SpeakingEnded(text)``.
- ``interrupt`` makes every ``speak`` in progress stop at once: here a generation
  counter that each ``speak`` compares before it yields.

A cloud TTS would also set ``api_key_env`` and ``extra``, import its SDK in ``start()``
through :func:`voicekit.roles.import_sdk`, and run blocking work off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.options import BackendOptions
from voicekit.roles import BackendContext, Capabilities, Output

RATES = (16000, 22050, 24000, 48000)


class BeepOptions(BackendOptions):
    """Options of the ``beep`` voice."""

    pitch_hz: float = Field(440.0, gt=20, lt=8000, description="Pitch of a one-letter word; longer words go higher")
    word_ms: float = Field(120.0, gt=0, le=2000, description="Length of the tone for each word")
    gap_ms: float = Field(60.0, ge=0, le=2000, description="Silence after each word")
    volume: float = Field(0.3, ge=0, le=1, description="Loudness, 0 to 1 of full scale")
    sample_rate: Literal[16000, 22050, 24000, 48000] = Field(24000, description="Rate of the audio it yields")


class BeepOutput(Output):
    """Speaks every word of a sentence as a short tone, its pitch rising with the word's length."""

    Options: ClassVar[type[BeepOptions]] = BeepOptions
    options: BeepOptions
    capabilities = Capabilities(streaming=True, produces_audio=True, sample_rates=RATES)

    def __init__(self, options: BeepOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.sample_rate = self.options.sample_rate
        self._generation = 0

    def word_pcm(self, word: str) -> bytes:
        """One word: a tone with soft edges, then the gap."""
        opts = self.options
        n = int(self.sample_rate * opts.word_ms / 1000)
        t = np.arange(n) / self.sample_rate
        pitch = opts.pitch_hz * (1.0 + 0.06 * (len(word) - 1))
        envelope = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * self.sample_rate))
        tone = np.sin(2 * np.pi * pitch * t) * envelope * (opts.volume * 32767)
        gap = np.zeros(int(self.sample_rate * opts.gap_ms / 1000))
        return np.concatenate([tone, gap]).astype("<i2").tobytes()

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        # Read the generation now, not when iteration starts: an interrupt() that comes
        # after this call but before the first event must still silence this turn.
        return self._speak(sentences, self._generation)

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        async for sentence in sentences:
            words = sentence.split()
            if generation != self._generation:
                return
            yield SpeakingStarted(text=sentence)
            for word in words:
                pcm = self.word_pcm(word)
                if generation != self._generation:
                    return
                yield AudioOut(pcm=pcm, sample_rate=self.sample_rate)
            if generation != self._generation:
                return
            yield SpeakingEnded(text=sentence)

    async def interrupt(self) -> None:
        self._generation += 1
