"""PocketSphinx for real on speech that espeak-ng speaks: endpointing, one Final per
utterance, interims, padding, options, and an event loop that is never blocked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pydantic
import pytest

from voicekit.errors import AudioFormatError, ProfileError
from voicekit.events import Final, Interim, SpeechEnded, SpeechStarted, UtteranceEnd
from voicekit.plugins.stt.pocketsphinx import PocketsphinxSTT, _Recognizer
from voicekit.roles import BackendContext
from voicekit.testing.speech import silence, synthesize

CHUNK = 640  # 20 ms


@pytest.fixture
async def stt() -> AsyncIterator[PocketsphinxSTT]:
    async with PocketsphinxSTT(context=BackendContext(language="en")) as backend:
        yield backend


async def _recognize(stt: PocketsphinxSTT, pcm: bytes, chunk: int = CHUNK) -> list[object]:
    async with stt.stream() as stream:
        events: list[object] = []

        async def read() -> None:
            events.extend([e async for e in stream])

        reader = asyncio.create_task(read())
        for i in range(0, len(pcm), chunk):
            stream.push_audio(pcm[i : i + chunk])
            await asyncio.sleep(0)
        stream.end_input()
        await asyncio.wait_for(reader, 60)
    return events


def _finals(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, Final)]


async def test_two_utterances_give_two_finals_with_edges(stt: PocketsphinxSTT) -> None:
    pcm = (
        silence(500)
        + synthesize("hello world", pad_ms=0)
        + silence(1200)
        + synthesize("can you tell me the weather forecast for tomorrow", pad_ms=0)
        + silence(1000)
    )
    events = await _recognize(stt, pcm)
    finals = _finals(events)
    assert len(finals) == 2, finals
    assert "world" in finals[0]
    assert "weather forecast" in finals[1] and "tomorrow" in finals[1]
    edges = [type(e) for e in events if isinstance(e, (SpeechStarted, SpeechEnded, Final, UtteranceEnd))]
    assert edges == [SpeechStarted, SpeechEnded, Final, UtteranceEnd] * 2
    assert all(e.source == "stt" for e in events if isinstance(e, (SpeechStarted, SpeechEnded)))
    assert all(f.language == "en" for f in events if isinstance(f, Final))
    # Partial hypotheses arrive while the user speaks, between the edges.
    second = events[events.index(next(e for e in events if isinstance(e, UtteranceEnd))) + 1 :]
    interims = [e for e in second if isinstance(e, Interim)]
    assert interims and all(i.text for i in interims)
    assert second.index(interims[0]) < second.index(next(e for e in second if isinstance(e, SpeechEnded)))


async def test_speech_at_the_very_start_and_end_of_the_stream(stt: PocketsphinxSTT) -> None:
    """No silence before (padded by the backend) and input ending mid-silence-window."""
    pcm = synthesize("one two three four five", pad_ms=0)
    finals = _finals(await _recognize(stt, pcm))
    assert len(finals) == 1 and "three four" in finals[0], finals


async def test_endpoint_silence_decides_what_is_one_utterance() -> None:
    pcm = (
        silence(300)
        + synthesize("hello world", pad_ms=0)
        + silence(400)
        + synthesize("one two three four five", pad_ms=0)
        + silence(900)
    )
    async with PocketsphinxSTT(PocketsphinxSTT.Options(endpoint_silence_ms=250)) as quick:
        assert len(_finals(await _recognize(quick, pcm))) == 2
    async with PocketsphinxSTT(PocketsphinxSTT.Options(endpoint_silence_ms=800)) as patient:
        finals = _finals(await _recognize(patient, pcm))
    assert len(finals) == 1 and "world" in finals[0] and "three" in finals[0], finals


async def test_batch_final_pass() -> None:
    """A second, whole-utterance decoder gives the Final; the streaming one still gives interims."""
    options = PocketsphinxSTT.Options(final_pass="batch")
    async with PocketsphinxSTT(options) as stt:
        assert stt.modes == ("streaming", "batch")
        events = await _recognize(stt, synthesize("can you tell me the weather forecast for tomorrow"))
        assert any(isinstance(e, Interim) for e in events)
        finals = _finals(events)
        assert len(finals) == 1 and "weather forecast" in finals[0], finals
        assert len(stt._idle["batch"]) == 1
    quiet = PocketsphinxSTT(PocketsphinxSTT.Options(final_pass="batch", interim_results=False))
    assert quiet.modes == ("batch",)


async def test_silence_and_noise_give_no_final(stt: PocketsphinxSTT) -> None:
    events = await _recognize(stt, silence(2000))
    assert events == []


async def test_big_and_odd_chunks(stt: PocketsphinxSTT) -> None:
    pcm = synthesize("i would like to book a table for two people tonight")
    finals = _finals(await _recognize(stt, pcm, chunk=333))
    assert len(finals) == 1 and "two people" in finals[0], finals
    pcm = synthesize("one two three four five")
    finals = _finals(await _recognize(stt, pcm, chunk=len(pcm)))
    assert len(finals) == 1 and "three four" in finals[0], finals


async def test_the_event_loop_is_never_blocked(stt: PocketsphinxSTT, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding runs on a worker thread: pushing audio never waits for the decoder, and the
    event loop runs while the decoder works.

    The decoder is held at its first frame until the test has pushed every chunk: a
    push_audio that waited for decoding would never get there. Then every decoded frame
    waits for the loop to run a callback it scheduled, which a decoder on the loop's own
    thread could never see. Both hold whatever the machine's speed.
    """
    loop = asyncio.get_running_loop()
    pushed_all = threading.Event()
    decoded_on: set[int] = set()
    waits: list[bool] = []
    real_frame = _Recognizer._frame

    def frame(self: _Recognizer, data: bytes) -> None:
        if not waits:
            waits.append(pushed_all.wait(timeout=10))
        decoded_on.add(threading.get_ident())
        if len(waits) < 20 and waits[-1]:  # a few round trips through the loop are proof enough
            ran = threading.Event()
            loop.call_soon_threadsafe(ran.set)
            waits.append(ran.wait(timeout=5))
        real_frame(self, data)

    monkeypatch.setattr(_Recognizer, "_frame", frame)
    pcm = synthesize("can you tell me the weather forecast for tomorrow") + silence(700)
    async with stt.stream() as stream:
        finals: list[str] = []

        async def read() -> None:
            finals.extend([e.text async for e in stream if isinstance(e, Final)])

        reader = asyncio.create_task(read())
        for i in range(0, len(pcm), CHUNK):
            stream.push_audio(pcm[i : i + CHUNK])
            await asyncio.sleep(0)
        pushed_all.set()
        stream.end_input()
        await asyncio.wait_for(reader, 60)
    assert waits[0], "push_audio waited for the decoder"
    assert all(waits), "the event loop did not run while pocketsphinx decoded"
    assert threading.get_ident() not in decoded_on
    assert len(finals) == 1 and "forecast" in finals[0]


async def test_closing_mid_utterance_is_prompt_and_the_decoder_is_reused(stt: PocketsphinxSTT) -> None:
    pcm = synthesize("can you tell me the weather forecast for tomorrow")
    stream = stt.stream()
    async with stream:
        stream.push_audio(pcm[: len(pcm) // 2])
        await asyncio.sleep(0.2)
    start = time.perf_counter()
    await stream.aclose()
    assert time.perf_counter() - start < 5.0, "closing waited for the decoder to finish the utterance"
    await asyncio.sleep(0.3)  # the worker finishes its chunk and returns the decoder
    assert len(stt._idle["streaming"]) == 1
    finals = _finals(await _recognize(stt, synthesize("hello world")))
    assert len(finals) == 1 and "world" in finals[0]


async def test_two_streams_at_once(stt: PocketsphinxSTT) -> None:
    first, second = await asyncio.gather(
        _recognize(stt, synthesize("hello world")), _recognize(stt, synthesize("one two three four five"))
    )
    assert "world" in _finals(first)[0] and "three" in _finals(second)[0]


def test_only_english() -> None:
    with pytest.raises(ProfileError, match=r"only English.*'ru'"):
        PocketsphinxSTT(context=BackendContext(language="ru"))
    with pytest.raises(ProfileError, match="only English"):
        PocketsphinxSTT(PocketsphinxSTT.Options(language="de"), BackendContext(language="en"))
    assert PocketsphinxSTT(context=BackendContext(language="en-US")).capabilities.languages == ("en",)


async def test_only_16k(stt: PocketsphinxSTT) -> None:
    with pytest.raises(AudioFormatError, match="16 kHz"):
        stt.stream(sample_rate=8000)


async def test_bad_model_path_is_a_profile_error(tmp_path) -> None:
    with pytest.raises(ProfileError, match="model"):
        await PocketsphinxSTT(PocketsphinxSTT.Options(acoustic_model=str(tmp_path / "missing"))).start()


def test_options_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        PocketsphinxSTT.Options(endpoint_silence_ms=10)
    with pytest.raises(pydantic.ValidationError):
        PocketsphinxSTT.Options(vad="rnnoise")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        PocketsphinxSTT.Options(model="large")  # type: ignore[call-arg]
