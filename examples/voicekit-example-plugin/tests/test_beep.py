"""The beep voice passes voicekit's Output contract, and beeps as documented."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from voicekit.events import AudioOut
from voicekit.testing.contracts import OutputContract

from voicekit_example.beep import BeepOutput


class TestBeepContract(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[BeepOutput]:
        async with BeepOutput(BeepOutput.Options(word_ms=40, gap_ms=10)) as beep:
            yield beep


class TestBeepContract16k(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[BeepOutput]:
        async with BeepOutput(BeepOutput.Options(sample_rate=16000)) as beep:
            yield beep


async def one(text: str) -> AsyncIterator[str]:
    yield text


async def test_one_tone_per_word() -> None:
    beep = BeepOutput(BeepOutput.Options(word_ms=100, gap_ms=50, sample_rate=16000))
    chunks = [e async for e in beep.speak(one("a bb ccc")) if isinstance(e, AudioOut)]
    assert len(chunks) == 3
    assert all(len(c.pcm) == 2 * (1600 + 800) for c in chunks)
    loud = np.frombuffer(chunks[0].pcm, dtype="<i2")[:1600].astype(float)
    assert np.sqrt(np.mean(loud**2)) > 5000  # volume 0.3 of full scale
