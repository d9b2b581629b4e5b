"""The reverse voice passes the Output contract through other voices, and reverses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from voicekit.errors import ProfileError
from voicekit.events import SpeakingEnded, SpeakingStarted
from voicekit.registry import load_registry
from voicekit.roles import BackendContext
from voicekit.testing.contracts import OutputContract

from voicekit_example.reverse import ReverseOutput, reverse_words


class TestReverseThroughBeep(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ReverseOutput]:
        options = ReverseOutput.Options(voice="beep", voice_options={"word_ms": 30, "gap_ms": 0})
        async with ReverseOutput(options) as out:
            yield out


class TestReverseThroughScripted(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ReverseOutput]:
        options = ReverseOutput.Options(voice="scripted", voice_options={"sample_rate": 16000, "ms_per_char": 5})
        async with ReverseOutput(options) as out:
            yield out


def test_reverse_words() -> None:
    assert reverse_words("  one two   three ") == "three two one"


async def feed(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


async def test_inner_voice_hears_reversed_text_engine_sees_original() -> None:
    registry = load_registry()
    out = registry.create("output", "reverse", {"voice": "scripted"}, BackendContext())
    async with out:
        events = [e async for e in out.speak(feed("one two three.", "Hi"))]
        inner = out._voice
    said = [e.text for e in events if isinstance(e, (SpeakingStarted, SpeakingEnded))]
    assert said == ["one two three.", "one two three.", "Hi", "Hi"]
    assert inner.sentences == ["three. two one", "Hi"]  # type: ignore[union-attr]


def test_reverse_cannot_wrap_itself() -> None:
    with pytest.raises(ProfileError, match="another output backend"):
        load_registry().create("output", "reverse", {"voice": "reverse"})


def test_unknown_inner_voice_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="did you mean 'beep'"):
        load_registry().create("output", "reverse", {"voice": "beeep"})
