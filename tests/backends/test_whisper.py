"""faster-whisper for real (Whisper tiny.en from PyPI) on speech that espeak-ng speaks: its own
endpointing, one Final per utterance, interims, options, the model cache, the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pydantic
import pytest

from tests.backends.test_whisper_accuracy import normalize
from tests.backends.test_whisper_weights import whisper_tiny_en
from tests.fakes.hf_hub import FakeHub
from voicekit import models
from voicekit.clock import now
from voicekit.errors import AudioFormatError, ProfileError, VoicekitError
from voicekit.events import Final, Interim, SpeechEnded, SpeechStarted, UtteranceEnd
from voicekit.plugins.stt.whisper import WhisperSTT
from voicekit.roles import BackendContext
from voicekit.testing.speech import silence, synthesize

CHUNK = 640  # 20 ms


@pytest.fixture
async def stt() -> AsyncIterator[WhisperSTT]:
    async with WhisperSTT(WhisperSTT.Options(model_path=str(whisper_tiny_en()))) as backend:
        yield backend


async def _recognize(stt: WhisperSTT, pcm: bytes, chunk: int = CHUNK, pace_s: float = 0.0) -> list[object]:
    async with stt.stream() as stream:
        events: list[object] = []

        async def read() -> None:
            events.extend([e async for e in stream])

        reader = asyncio.create_task(read())
        for i in range(0, len(pcm), chunk):
            stream.push_audio(pcm[i : i + chunk])
            await asyncio.sleep(pace_s)
        stream.end_input()
        await asyncio.wait_for(reader, 120)
    return events


def _finals(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, Final)]


async def test_two_utterances_give_two_finals_in_order(stt: WhisperSTT) -> None:
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
    assert "world" in normalize(finals[0])
    assert {"weather", "forecast", "tomorrow"} <= set(normalize(finals[1]))
    kinds = [type(e) for e in events]
    assert kinds.count(SpeechStarted) == kinds.count(SpeechEnded) == kinds.count(UtteranceEnd) == 2
    ends = [i for i, kind in enumerate(kinds) if kind is SpeechEnded]
    final_at = [i for i, kind in enumerate(kinds) if kind is Final]
    assert all(end < final for end, final in zip(ends, final_at, strict=True))  # each Final after its end of speech
    assert kinds[final_at[0] + 1] is UtteranceEnd and kinds[final_at[1] + 1] is UtteranceEnd
    assert all(e.source == "stt" for e in events if isinstance(e, (SpeechStarted, SpeechEnded)))
    assert all(e.language == "en" for e in events if isinstance(e, Final))


async def test_speech_at_the_very_start_and_end_of_the_stream(stt: WhisperSTT) -> None:
    """No silence before the speech, and the input ends before the endpoint silence."""
    finals = _finals(await _recognize(stt, synthesize("one two three four five", pad_ms=0)))
    assert len(finals) == 1 and {"three", "four"} <= set(normalize(finals[0])), finals


async def test_silence_gives_nothing_at_all(stt: WhisperSTT) -> None:
    assert await _recognize(stt, silence(2000)) == []


async def test_endpoint_silence_decides_what_is_one_utterance() -> None:
    pcm = (
        silence(300)
        + synthesize("hello world", pad_ms=0)
        + silence(500)
        + synthesize("one two three four five", pad_ms=0)
        + silence(900)
    )
    path = str(whisper_tiny_en())
    async with WhisperSTT(WhisperSTT.Options(model_path=path, endpoint_silence_ms=250)) as quick:
        assert len(_finals(await _recognize(quick, pcm))) == 2
    async with WhisperSTT(WhisperSTT.Options(model_path=path, endpoint_silence_ms=800)) as patient:
        finals = _finals(await _recognize(patient, pcm))
    assert len(finals) == 1 and {"world", "three"} <= set(normalize(finals[0])), finals


async def test_odd_and_big_chunks(stt: WhisperSTT) -> None:
    pcm = synthesize("i would like to book a table for two people tonight")
    finals = _finals(await _recognize(stt, pcm, chunk=333))
    assert len(finals) == 1 and {"table", "people"} <= set(normalize(finals[0])), finals
    finals = _finals(await _recognize(stt, pcm, chunk=len(pcm)))
    assert len(finals) == 1 and {"table", "people"} <= set(normalize(finals[0])), finals


async def test_interims_while_the_user_speaks() -> None:
    """With ``interim_ms`` the utterance heard so far is transcribed while it goes on (pushed in real time)."""
    options = WhisperSTT.Options(model_path=str(whisper_tiny_en()), interim_ms=400, beam_size=1)
    speech = synthesize("please send the report to my email address before the meeting starts tomorrow", pad_ms=0)
    async with WhisperSTT(options) as stt:
        assert stt.capabilities.interim_results
        events = await _recognize(stt, silence(300) + speech + silence(800), pace_s=0.02)
    kinds = [type(e) for e in events]
    interims = [e for e in events if isinstance(e, Interim)]
    assert interims, kinds
    start, end = kinds.index(SpeechStarted), kinds.index(SpeechEnded)
    assert all(start < events.index(i) < end for i in interims), kinds  # none after the end of speech
    assert len({i.text for i in interims}) == len(interims)  # only changes are reported
    assert len(_finals(events)) == 1


async def test_the_event_loop_runs_while_whisper_transcribes(stt: WhisperSTT) -> None:
    """Transcription happens on a worker thread: between the end of speech and the Final the loop keeps turning."""
    ticks: list[float] = []
    running = True

    async def tick() -> None:
        while running:
            ticks.append(now())
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        events = await _recognize(stt, synthesize("can you tell me the weather forecast for tomorrow"))
    finally:
        running = False
        await ticker
    ended = next(e.t for e in events if isinstance(e, SpeechEnded))
    final = next(e.t for e in events if isinstance(e, Final))
    assert any(ended < t < final for t in ticks)


async def test_streams_one_after_another_share_the_model(stt: WhisperSTT) -> None:
    for _ in range(2):
        assert len(_finals(await _recognize(stt, synthesize("good morning")))) == 1


def test_options_checked_when_the_profile_is_read() -> None:
    with pytest.raises(
        pydantic.ValidationError, match=r"unknown model 'whisper:tiny\.eng' \(did you mean 'whisper:tiny\.en'"
    ):
        WhisperSTT.Options(model="tiny.eng")
    assert WhisperSTT.Options(model="./my-model").model == "./my-model"  # a path is not looked up
    with pytest.raises(
        ProfileError, match=r"tiny.en hears only English, not 'ru'; use a multilingual model \(model: tiny\)"
    ):
        WhisperSTT(WhisperSTT.Options(model="tiny.en"), BackendContext(language="ru"))
    assert WhisperSTT(WhisperSTT.Options(model="small"), BackendContext(language="ru-RU")).capabilities.languages == ()
    assert WhisperSTT.capabilities_for(WhisperSTT.Options(model="base.en")).languages == ("en",)
    assert not WhisperSTT.capabilities_for(WhisperSTT.Options()).interim_results


async def test_a_model_folder_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"whisper: stt.model_path: .* is not a CTranslate2 Whisper model folder"):
        await WhisperSTT(WhisperSTT.Options(model_path=str(tmp_path))).start()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    with pytest.raises(ProfileError, match="whisper could not load the model in"):
        await WhisperSTT(WhisperSTT.Options(model=str(broken))).start()


async def test_an_english_only_folder_refuses_another_language() -> None:
    options = WhisperSTT.Options(model_path=str(whisper_tiny_en()), language="ru")
    with pytest.raises(ProfileError, match="hears only English, not 'ru'"):
        await WhisperSTT(options).start()


async def test_stream_misuse(stt: WhisperSTT) -> None:
    with pytest.raises(AudioFormatError, match="16 kHz"):
        stt.stream(sample_rate=8000)
    with pytest.raises(VoicekitError, match="call start"):
        WhisperSTT(WhisperSTT.Options(model_path=str(whisper_tiny_en()))).stream()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The hub serving Whisper tiny.en as Systran publishes it, and an empty model cache."""
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as fake:
        fake.add_folder("Systran/faster-whisper-tiny.en", whisper_tiny_en())
        monkeypatch.setenv("HF_ENDPOINT", fake.base_url)
        yield fake


async def test_a_model_by_name_is_downloaded_once_into_the_cache(hub: FakeHub) -> None:
    async with WhisperSTT(WhisperSTT.Options(model="tiny.en")) as stt:
        assert len(_finals(await _recognize(stt, synthesize("hello world")))) == 1
    assert models.is_cached(models.resolve("whisper:tiny.en"))
    asked = len(hub.requests)
    hub.stop()  # the next start needs no hub
    async with WhisperSTT(WhisperSTT.Options(model="tiny.en")) as stt:
        assert len(_finals(await _recognize(stt, synthesize("good morning")))) == 1
    assert len(hub.requests) == asked
    hub.start()  # for the fixture's own stop


async def test_a_missing_model_that_cannot_be_downloaded(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    context = BackendContext(path=("stt", "fallback", 0))
    with pytest.raises(models.ModelUnavailableError) as caught:
        await WhisperSTT(WhisperSTT.Options(model="tiny.en"), context).start()
    message = str(caught.value)
    assert "run 'voicekit models pull whisper:tiny.en'" in message
    assert "or set stt.fallback.0.model_path to a local copy" in message and "\n" not in message


async def test_an_english_only_folder_refuses_a_stream_in_another_language(stt: WhisperSTT) -> None:
    with pytest.raises(ProfileError, match="hears only English, not 'ru'"):
        stt.stream(language="ru")
    assert stt.stream(language="en-US").language == "en"
