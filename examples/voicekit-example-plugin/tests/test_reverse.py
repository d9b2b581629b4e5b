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
        options = ReverseOutput.Options(voice={"use": "beep", "word_ms": 30, "gap_ms": 0})
        async with ReverseOutput(options) as out:
            yield out


class TestReverseThroughScripted(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ReverseOutput]:
        options = ReverseOutput.Options(voice={"use": "scripted", "sample_rate": 16000, "ms_per_char": 5})
        async with ReverseOutput(options) as out:
            yield out


def test_reverse_words() -> None:
    assert reverse_words("  one two   three ") == "three two one"


async def feed(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


async def test_inner_voice_hears_reversed_text_engine_sees_original() -> None:
    registry = load_registry()
    out = registry.create("output", "reverse", {"voice": {"use": "scripted"}}, BackendContext())
    async with out:
        events = [e async for e in out.speak(feed("one two three.", "Hi"))]
        inner = out._voice
    said = [e.text for e in events if isinstance(e, (SpeakingStarted, SpeakingEnded))]
    assert said == ["one two three.", "one two three.", "Hi", "Hi"]
    assert inner.sentences == ["three. two one", "Hi"]  # type: ignore[union-attr]


async def test_reversed_twice_is_the_original_order() -> None:
    """A nested voice may itself hold a nested voice: the inner reverse undoes the outer one."""
    options = {"voice": {"use": "reverse", "voice": {"use": "scripted"}}}
    out = load_registry().create("output", "reverse", options, BackendContext())
    async with out:
        [e async for e in out.speak(feed("one two three."))]
        middle = out._voice
        inner = middle._voice  # type: ignore[union-attr]
    assert inner.sentences == ["one two three."]  # type: ignore[union-attr]
    assert middle.context.path == ("voice",) and inner.context.path == ("voice", "voice")  # type: ignore[union-attr]


def test_voice_shorthand_names_the_backend() -> None:
    assert ReverseOutput.Options(voice="beep").voice == {"use": "beep"}


def test_unknown_inner_voice_is_a_clear_error() -> None:
    with pytest.raises(ProfileError, match=r"^voice.use: unknown output backend 'beeep' \(did you mean 'beep'"):
        load_registry().create("output", "reverse", {"voice": {"use": "beeep"}})


def test_bad_inner_option_names_its_path() -> None:
    with pytest.raises(ProfileError) as info:
        load_registry().create("output", "reverse", {"voice": {"use": "beep", "word_mss": 30}})
    assert str(info.value) == "voice.word_mss: unknown option (did you mean 'word_ms'?)"


def test_voice_without_use_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'use' is missing"):
        ReverseOutput.Options(voice={"word_ms": 30})
