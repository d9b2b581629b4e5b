"""piper-tts for real with the en_US-joe-medium voice from PyPI: what it says is heard by Whisper,
options, barge-in, the model cache, the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import numpy as np
import pydantic
import pytest
import soxr

from tests.backends.test_piper_weights import piper_joe_medium
from tests.backends.test_whisper_accuracy import normalize
from tests.backends.test_whisper_weights import whisper_tiny_en
from tests.fakes.hf_hub import FakeHub
from voicekit import models
from voicekit.clock import now
from voicekit.errors import ProfileError
from voicekit.events import AudioOut, Final, SpeakingEnded, SpeakingStarted
from voicekit.plugins.output.piper import PiperOutput
from voicekit.plugins.stt.whisper import WhisperSTT
from voicekit.roles import BackendContext


@pytest.fixture
async def voice() -> AsyncIterator[PiperOutput]:
    async with PiperOutput(PiperOutput.Options(model_path=str(piper_joe_medium()))) as out:
        yield out


async def _say(out: PiperOutput, sentences: Sequence[str]) -> list[object]:
    async def feed() -> AsyncIterator[str]:
        for sentence in sentences:
            yield sentence

    return [event async for event in out.speak(feed())]


def _pcm(events: list[object]) -> bytes:
    return b"".join(e.pcm for e in events if isinstance(e, AudioOut))


async def test_whisper_hears_what_piper_says(voice: PiperOutput) -> None:
    events = await _say(voice, ["What is the weather like in London?", "Set a timer for ten minutes."])
    assert voice.sample_rate == 22050
    assert [type(e) for e in events if not isinstance(e, AudioOut)] == [SpeakingStarted, SpeakingEnded] * 2
    chunks = [e for e in events if isinstance(e, AudioOut)]
    assert all(e.sample_rate == 22050 and len(e.pcm) <= 2 * 2205 for e in chunks)  # 100 ms at most
    samples = np.frombuffer(_pcm(events), dtype=np.int16)
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 1000  # speech, not silence
    speech = np.asarray(soxr.resample(samples, 22050, 16000), dtype=np.int16).tobytes()
    async with WhisperSTT(WhisperSTT.Options(model_path=str(whisper_tiny_en()))) as stt:
        async with stt.stream() as stream:
            stream.push_audio(bytes(9600) + speech + bytes(32000))
            stream.end_input()
            heard = " ".join(e.text for e in [e async for e in stream] if isinstance(e, Final))
    assert {"weather", "london", "timer", "ten", "minutes"} <= set(normalize(heard)), heard


async def test_length_scale_sets_the_pace() -> None:
    path = str(piper_joe_medium())
    lengths = []
    for scale in (0.8, 1.6):
        async with PiperOutput(PiperOutput.Options(model_path=path, length_scale=scale)) as out:
            lengths.append(len(_pcm(await _say(out, ["Good morning to you all."]))))
    assert lengths[1] > 1.5 * lengths[0], lengths


async def test_interrupt_drops_the_rest_of_the_turn(voice: PiperOutput) -> None:
    async def feed() -> AsyncIterator[str]:
        for sentence in ("This is the first sentence of a long answer.", "Nobody hears this.", "Nor this."):
            yield sentence

    speech = voice.speak(feed())
    seen: list[object] = []
    async for event in speech:
        seen.append(event)
        if isinstance(event, AudioOut):
            await voice.interrupt()
    spoken = [e.text for e in seen if isinstance(e, SpeakingStarted)]
    assert spoken == ["This is the first sentence of a long answer."]
    assert sum(isinstance(e, AudioOut) for e in seen) == 1 and not any(isinstance(e, SpeakingEnded) for e in seen)
    assert len(await _say(voice, ["Hello again."])) > 2  # the next turn is heard


async def test_the_event_loop_runs_while_piper_synthesizes(voice: PiperOutput) -> None:
    ticks: list[float] = []
    running = True

    async def tick() -> None:
        while running:
            ticks.append(now())
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        events = await _say(voice, ["A sentence long enough to take the voice a while to synthesize, on any machine."])
    finally:
        running = False
        await ticker
    started = next(e.t for e in events if isinstance(e, SpeakingStarted))
    first_audio = next(e.t for e in events if isinstance(e, AudioOut))
    assert any(started < t < first_audio for t in ticks)


def test_voice_from_the_language_and_checked_names() -> None:
    assert PiperOutput(context=BackendContext(language="ru-RU")).voice_name == "ru_RU-irina-medium"
    assert PiperOutput().voice_name == "en_US-lessac-medium"
    with pytest.raises(ProfileError, match=r"piper has no default voice for 'de'; set output\.voice"):
        PiperOutput(context=BackendContext(language="de"))
    with pytest.raises(pydantic.ValidationError, match="'lessac' is not a Piper voice name"):
        PiperOutput.Options(voice="lessac")


async def test_bad_speaker_and_missing_files(tmp_path: Path) -> None:
    path = str(piper_joe_medium())
    with pytest.raises(ProfileError, match=r"output.speaker: 3 is not in 0..0"):
        await PiperOutput(PiperOutput.Options(model_path=path, speaker=3)).start()
    with pytest.raises(ProfileError, match=r"output\.speaker: no speaker 'amy' in this voice"):
        await PiperOutput(PiperOutput.Options(model_path=path, speaker="amy")).start()
    with pytest.raises(ProfileError, match=r"piper: output.voice: .*nowhere.onnx does not exist"):
        await PiperOutput(PiperOutput.Options(voice=str(tmp_path / "nowhere.onnx"))).start()
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    (tmp_path / "bad.onnx.json").write_text("{}")
    with pytest.raises(ProfileError, match="piper could not load the voice"):
        await PiperOutput(PiperOutput.Options(model_path=str(tmp_path / "bad.onnx"))).start()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The hub serving the joe voice where the piper-voices repository has it, and an empty cache."""
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with FakeHub() as fake:
        fake.add_folder("rhasspy/piper-voices", piper_joe_medium().parent, prefix="en/en_US/joe/medium/")
        monkeypatch.setenv("HF_ENDPOINT", fake.base_url)
        yield fake


async def test_a_voice_by_name_comes_from_the_model_cache(hub: FakeHub) -> None:
    async with PiperOutput(PiperOutput.Options(voice="en_US-joe-medium")) as out:
        assert len(_pcm(await _say(out, ["Hello there."]))) > 22050  # at least half a second of speech
    spec = models.resolve("piper:en_US-joe-medium")
    assert models.is_cached(spec)
    assert (models.model_dir(spec) / "en/en_US/joe/medium/MODEL_CARD").read_text().count("CC0") == 1


async def test_a_voice_that_cannot_be_downloaded(hub: FakeHub) -> None:
    hub.repos["rhasspy/piper-voices"].clear()
    with pytest.raises(models.ModelUnavailableError) as caught:
        await PiperOutput(PiperOutput.Options(voice="en_US-joe-medium")).start()
    assert "rhasspy/piper-voices has no file en/en_US/joe/medium/en_US-joe-medium.onnx" in str(caught.value)
    assert "voicekit models pull piper:en_US-joe-medium" in str(caught.value)
    assert "output.model_path" in str(caught.value)
