"""Google Speech-to-Text: the real google-cloud-speech SDK against the local gRPC fake."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pydantic
import pytest
from google.api_core import exceptions as core_exceptions
from google.cloud import speech_v1
from google.cloud.speech_v1.services.speech.transports.grpc_asyncio import SpeechGrpcAsyncIOTransport

from tests.fakes.google_speech import FakeSpeechServer
from voicekit.errors import AuthError, BackendError, MissingSecretError, ProfileError
from voicekit.events import Final, Interim, SpeechStarted, STTEvent, UtteranceEnd
from voicekit.options import RetryPolicy
from voicekit.plugins._gcloud import parse_endpoint
from voicekit.plugins.stt.google import GoogleSTT
from voicekit.roles import BackendContext
from voicekit.testing.contracts import STTContract

ROOT = Path(__file__).resolve().parents[2]
RATE = 16000
CHUNK = 640  # 20 ms


def tone(seconds: float, freq: float = 300.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * 2)


def bursts(lengths: Sequence[float], gap: float = 0.8, *, pitched: bool = False) -> bytes:
    """One tone burst per utterance; ``pitched`` gives burst i the pitch that names script line i."""
    parts = [silence(0.3)]
    for i, length in enumerate(lengths):
        parts += [tone(length, 400 + 100 * i if pitched else 300), silence(gap)]
    return b"".join(parts)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSpeechServer]:
    server = FakeSpeechServer(["hello there", ["to be or not to be", "that is the question"], "bye now"])
    await server.start()
    yield server
    await server.stop()


FAST_RETRY = {"attempts": 5, "initial_ms": 10, "max_ms": 50}  # the role's retry: policy, quick for tests


def make_stt(
    fake: FakeSpeechServer,
    version: str = "v1",
    language: str | None = "en",
    retry: dict[str, int] | None = None,
    **options: Any,
) -> GoogleSTT:
    options.setdefault("project", "test-project")
    context = BackendContext(language=language, retry=RetryPolicy.model_validate(retry or FAST_RETRY))
    stt = GoogleSTT(GoogleSTT.Options(base_url=fake.address, api_version=version, **options), context)
    stt.name = "google"
    return stt


async def transcribe(stt: GoogleSTT, pcm: bytes, *, speed: float | None = None, chunk: int = CHUNK) -> list[STTEvent]:
    """Push ``pcm`` (``speed`` times faster than real time, or at once) and collect the events."""
    events: list[STTEvent] = []
    async with stt, stt.stream() as stream:

        async def feed() -> None:
            for i in range(0, len(pcm), chunk):
                stream.push_audio(pcm[i : i + chunk])
                if speed:
                    await asyncio.sleep(chunk / 2 / RATE / speed)
            stream.end_input()

        feeder = asyncio.create_task(feed())
        async for event in stream:
            events.append(event)
        await feeder
    return events


def finals(events: Sequence[STTEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Final)]


# --- recognition through the real SDK ---------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_interims_then_one_final_per_utterance(version: str, fake: FakeSpeechServer) -> None:
    events = await transcribe(make_stt(fake, version), bursts([0.8, 2.6, 0.6]))
    assert finals(events) == ["hello there", "to be or not to be that is the question", "bye now"]
    # Per utterance: SpeechStarted, growing interims, one Final, UtteranceEnd.
    kinds = [type(e) for e in events]
    assert kinds.count(SpeechStarted) == 3 and kinds.count(UtteranceEnd) == 3
    utterance: list[str] = []
    for event in events:
        if isinstance(event, Interim):
            utterance.append(event.text)
        elif isinstance(event, Final):
            assert utterance, "no interim before a final"
            assert all(b.startswith(a) for a, b in itertools.pairwise(utterance)), utterance
            assert utterance[-1] == event.text or event.text.startswith(utterance[-1])
            utterance = []
    # The two-part sentence was finalized by the service in two pieces.
    assert fake.streams[0].finals == ["hello there", "to be or not to be", "that is the question", "bye now"]
    assert all(f.language == "en-US" and f.confidence == pytest.approx(0.92) for f in events if isinstance(f, Final))


async def test_v1_request_shape(fake: FakeSpeechServer) -> None:
    await transcribe(make_stt(fake, "v1", language="ru"), bursts([0.5]))
    (stream,) = fake.streams
    config = stream.config
    assert config.config.language_code == "ru-RU" and config.config.model == "latest_long"
    assert config.config.sample_rate_hertz == 16000 and config.config.enable_automatic_punctuation
    assert config.interim_results and config.enable_voice_activity_events and not config.single_utterance
    assert stream.code == "OK"


async def test_v2_request_shape(fake: FakeSpeechServer) -> None:
    await transcribe(make_stt(fake, "v2", language="ru-RU"), bursts([0.5]))
    (stream,) = fake.streams
    assert stream.recognizer == "projects/test-project/locations/us/recognizers/_"
    config = stream.config
    assert config.config.model == "chirp_3" and list(config.config.language_codes) == ["ru-RU"]
    assert config.config.explicit_decoding_config.sample_rate_hertz == 16000
    assert config.streaming_features.interim_results and config.streaming_features.enable_voice_activity_events


@pytest.mark.parametrize("end_event_first", [True, False])
async def test_pieces_join_whatever_the_event_order(end_event_first: bool) -> None:
    server = FakeSpeechServer([["to be or not to be", "that is the question"]], end_event_first=end_event_first)
    await server.start()
    try:
        events = await transcribe(make_stt(server), bursts([2.6]))
    finally:
        await server.stop()
    assert finals(events) == ["to be or not to be that is the question"]


async def test_without_activity_events_each_final_ends_an_utterance(fake: FakeSpeechServer) -> None:
    events = await transcribe(make_stt(fake, voice_activity_events=False), bursts([0.8, 2.6]))
    assert finals(events) == ["hello there", "to be or not to be", "that is the question"]
    assert not any(isinstance(e, SpeechStarted) for e in events)


async def test_a_missing_end_event_times_out() -> None:
    # A service that never says SPEECH_ACTIVITY_END: the Final comes after the timeout,
    # while the input is still open.
    server = FakeSpeechServer(["hello there"], end_events=False)
    await server.start()
    try:
        stt = make_stt(server, utterance_end_timeout_s=0.3)
        async with stt, stt.stream() as stream:
            audio = bursts([0.6])
            for i in range(0, len(audio), CHUNK):
                stream.push_audio(audio[i : i + CHUNK])
            got = await asyncio.wait_for(_first_final(stream), 5)
    finally:
        await server.stop()
    assert got == "hello there"


async def _first_final(stream: Any) -> str:
    async for event in stream:
        if isinstance(event, Final):
            return str(event.text)
    raise AssertionError("no Final")


async def test_end_of_input_keeps_an_unfinalized_hypothesis() -> None:
    # Input ends in the middle of speech and the service finalizes it on half-close.
    server = FakeSpeechServer(["still talking here"])
    await server.start()
    try:
        events = await transcribe(make_stt(server), silence(0.3) + tone(1.0))
    finally:
        await server.stop()
    assert finals(events) == ["still talking here"]


async def test_silence_gives_nothing(fake: FakeSpeechServer) -> None:
    events = await transcribe(make_stt(fake), silence(1.0))
    assert events == []
    assert fake.unscripted == 0


# --- stream limits: restart before them, survive them --------------------------------------

WORDS = [f"word{i} again{i}" for i in range(12)]


@pytest.mark.parametrize(("version", "speed"), [("v1", 4.0), ("v2", 4.0), ("v1", None)])
async def test_restart_before_the_limit_loses_nothing(version: str, speed: float | None) -> None:
    # Pitched bursts: the fake names each utterance by its pitch, so audio sent again
    # on a new stream gets the same words (like the real service) and a duplicate or a
    # loss shows in the finals.
    server = FakeSpeechServer(WORDS, pick="tone", max_stream_s=3.5)
    await server.start()
    try:
        stt = make_stt(server, version, restart_after_s=3.0)
        events = await transcribe(stt, bursts([0.45 + 0.05 * (i % 3) for i in range(12)], gap=0.55, pitched=True),
                                  speed=speed)  # fmt: skip
    finally:
        await server.stop()
    assert finals(events) == WORDS
    assert len(server.streams) >= 4, "the stream was never replaced"
    assert all(s.code in ("OK", "CANCELLED") for s in server.streams), [s.code for s in server.streams]
    assert all(len(s.audio) <= 3.0 * 2 * RATE for s in server.streams)
    # Every utterance the service finalized was heard whole: the carried audio began before it.
    assert len(server.segments) >= 12 and min(server.segments) > 0.4, server.segments


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_the_service_ending_the_stream_loses_nothing(version: str) -> None:
    # Our restart comes too late for this service: it ends the stream itself (OUT_OF_RANGE
    # on v1, ABORTED on v2) and the backend reconnects, carrying the unfinalized audio.
    server = FakeSpeechServer(WORDS[:6], pick="tone", max_stream_s=1.6)
    await server.start()
    try:
        events = await transcribe(make_stt(server, version), bursts([0.5] * 6, gap=0.6, pitched=True), speed=4.0)
    finally:
        await server.stop()
    assert finals(events) == WORDS[:6]
    limit = "OUT_OF_RANGE" if version == "v1" else "ABORTED"
    assert sum(s.code == limit for s in server.streams) >= 2


async def test_idle_stream_is_reopened_when_audio_comes() -> None:
    # No audio for longer than the service waits: it ends the stream; the next words
    # open a new one, and an idle stream is not reopened in a loop meanwhile.
    server = FakeSpeechServer(["first words", "second words"], idle_timeout_s=0.4)
    await server.start()
    try:
        stt = make_stt(server)
        got: list[str] = []
        async with stt, stt.stream() as stream:
            reader = asyncio.create_task(_collect_finals(stream, got))
            for part in (bursts([0.5]), bursts([0.5])):
                for i in range(0, len(part), CHUNK):
                    stream.push_audio(part[i : i + CHUNK])
                    await asyncio.sleep(0.005)
                await asyncio.sleep(1.5)
            stream.end_input()
            await asyncio.wait_for(reader, 10)
    finally:
        await server.stop()
    assert got == ["first words", "second words"]
    assert [s.details.startswith("Audio Timeout") for s in server.streams] == [True, True]


async def _collect_finals(stream: Any, into: list[str]) -> None:
    async for event in stream:
        if isinstance(event, Final):
            into.append(event.text)


# --- requests as the service wants them ----------------------------------------------------


async def test_large_pushes_are_split_under_the_limit(fake: FakeSpeechServer) -> None:
    audio = bursts([0.8])
    events = await transcribe(make_stt(fake), audio, chunk=len(audio))  # one push of ~2 s
    assert finals(events) == ["hello there"]
    sizes = fake.streams[0].chunk_sizes
    assert max(sizes) == 15360 and sum(sizes) == len(audio)


async def test_max_chunk_option_and_the_service_limit(fake: FakeSpeechServer) -> None:
    audio = bursts([0.8])
    await transcribe(make_stt(fake, max_chunk_bytes=25600), audio, chunk=len(audio))
    assert max(fake.streams[0].chunk_sizes) == 25600
    with pytest.raises(Exception, match="25600"):
        GoogleSTT.Options(max_chunk_bytes=30000)


async def test_fake_checks_like_the_service(fake: FakeSpeechServer) -> None:
    """Without the backend: a too-large chunk and audio before the config are rejected."""
    channel = grpc.aio.insecure_channel(fake.address)
    client = speech_v1.SpeechAsyncClient(transport=SpeechGrpcAsyncIOTransport(host=fake.address, channel=channel))
    config = speech_v1.StreamingRecognitionConfig(
        config=speech_v1.RecognitionConfig(encoding="LINEAR16", sample_rate_hertz=RATE, language_code="en-US")
    )
    try:
        for first, second, message in [
            (speech_v1.StreamingRecognizeRequest(streaming_config=config),
             speech_v1.StreamingRecognizeRequest(audio_content=bytes(30000)), "maximum of 25600 bytes"),
            (speech_v1.StreamingRecognizeRequest(audio_content=bytes(640)), None, "first request"),
        ]:  # fmt: skip
            call = await client.streaming_recognize(requests=None, retry=None)
            await call.write(first)
            if second is not None:
                await call.write(second)
            with pytest.raises(core_exceptions.InvalidArgument, match=message):
                async for _ in call:
                    pass
    finally:
        await channel.close()


# --- endpoints and credentials ------------------------------------------------------------


def test_endpoint_rules() -> None:
    assert parse_endpoint(None, "speech.googleapis.com", "x") == parse_endpoint(
        "https://speech.googleapis.com", "y", "x"
    )
    assert parse_endpoint("127.0.0.1:5000", "h", "x").plaintext
    assert parse_endpoint("[::1]:5000", "h", "x").target == "[::1]:5000"
    assert parse_endpoint("http://localhost:7", "h", "x").plaintext
    assert parse_endpoint("127.5.6.7:1", "h", "x").plaintext  # all of 127.0.0.0/8
    assert not parse_endpoint("https://127.0.0.1:5000", "h", "x").plaintext
    eu = parse_endpoint("eu-speech.googleapis.com", "h", "x")
    assert eu.target == "eu-speech.googleapis.com:443" and not eu.plaintext


@pytest.mark.parametrize("url", ["http://10.1.2.3:50051", "grpc://speech.example.com:80", "http://[2001:db8::1]:1"])
async def test_plaintext_to_a_remote_host_is_refused(url: str) -> None:
    stt = GoogleSTT(GoogleSTT.Options(base_url=url))
    with pytest.raises(ProfileError) as caught:
        await stt.start()
    message = str(caught.value)
    assert "only loopback addresses" in message and "https://" in message and "\n" not in message


async def test_missing_credentials_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login either
    stt = GoogleSTT(GoogleSTT.Options(base_url="speech.invalid:443"))
    with pytest.raises(MissingSecretError) as caught:
        await stt.start()
    message = str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "credentials_file" in message and "\n" not in message


async def test_missing_credentials_file(tmp_path: Path) -> None:
    stt = GoogleSTT(GoogleSTT.Options(base_url="speech.invalid:443", credentials_file=str(tmp_path / "nope.json")))
    with pytest.raises(MissingSecretError, match=r"nope\.json does not exist.*GOOGLE_APPLICATION_CREDENTIALS"):
        await stt.start()
    (tmp_path / "bad.json").write_text("{}")
    stt = GoogleSTT(GoogleSTT.Options(base_url="speech.invalid:443", credentials_file=str(tmp_path / "bad.json")))
    with pytest.raises(MissingSecretError, match="not a usable key"):
        await stt.start()


async def test_api_key_goes_in_the_metadata() -> None:
    server = FakeSpeechServer(["hello there"], api_key="right-key")
    await server.start()
    try:
        events = await transcribe(make_stt(server, api_key="right-key"), bursts([0.5]))
    finally:
        await server.stop()
    assert finals(events) == ["hello there"]
    assert server.streams[0].metadata["x-goog-api-key"] == "right-key"


@pytest.mark.parametrize(
    ("api_key", "fault"), [("wrong-key", None), (None, None), ("right-key", "permission_denied")]
)  # fmt: skip
async def test_rejected_credentials_are_an_auth_error(api_key: str | None, fault: str | None) -> None:
    server = FakeSpeechServer(["hello there"], api_key="right-key")
    await server.start()
    if fault:
        server.inject(fault)
    try:
        with pytest.raises(AuthError) as caught:
            await transcribe(make_stt(server, api_key=api_key), bursts([0.5]))
    finally:
        await server.stop()
    message = str(caught.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in message and "\n" not in message
    assert len(server.streams) == 1, "a rejected key must not be retried"


async def test_tls_endpoint_with_credentials(tmp_path: Path) -> None:
    """A non-plain-text endpoint: TLS, with the key sent by google-auth's call credentials."""
    from tests.fakes.tls import make_certificate

    cert, key = make_certificate(tmp_path)
    server = FakeSpeechServer(["over tls"], api_key="tls-key", tls=(cert, key))
    await server.start()
    script = (
        "import asyncio, sys\n"
        "from tests.backends.test_google_stt import bursts, finals, transcribe\n"
        "from voicekit.plugins.stt.google import GoogleSTT\n"
        "stt = GoogleSTT(GoogleSTT.Options(base_url=sys.argv[1], api_key='tls-key', language='en-US'))\n"
        "print(finals(asyncio.run(transcribe(stt, bursts([0.5])))))\n"
    )
    # grpc reads its trusted roots once per process: a subprocess trusts our certificate.
    env = {**os.environ, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(cert)}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, f"https://127.0.0.1:{server.port}", cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await server.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip().splitlines()[-1] == "['over tls']"
    assert server.streams[0].metadata["x-goog-api-key"] == "tls-key"


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unavailable", "resource_exhausted"])
async def test_busy_or_unavailable_service_is_retried(kind: str, fake: FakeSpeechServer) -> None:
    fake.inject(kind)
    fake.inject(kind)
    events = await transcribe(make_stt(fake), bursts([0.8]))
    assert finals(events) == ["hello there"]
    assert [s.code for s in fake.streams] == [kind, kind, "OK"]


async def test_retries_give_up(fake: FakeSpeechServer) -> None:
    for _ in range(5):
        fake.inject("unavailable")
    with pytest.raises(BackendError) as caught:
        await transcribe(make_stt(fake, retry={"attempts": 3, "initial_ms": 0, "max_ms": 0}), bursts([0.8]))
    message = str(caught.value)
    assert message.startswith("stt:google: Speech-to-Text failed (UNAVAILABLE: ") and "\n" not in message
    assert message.endswith(
        "check the network and stt.base_url, or try again later; gave up after 3 tries: check stt.retry"
    )
    assert not caught.value.retryable  # the policy is spent: the core must not spend it again
    assert len(fake.streams) == 3


def test_retired_retry_option_is_an_unknown_option() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_retries"):  # retries follow the role's retry: policy
        GoogleSTT.Options(max_retries=2)  # type: ignore[call-arg]


async def test_retry_delay_of_the_service_is_surfaced(fake: FakeSpeechServer) -> None:
    """RESOURCE_EXHAUSTED with RetryInfo 30 s, beyond the policy's budget: no second stream, the wait on the error."""
    fake.inject("resource_exhausted", retry_delay_s=30)
    with pytest.raises(BackendError) as caught:
        await transcribe(make_stt(fake, retry={"attempts": 5, "budget_ms": 15_000}), bursts([0.8]))
    assert caught.value.retry_after == 30
    assert "over the project's quota, asked to wait 30 s; gave up after 1 try: check stt.retry" in str(caught.value)
    assert len(fake.streams) == 1


async def test_retry_delay_of_the_service_is_honoured(fake: FakeSpeechServer) -> None:
    fake.inject("resource_exhausted", retry_delay_s=0.5)
    started = time.monotonic()
    events = await transcribe(make_stt(fake, retry={"attempts": 3, "initial_ms": 0, "max_ms": 0}), bursts([0.8]))
    assert time.monotonic() - started >= 0.5  # the policy alone would not have waited at all
    assert finals(events) == ["hello there"]
    assert [s.code for s in fake.streams] == ["resource_exhausted", "OK"]


async def test_drops_in_a_row_give_up_after_the_policy_attempts() -> None:
    server = FakeSpeechServer(["never finished"], latency_s=0.002)
    await server.start()
    for _ in range(5):
        server.inject("drop", after=0.5)  # mid-speech, before any final
    try:
        with pytest.raises(BackendError) as caught:
            stt = make_stt(server, retry={"attempts": 3, "initial_ms": 0, "max_ms": 0})
            await transcribe(stt, bursts([0.8]), speed=4.0)
    finally:
        await server.stop()
    message = str(caught.value)
    assert message.startswith("stt:google: Speech-to-Text failed (") and "\n" not in message
    assert message.endswith(
        "check the network and stt.base_url, or try again later; gave up after 3 tries: check stt.retry"
    )
    assert [s.code for s in server.streams] == ["drop"] * 3


@pytest.mark.parametrize("after", [0.9, 2.0])
async def test_dropped_connection_loses_and_repeats_nothing(after: float) -> None:
    server = FakeSpeechServer(WORDS[:4], pick="tone", latency_s=0.002)
    await server.start()
    server.inject("drop", after=after)
    try:
        events = await transcribe(make_stt(server), bursts([0.5] * 4, gap=0.6, pitched=True), speed=4.0)
    finally:
        await server.stop()
    assert finals(events) == WORDS[:4]
    assert server.streams[0].code == "drop" and len(server.streams) == 2


async def test_v2_error_passes_through_clearly(fake: FakeSpeechServer) -> None:
    with pytest.raises(BackendError) as caught:
        await transcribe(make_stt(fake, "v2", location="global"), bursts([0.5]))
    assert not caught.value.retryable
    assert 'model "chirp_3" does not exist in the location named "global"' in str(caught.value)


async def test_v2_needs_a_project(monkeypatch: pytest.MonkeyPatch, fake: FakeSpeechServer) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    stt = GoogleSTT(GoogleSTT.Options(base_url=fake.address, api_version="v2"))
    with pytest.raises(ProfileError, match="GOOGLE_CLOUD_PROJECT"):
        await stt.start()


# --- packaging -------------------------------------------------------------------------------


def test_import_loads_no_vendor_module() -> None:
    code = "import sys, voicekit.plugins.stt.google, voicekit.plugins.output.chirp3; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "grpc" not in out and "google.cloud" not in out and "google.auth" not in out


async def test_standalone_fake() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.google_speech", "--port", "0", "--script", "from the command line",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        address = line.split()[-1]
        assert address.startswith("127.0.0.1:")
        stt = GoogleSTT(GoogleSTT.Options(base_url=address), BackendContext(language="en"))
        assert finals(await transcribe(stt, bursts([0.5]))) == ["from the command line"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


# --- shared contract and real speech ---------------------------------------------------------


class TestGoogleSTTContract(STTContract):
    """The STT contract over espeak-ng speech, through the real SDK and the fake service."""

    timeout_s = 20.0

    @pytest.fixture
    async def backend(self) -> AsyncIterator[GoogleSTT]:
        server = FakeSpeechServer(["hello world"], cycle=True)
        await server.start()
        try:
            async with make_stt(server) as stt:
                yield stt
        finally:
            await server.stop()


async def test_synthesized_speech_v2(fake: FakeSpeechServer) -> None:
    from voicekit.testing.speech import synthesize

    pcm = synthesize("hello there") + silence(0.8) + synthesize("to be or not to be, that is the question")
    events = await transcribe(make_stt(fake, "v2"), pcm + silence(0.8))
    assert finals(events) == ["hello there", "to be or not to be that is the question"]
