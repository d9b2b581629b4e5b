"""Chirp 3 HD output: the real google-cloud-texttospeech SDK against the local gRPC fake."""

from __future__ import annotations

import asyncio
import struct
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tests.fakes.google_tts import FakeTTSServer, tone, wav_file
from voicekit.clock import now
from voicekit.engine import retry
from voicekit.errors import AudioFormatError, AuthError, BackendError, ProfileError
from voicekit.events import AudioOut, OutputEvent, SpeakingStarted
from voicekit.options import RetryPolicy
from voicekit.plugins.output.chirp3 import Chirp3Output, wav_to_pcm
from voicekit.roles import BackendContext
from voicekit.testing.contracts import OutputContract

ROOT = Path(__file__).resolve().parents[2]
RATE = 24000
SENTENCES = ["Привет! ", "Сегодня хорошая погода для прогулки. ", "Пока."]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTTSServer]:
    server = FakeTTSServer()
    await server.start()
    yield server
    await server.stop()


def make_output(fake: FakeTTSServer, language: str | None = "ru", **options: Any) -> Chirp3Output:
    out = Chirp3Output(Chirp3Output.Options(base_url=fake.address, **options), BackendContext(language=language))
    out.name = "chirp3"
    return out


def policy(**fields: int) -> RetryPolicy:
    """A role's ``retry:`` policy, without waits unless asked (tests stay fast)."""
    return RetryPolicy.model_validate({"initial_ms": 0, "max_ms": 0, **fields})


async def speak_retried(out: Chirp3Output, texts: Sequence[str], retry_policy: RetryPolicy) -> list[OutputEvent]:
    """``speak`` as the core runs it: tried again per the policy while nothing has been yielded."""
    return [event async for event in retry.stream(lambda: out.speak(feed(texts)), retry_policy, label=out.label)]


async def feed(texts: Sequence[str], gap_s: float = 0.0, log: list[float] | None = None) -> AsyncIterator[str]:
    for i, text in enumerate(texts):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        if log is not None:
            log.append(now())
        yield text


async def speak(out: Chirp3Output, texts: Sequence[str], **kw: Any) -> list[OutputEvent]:
    return [event async for event in out.speak(feed(texts, **kw))]


def per_sentence(events: Sequence[OutputEvent]) -> list[tuple[str, int]]:
    """(sentence, audio bytes) per SpeakingStarted/SpeakingEnded pair, checking the nesting."""
    spans: list[tuple[str, int]] = []
    current: str | None = None
    size = 0
    for event in events:
        if isinstance(event, SpeakingStarted):
            assert current is None, events
            current, size = event.text, 0
        elif isinstance(event, AudioOut):
            assert current is not None and event.sample_rate == RATE and len(event.pcm) % 2 == 0
            size += len(event.pcm)
        else:
            assert event.text == current, events
            spans.append((current, size))
            current = None
    assert current is None
    return spans


def expected_bytes(fake: FakeTTSServer, text: str) -> int:
    return len(tone(fake.seconds_for(text.strip()), RATE, 220.0))


# --- one stream per turn, fed sentence by sentence ----------------------------------------


async def test_streams_a_turn_sentence_by_sentence(fake: FakeTTSServer) -> None:
    async with make_output(fake) as out:
        events = await speak(out, SENTENCES)
    spans = per_sentence(events)
    assert [text for text, _ in spans] == SENTENCES
    assert sum(size for _, size in spans) == sum(expected_bytes(fake, s) for s in SENTENCES)
    (call,) = fake.streams
    assert call.voice == "ru-RU-Chirp3-HD-Aoede" and call.sample_rate == 24000
    assert call.texts == [s.strip() for s in SENTENCES] and call.code == "OK"


async def test_audio_comes_before_the_reply_is_written(fake: FakeTTSServer) -> None:
    # Sentences 0.3 s apart, as from a streaming LLM: the first audio is out long before
    # the last sentence exists, and each sentence reached the service as it came.
    written: list[float] = []
    async with make_output(fake) as out:
        first_audio = None
        async for event in out.speak(feed(SENTENCES, gap_s=0.3, log=written)):
            if isinstance(event, AudioOut) and first_audio is None:
                first_audio = now()
    assert first_audio is not None and first_audio < written[-1] - 0.4
    (call,) = fake.streams
    assert all(b - a > 0.2 for a, b in zip(call.text_times, call.text_times[1:], strict=False))


async def test_sentence_boundaries_are_learned(fake: FakeTTSServer) -> None:
    # The first turn teaches the real seconds per character; on the next turn the audio
    # attributed to each sentence is that sentence's own, to within a few milliseconds.
    turn = ["Hello there, my friend.", "This is the second sentence of the reply.", "And a third."]
    async with make_output(fake, language="en") as out:
        await speak(out, turn)
        spans = per_sentence(await speak(out, turn))
    for text, size in spans:
        assert abs(size - expected_bytes(fake, text)) <= 0.02 * RATE * 2, (text, size)


async def test_every_sentence_gets_audio_even_when_the_guess_is_long(fake: FakeTTSServer) -> None:
    # A service much faster than the first guess: no sentence may end up without audio.
    fake.seconds_per_char = 0.02
    async with make_output(fake) as out:
        spans = per_sentence(await speak(out, SENTENCES))
    assert [t for t, _ in spans] == SENTENCES and all(size > 0 for _, size in spans)


async def test_empty_turn_opens_no_stream(fake: FakeTTSServer) -> None:
    async with make_output(fake) as out:
        assert await speak(out, ["", "  "]) == []
    assert fake.calls_log == []


async def test_voice_from_language_and_option(fake: FakeTTSServer) -> None:
    async with make_output(fake, language="en") as out:
        await speak(out, ["Hi."])
    async with make_output(fake, language="ru", voice="en-US-Chirp3-HD-Charon") as out:
        await speak(out, ["Hi."])
    assert [c.voice for c in fake.calls_log] == ["en-US-Chirp3-HD-Aoede", "en-US-Chirp3-HD-Charon"]


async def test_a_voice_that_cannot_stream_is_a_clear_error(fake: FakeTTSServer) -> None:
    async with make_output(fake, voice="ru-RU-Wavenet-A") as out:
        with pytest.raises(BackendError) as caught:
            await speak(out, ["Привет."])
    assert "ru-RU-Wavenet-A" in str(caught.value) and not caught.value.retryable


# --- interrupt ------------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
async def test_interrupt_mid_turn_stops_the_audio(streaming: bool) -> None:
    server = FakeTTSServer(chunk_interval_s=0.05)  # a long reply, paced like a real voice
    await server.start()
    try:
        async with make_output(server, streaming=streaming) as out:
            speech = out.speak(feed(["Раз два три четыре пять шесть семь восемь девять десять."] * 3))
            async for event in speech:
                if isinstance(event, AudioOut):
                    break
            cut = now()
            await out.interrupt()
            after = [event async for event in speech]
            # The next turn is whole.
            spans = per_sentence(await speak(out, ["Да."]))
    finally:
        await server.stop()
    assert not [e for e in after if isinstance(e, (AudioOut, SpeakingStarted))], after
    assert now() - cut < 5
    first = server.calls_log[0]
    assert first.ended_at is not None and first.ended_at - cut < 0.5, "the call was not cancelled at once"
    if streaming:  # the stream was cut before it had said even the first sentence
        assert first.audio_bytes < expected_bytes(server, "Раз два три четыре пять шесть семь восемь девять десять.")
    else:  # no later sentence was synthesized
        assert [c.texts for c in server.calls_log][1:] == [["Да."]]
    assert spans == [("Да.", expected_bytes(server, "Да."))]


async def test_interrupt_while_synthesizing() -> None:
    server = FakeTTSServer(first_audio_s=2.0)
    await server.start()
    try:
        async with make_output(server, streaming=False) as out:
            speech = out.speak(feed(["Долгое раздумье."]))
            task = asyncio.ensure_future(speech.__anext__())
            await asyncio.sleep(0.2)
            cut = now()
            await out.interrupt()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(task, 1.0)
    finally:
        await server.stop()
    assert now() - cut < 1.0


# --- SynthesizeSpeech fallback -----------------------------------------------------------------


async def test_fallback_strips_the_wav_header(fake: FakeTTSServer) -> None:
    assert fake.wav_extra_chunk  # a LIST chunk sits between fmt and data: a 44-byte cut is wrong
    async with make_output(fake, streaming=False) as out:
        events = await speak(out, SENTENCES)
    spans = per_sentence(events)
    assert spans == [(s, expected_bytes(fake, s)) for s in SENTENCES]
    pcm = b"".join(e.pcm for e in events if isinstance(e, AudioOut))
    assert b"RIFF" not in pcm and b"LIST" not in pcm
    first = tone(fake.seconds_for(SENTENCES[0].strip()), RATE, 220.0)
    assert pcm.startswith(first)
    assert [c.kind for c in fake.calls_log] == ["unary"] * 3


def test_wav_parsing() -> None:
    pcm = tone(0.1, 16000, 440.0)
    assert wav_to_pcm(wav_file(pcm, 16000, extra_chunk=True), 24000) == (pcm, 16000)
    assert wav_to_pcm(wav_file(pcm, 24000, extra_chunk=False), 24000) == (pcm, 24000)
    # A streamed WAV with an unknown data size: the data runs to the end.
    streamed = bytearray(wav_file(pcm, 24000, extra_chunk=False))
    streamed[40:44] = struct.pack("<I", 0xFFFFFFFF)
    assert wav_to_pcm(bytes(streamed), 24000) == (pcm, 24000)
    # WAVE_FORMAT_EXTENSIBLE with a PCM sub-format.
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 24000, 48000, 2, 16, 22, 16, 4) + struct.pack("<H", 1) + bytes(14)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(ext)) + ext + b"data" + struct.pack("<I", len(pcm)) + pcm
    assert wav_to_pcm(b"RIFF" + struct.pack("<I", len(body)) + body, 24000) == (pcm, 24000)
    # Headerless bytes pass through as PCM at the expected rate.
    assert wav_to_pcm(pcm, 24000) == (pcm, 24000)
    stereo = bytearray(wav_file(pcm, 24000, extra_chunk=False))
    stereo[22:24] = struct.pack("<H", 2)
    with pytest.raises(AudioFormatError, match="2 channel"):
        wav_to_pcm(bytes(stereo), 24000)
    with pytest.raises(AudioFormatError, match="no data chunk"):
        wav_to_pcm(wav_file(pcm, 24000, extra_chunk=False)[:36], 24000)


# --- credentials, endpoints, faults -------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
@pytest.mark.parametrize("api_key", ["wrong-key", None])
async def test_bad_credentials_are_one_line(streaming: bool, api_key: str | None) -> None:
    server = FakeTTSServer(api_key="right-key")
    await server.start()
    try:
        async with make_output(server, api_key=api_key, streaming=streaming) as out:
            with pytest.raises(AuthError) as caught:
                await speak_retried(out, ["Привет."], policy(attempts=5))
    finally:
        await server.stop()
    message = str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "\n" not in message
    assert len(server.calls_log) == 1  # never tried again, however generous the policy


async def test_right_key_is_sent(fake: FakeTTSServer) -> None:
    fake.api_key = "right-key"
    async with make_output(fake, api_key="right-key") as out:
        await speak(out, ["Привет."])
    assert fake.calls_log[0].metadata["x-goog-api-key"] == "right-key"


async def test_plaintext_to_a_remote_host_is_refused() -> None:
    out = Chirp3Output(Chirp3Output.Options(base_url="http://192.0.2.10:443"))
    with pytest.raises(ProfileError, match="only loopback addresses"):
        await out.start()


@pytest.mark.parametrize("kind", ["unavailable", "resource_exhausted"])
@pytest.mark.parametrize("streaming", [True, False])
async def test_failures_before_audio_raise_retryable_once(kind: str, streaming: bool, fake: FakeTTSServer) -> None:
    """The backend tries once and says a retry may help; trying again is the core's."""
    fake.inject(kind)
    async with make_output(fake, streaming=streaming) as out:
        with pytest.raises(BackendError) as caught:
            await speak(out, SENTENCES)
    assert caught.value.retryable and kind.upper() in str(caught.value)
    assert caught.value.retry_after is None  # the service asked for no particular wait
    assert len(fake.calls_log) == 1


@pytest.mark.parametrize("kind", ["unavailable", "resource_exhausted"])
@pytest.mark.parametrize("streaming", [True, False])
async def test_failures_before_audio_are_retried_by_the_policy(kind: str, streaming: bool, fake: FakeTTSServer) -> None:
    fake.inject(kind)
    async with make_output(fake, streaming=streaming) as out:
        spans = per_sentence(await speak_retried(out, SENTENCES, policy(attempts=3)))
    assert [t for t, _ in spans] == SENTENCES
    assert fake.calls_log[0].code == kind
    if streaming:  # the new stream was told the sentences again
        assert fake.streams[1].texts == [s.strip() for s in SENTENCES]


@pytest.mark.parametrize("streaming", [True, False])
async def test_retry_delay_of_the_service_is_surfaced(streaming: bool, fake: FakeTTSServer) -> None:
    fake.inject("resource_exhausted", retry_delay_s=7.5)
    async with make_output(fake, streaming=streaming) as out:
        with pytest.raises(BackendError) as caught:
            await speak(out, SENTENCES)
    assert caught.value.retryable and caught.value.retry_after == 7.5
    assert "over the project's quota, asked to wait 7.5 s" in str(caught.value)
    assert len(fake.calls_log) == 1


async def test_drops_in_a_row_give_up_after_the_policy_attempts(fake: FakeTTSServer) -> None:
    for _ in range(5):
        fake.inject("drop")
    async with make_output(fake) as out:
        with pytest.raises(BackendError) as caught:
            await speak_retried(out, SENTENCES, policy(attempts=3))
    message = str(caught.value)
    assert message.startswith("output:chirp3: Text-to-Speech failed (UNAVAILABLE")
    assert message.endswith("check the network and output.base_url, or try again later") and "\n" not in message
    assert len(fake.calls_log) == 3


async def test_a_drop_after_audio_is_a_retryable_error(fake: FakeTTSServer) -> None:
    fake.inject("drop", after=3)
    async with make_output(fake) as out:
        heard: list[OutputEvent] = []
        with pytest.raises(BackendError) as caught:
            async for event in retry.stream(lambda: out.speak(feed(SENTENCES)), policy(attempts=5)):
                heard.append(event)
        assert caught.value.retryable and "UNAVAILABLE" in str(caught.value)
        assert any(isinstance(e, AudioOut) for e in heard)
        assert len(fake.calls_log) == 1  # audio went out: saying the turn again would repeat it
        assert await speak(out, ["Снова."])  # the next turn works on a new connection


def test_retired_retry_option_is_an_unknown_option() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_retries"):  # retries follow the role's retry: policy
        Chirp3Output.Options(max_retries=2)  # type: ignore[call-arg]


async def test_language_model_errors_pass_through(fake: FakeTTSServer) -> None:
    async def failing() -> AsyncIterator[str]:
        yield "Первое предложение."
        await asyncio.sleep(0.05)
        raise RuntimeError("the language model broke")

    async with make_output(fake) as out:
        with pytest.raises(RuntimeError, match="the language model broke"):
            async for _ in out.speak(failing()):
                pass


async def test_latency_is_tolerated() -> None:
    server = FakeTTSServer(latency_s=0.02, first_audio_s=0.1)
    await server.start()
    try:
        async with make_output(server) as out:
            spans = per_sentence(await speak(out, SENTENCES))
    finally:
        await server.stop()
    assert [t for t, _ in spans] == SENTENCES


async def test_standalone_fake() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.google_tts", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        address = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().split()[-1]
        async with Chirp3Output(Chirp3Output.Options(base_url=address)) as out:
            assert [t for t, _ in per_sentence(await speak(out, ["Hello."]))] == ["Hello."]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


# --- shared contract ------------------------------------------------------------------------------


class TestChirp3Contract(OutputContract):
    """The Output contract, one stream per turn, through the real SDK and the fake service."""

    timeout_s = 20.0
    streaming = True

    @pytest.fixture
    async def backend(self) -> AsyncIterator[Chirp3Output]:
        server = FakeTTSServer(chunk_interval_s=0.02)
        await server.start()
        try:
            async with make_output(server, language="en", streaming=self.streaming) as out:
                yield out
        finally:
            await server.stop()


class TestChirp3UnaryContract(TestChirp3Contract):
    """The Output contract with ``streaming: false`` (SynthesizeSpeech per sentence)."""

    streaming = False
