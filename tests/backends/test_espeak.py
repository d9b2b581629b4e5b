"""espeak-ng output for real: sentence framing, streamed chunks, Russian, interruption, and
speech that pocketsphinx understands."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import numpy as np
import pydantic
import pytest

from voicekit.errors import ProfileError
from voicekit.events import AudioOut, Final, SpeakingEnded, SpeakingStarted
from voicekit.plugins.output._espeakng import get_engine, voice_for
from voicekit.plugins.output.espeak import EspeakOutput
from voicekit.roles import BackendContext

RATE = 22050


async def _feed(sentences: Iterable[str]) -> AsyncIterator[str]:
    for sentence in sentences:
        yield sentence


async def _speak(output: EspeakOutput, sentences: Iterable[str]) -> list[object]:
    return [event async for event in output.speak(_feed(sentences))]


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


@pytest.fixture
async def english() -> AsyncIterator[EspeakOutput]:
    async with EspeakOutput(EspeakOutput.Options(), BackendContext(language="en")) as out:
        yield out


async def test_sentences_are_framed_and_streamed_in_chunks(english: EspeakOutput) -> None:
    events = await _speak(english, ["Hello world.", "  ", "Open the door."])
    kinds = [type(e) for e in events]
    assert kinds[0] is SpeakingStarted and kinds[-1] is SpeakingEnded
    assert [e.text for e in events if isinstance(e, SpeakingStarted)] == ["Hello world.", "Open the door."]
    assert [e.text for e in events if isinstance(e, SpeakingEnded)] == ["Hello world.", "Open the door."]
    second = kinds.index(SpeakingStarted, 1)
    for sentence in (events[1 : second - 1], events[second + 1 : -1]):
        chunks = [e for e in sentence if isinstance(e, AudioOut)]
        assert len(chunks) == len(sentence) >= 5, "a sentence is several AudioOut chunks"
        assert all(e.sample_rate == RATE == english.sample_rate for e in chunks)
        durations_ms = [len(e.pcm) / 2 / RATE * 1000 for e in chunks]
        assert max(durations_ms) <= 100 and min(durations_ms) > 0
        assert 0.4 < sum(durations_ms) / 1000 < 3.0


async def test_what_it_says_is_heard_back_by_pocketsphinx(english: EspeakOutput) -> None:
    import soxr

    from voicekit.plugins.stt.pocketsphinx import PocketsphinxSTT

    events = await _speak(english, ["Hello world.", "One two three four five."])
    sentences: list[bytes] = []
    for event in events:
        if isinstance(event, SpeakingStarted):
            sentences.append(b"")
        elif isinstance(event, AudioOut):
            sentences[-1] += event.pcm
    async with PocketsphinxSTT() as stt, stt.stream() as stream:
        for pcm in sentences:  # each sentence as its own utterance, a second apart
            speech = soxr.resample(np.frombuffer(pcm, dtype=np.int16), RATE, 16000).astype(np.int16).tobytes()
            stream.push_audio(bytes(8000) + speech + bytes(24000))
        stream.end_input()
        heard = [e.text async for e in stream if isinstance(e, Final)]
    assert len(heard) == 2, heard
    assert "world" in heard[0], heard
    assert "three" in heard[1] and "four" in heard[1], heard


async def test_russian_voice_from_the_profile_language() -> None:
    async with EspeakOutput(context=BackendContext(language="ru")) as out:
        assert out.voice == "ru"
        events = await _speak(out, ["Привет, как у тебя дела?"])
    pcm = b"".join(e.pcm for e in events if isinstance(e, AudioOut))
    assert 1.0 < len(pcm) / 2 / RATE < 4.0
    assert _rms(pcm) > 1000
    # Cyrillic read by the English voice is not the same speech.
    english = get_engine().synthesize_all("Привет, как у тебя дела?", voice="en-us")
    assert abs(len(english) - len(pcm)) > 0.2 * len(pcm) or _rms(english) < 500


def test_voice_choice() -> None:
    assert voice_for("en") == "en-us" and voice_for("ru") == "ru" and voice_for(None) == "en-us"
    assert voice_for("en-GB") == "en-gb"
    out = EspeakOutput(EspeakOutput.Options(voice="en-gb", language="ru"))
    assert out.voice == "en-gb"
    assert EspeakOutput(EspeakOutput.Options(language="ru"), BackendContext(language="en")).voice == "ru"


async def test_rate_and_pitch_change_the_audio(english: EspeakOutput) -> None:
    normal = b"".join(e.pcm for e in await _speak(english, ["One two three four five."]) if isinstance(e, AudioOut))
    async with EspeakOutput(EspeakOutput.Options(rate=300, pitch=80)) as fast:
        quick = b"".join(e.pcm for e in await _speak(fast, ["One two three four five."]) if isinstance(e, AudioOut))
    assert len(quick) < 0.75 * len(normal)


async def test_unknown_voice_fails_at_start() -> None:
    with pytest.raises(ProfileError, match=r"voice 'xx-nowhere'.*output.voice"):
        await EspeakOutput(EspeakOutput.Options(voice="xx-nowhere")).start()
    # The engine is fine afterwards.
    assert get_engine().synthesize_all("ok", voice="en-us")


def test_options_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        EspeakOutput.Options(rate=1000)
    with pytest.raises(pydantic.ValidationError):
        EspeakOutput.Options(pitch=-1)
    with pytest.raises(pydantic.ValidationError):
        EspeakOutput.Options(speed=1.0)  # type: ignore[call-arg]


async def test_interrupt_ends_the_turn_at_once(english: EspeakOutput) -> None:
    long_reply = ["This is a long sentence that goes on and on about many things. " * 4] * 3
    speech = english.speak(_feed(long_reply))
    assert isinstance(await speech.__anext__(), SpeakingStarted)
    assert isinstance(await speech.__anext__(), AudioOut)
    start = time.perf_counter()
    await english.interrupt()
    rest = [e async for e in speech]
    assert rest == []
    assert time.perf_counter() - start < 2.0, "interrupt() waited for synthesis to finish"
    # The next turn is spoken in full.
    events = await _speak(english, ["Hello again."])
    assert isinstance(events[-1], SpeakingEnded) and any(isinstance(e, AudioOut) for e in events)


def test_cancel_stops_synthesis_inside_the_library() -> None:
    """A cancelled synthesis stops within a chunk, long before the text is done."""
    engine = get_engine()
    cancel = threading.Event()
    chunks: list[bytes] = []

    def on_audio(pcm: bytes) -> None:
        chunks.append(pcm)
        if len(chunks) == 3:
            cancel.set()

    text = "Count with me: " + ", ".join(str(n) for n in range(1, 400)) + "."
    completed = engine.synthesize(text, on_audio, voice="en-us", cancel=cancel)
    assert completed is False
    assert len(chunks) <= 4, "synthesis went on after the cancel"
    full = engine.synthesize_all("Count with me: one, two, three.", voice="en-us")
    assert len(full) / 2 / RATE > 1.0, "the engine works after an abort"


async def test_synthesis_runs_off_the_event_loop(english: EspeakOutput) -> None:
    """While a sentence is synthesized, the event loop keeps running.

    Each audio callback of the engine (on the synthesizing thread) waits until the loop
    has run a callback it scheduled. Synthesis on the loop's own thread would block that
    wait until its timeout: the test fails by that, whatever the machine's speed.
    """
    loop = asyncio.get_running_loop()
    engine = get_engine()
    real_synthesize = engine.synthesize
    waits: list[bool] = []

    def synthesize(text: str, on_audio: Any, **params: Any) -> Any:
        def checked(pcm: bytes) -> Any:
            if not waits or waits[-1]:  # after one failed wait, do not wait again
                ran = threading.Event()
                loop.call_soon_threadsafe(ran.set)
                waits.append(ran.wait(timeout=5))
            return on_audio(pcm)

        return real_synthesize(text, checked, **params)

    engine.synthesize = synthesize  # type: ignore[method-assign]
    try:
        events = [e async for e in english.speak(_feed(["Count with me: one, two, three, four, five."]))]
    finally:
        del engine.synthesize
    assert any(isinstance(e, AudioOut) for e in events)
    assert waits and all(waits), "the event loop did not run while espeak-ng synthesized"
