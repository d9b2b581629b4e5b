"""Deepgram live STT: the real SDK against the local fake in tests/fakes/deepgram.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pydantic
import pytest

from tests.fakes.deepgram import FakeDeepgram
from voicekit.errors import AuthError, BackendError, MissingSecretError
from voicekit.events import Final, Interim, SpeechStarted, STTEvent, UtteranceEnd
from voicekit.options import RetryPolicy
from voicekit.plugins.stt.deepgram import (
    DeepgramMessage,
    DeepgramSTT,
    UtteranceAssembler,
    parse_message,
    service_urls,
)
from voicekit.roles import BackendContext
from voicekit.testing.contracts import STTContract

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "deepgram"
RATE = 16000
CHUNK = 640  # 20 ms
ROOT = Path(__file__).resolve().parents[2]


def tone(seconds: float, freq: float = 220.0, amp: float = 8000.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * 2)


def utterances(*lengths: float, gap: float = 0.8, lead: float = 0.3, tail: float = 0.5) -> bytes:
    """Tone bursts of the given lengths separated by silence: one utterance each."""
    parts = [silence(lead)]
    for i, length in enumerate(lengths):
        parts += [tone(length, 200 + 40 * i), silence(gap if i < len(lengths) - 1 else tail)]
    return b"".join(parts)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "test-key")
    return "test-key"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDeepgram]:
    async with FakeDeepgram(script=["hello there", "how are you today", "fine thanks"]) as server:
        yield server


FAST_RETRY = {"attempts": 5, "initial_ms": 10, "max_ms": 50}  # the role's retry: policy, quick for tests


def make_stt(
    fake: FakeDeepgram, language: str | None = "en", retry: dict[str, int] | None = None, **options: object
) -> DeepgramSTT:
    policy = RetryPolicy.model_validate(retry or FAST_RETRY)
    stt = DeepgramSTT(
        DeepgramSTT.Options(base_url=fake.url, **options), BackendContext(language=language, retry=policy)
    )
    stt.name = "deepgram"
    return stt


async def transcribe(
    stt: DeepgramSTT, pcm: bytes, *, pause_at: int | None = None, pause_s: float = 0.0
) -> list[STTEvent]:
    """Push ``pcm`` in 20 ms chunks (optionally stopping ``pause_s`` at byte ``pause_at``) and collect events."""
    events: list[STTEvent] = []
    async with stt, stt.stream() as stream:

        async def feed() -> None:
            for i in range(0, len(pcm), CHUNK):
                if pause_at is not None and i == pause_at:
                    await asyncio.sleep(pause_s)
                stream.push_audio(pcm[i : i + CHUNK])
                if i % (CHUNK * 10) == 0:
                    await asyncio.sleep(0)
            stream.end_input()

        feeder = asyncio.create_task(feed())
        async for event in stream:
            events.append(event)
        await feeder
    return events


def finals(events: Sequence[STTEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, Final)]


# --- real samples ---------------------------------------------------------------------


def _sdk_typed(raw: dict[str, object]) -> object:
    from deepgram.core.unchecked_base_model import construct_type
    from deepgram.listen.v1.socket_client import V1SocketClientResponse

    return construct_type(type_=V1SocketClientResponse, object_=raw)


@pytest.mark.parametrize("form", ["json", "dict", "sdk"])
def test_every_sample_parses(form: str) -> None:
    files = sorted(SAMPLES.glob("*.json"))
    assert len(files) == 5
    parsed: dict[str, DeepgramMessage] = {}
    for path in files:
        text = path.read_text()
        raw = json.loads(text)
        message = {"json": text, "dict": raw, "sdk": _sdk_typed(raw)}[form]
        parsed[path.stem] = parse_message(message)
        assert parsed[path.stem].type == raw["type"]
    final = parsed["results-final"]
    assert final.transcript == "Testing. 123. Testing. 123."
    assert final.confidence == pytest.approx(0.987885)
    assert final.is_final and final.speech_final and not final.from_finalize
    assert final.end == pytest.approx(0.74 + 3.08)
    empty = parsed["results-final-empty-transcript"]
    assert empty.transcript == "" and empty.is_final and empty.end == pytest.approx(0.74)
    assert parsed["speech-started"].timestamp == pytest.approx(9.54)
    assert parsed["utterance-end"].last_word_end == pytest.approx(2.395)
    assert parsed["metadata-after-closestream"].type == "Metadata"


def test_samples_through_the_assembler() -> None:
    def load(name: str) -> DeepgramMessage:
        return parse_message((SAMPLES / f"{name}.json").read_text())

    asm = UtteranceAssembler("en")
    assert [type(e) for e in asm.feed(load("speech-started"))] == [SpeechStarted]
    assert asm.feed(load("results-final-empty-transcript")) == []  # silence: no Final
    (final,) = asm.feed(load("results-final"))
    assert isinstance(final, Final)
    assert (final.text, final.confidence, final.language) == ("Testing. 123. Testing. 123.", 0.987885, "en")
    assert [type(e) for e in asm.feed(load("utterance-end"))] == [UtteranceEnd]  # Final already out
    assert asm.feed(load("metadata-after-closestream")) == []


def test_assembler_joins_segments_into_one_final() -> None:
    asm = UtteranceAssembler("ru")
    seg = {"type": "Results", "channel": {"alternatives": [{"transcript": "", "confidence": 0.5}]}}

    def results(text: str, **flags: bool) -> DeepgramMessage:
        return parse_message({**seg, "channel": {"alternatives": [{"transcript": text, "confidence": 0.5}]}, **flags})

    assert asm.feed(results("привет", is_final=True)) == []
    (interim,) = asm.feed(results("как", is_final=False))
    assert isinstance(interim, Interim) and interim.text == "привет как"
    assert asm.feed(results("как дела", is_final=True)) == []
    (final,) = asm.feed(results("", is_final=True, speech_final=True))
    assert isinstance(final, Final) and final.text == "привет как дела" and final.language == "ru"
    assert asm.feed(results("", is_final=True, speech_final=True)) == []  # nothing pending: no second Final
    assert asm.feed(results("ещё", is_final=True)) == []
    assert [type(e) for e in asm.feed(parse_message({"type": "UtteranceEnd", "last_word_end": 1}))] == [
        Final,
        UtteranceEnd,
    ]


async def test_fake_speaks_the_sample_shapes(key: str) -> None:
    """Every message the fake sends has the keys of the real sample of its type."""
    async with FakeDeepgram(script=["one two"], split_final_every_s=0.5) as fake:
        await transcribe(make_stt(fake), utterances(1.2, tail=1.6))
    shapes = {
        "Results": json.loads((SAMPLES / "results-final.json").read_text()),
        "SpeechStarted": json.loads((SAMPLES / "speech-started.json").read_text()),
        "UtteranceEnd": json.loads((SAMPLES / "utterance-end.json").read_text()),
        "Metadata": json.loads((SAMPLES / "metadata-after-closestream.json").read_text()),
    }
    sent = fake.connections[0].sent
    assert {m["type"] for m in sent} == set(shapes)
    for message in sent:
        assert set(shapes[message["type"]]) <= set(message), message["type"]
        assert type(_sdk_typed(message)).__name__ == "ListenV1" + message["type"]
        if message["type"] == "Results" and message["channel"]["alternatives"][0]["words"]:
            word = message["channel"]["alternatives"][0]["words"][0]
            assert set(word) == set(shapes["Results"]["channel"]["alternatives"][0]["words"][0])


# --- options ------------------------------------------------------------------------


def test_options_reject_unknown_keys_and_bad_urls() -> None:
    with pytest.raises(pydantic.ValidationError, match="modle"):
        DeepgramSTT.Options(modle="nova-3")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError, match="base_url"):
        DeepgramSTT.Options(base_url="api.deepgram.com")
    with pytest.raises(pydantic.ValidationError, match="utterance_end_ms"):
        DeepgramSTT.Options(utterance_end_ms=500)
    for retired in ("reconnect_attempts", "reconnect_backoff_s", "reconnect_backoff_max_s"):
        with pytest.raises(pydantic.ValidationError, match=retired):  # retries follow the role's retry: policy
            DeepgramSTT.Options(**{retired: 3})
    opts = DeepgramSTT.Options()
    assert (opts.model, opts.endpointing_ms, opts.utterance_end_ms, opts.interim_results) == ("nova-3", 300, 1000, True)
    assert 3 <= (opts.keepalive_s or 0) <= 5


def test_service_urls() -> None:
    assert service_urls(None) == ("https://api.deepgram.com", "wss://api.deepgram.com")
    assert service_urls("https://api.eu.deepgram.com/") == ("https://api.eu.deepgram.com", "wss://api.eu.deepgram.com")
    assert service_urls("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", "ws://127.0.0.1:8080")
    assert service_urls("wss://proxy.local/dg") == ("https://proxy.local/dg", "wss://proxy.local/dg")


def test_language_precedence() -> None:
    ctx = BackendContext(language="ru")
    assert DeepgramSTT(DeepgramSTT.Options(), ctx).stream().language == "ru"
    assert DeepgramSTT(DeepgramSTT.Options(language="multi"), ctx).stream().language == "multi"
    assert DeepgramSTT(DeepgramSTT.Options(), BackendContext()).stream(language="en").language == "en"
    query = DeepgramSTT(DeepgramSTT.Options(endpointing_ms=None)).query(16000, None)
    assert query["endpointing"] == "false" and "language" not in query


def test_import_loads_no_vendor_module() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import voicekit.plugins.stt.deepgram"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    modules = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "voicekit.plugins.stt.deepgram" in modules
    vendor = [m for m in modules if m.split(".")[0] in ("deepgram", "websockets", "httpx")]
    assert vendor == []


async def test_missing_key(monkeypatch: pytest.MonkeyPatch, fake: FakeDeepgram) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(MissingSecretError, match="DEEPGRAM_API_KEY"):
        await make_stt(fake).start()
    assert fake.handshakes == []


# --- streaming --------------------------------------------------------------------------


async def test_one_final_per_utterance(key: str, fake: FakeDeepgram) -> None:
    events = await transcribe(make_stt(fake), utterances(1.0, 1.5, 0.8, tail=1.5))
    assert finals(events) == ["hello there", "how are you today", "fine thanks"]
    # per utterance: SpeechStarted, then interims, then exactly one Final
    kinds = [type(e).__name__ for e in events if not isinstance(e, UtteranceEnd)]
    groups = "".join({"SpeechStarted": "S", "Interim": "i", "Final": "F"}[k] for k in kinds).split("S")[1:]
    assert len(groups) == 3 and all(g.startswith("i") and g.endswith("F") and g.count("F") == 1 for g in groups)
    assert isinstance(events[-1], UtteranceEnd)  # 1.5 s of silence after the last word
    assert all(e.language == "en" for e in events if isinstance(e, Final))
    (conn,) = fake.connections
    assert conn.headers["Authorization"] == f"Token {key}"
    assert conn.params == {
        "model": "nova-3",
        "language": "en",
        "encoding": "linear16",
        "sample_rate": "16000",
        "interim_results": "true",
        "endpointing": "300",
        "utterance_end_ms": "1000",
        "vad_events": "true",
        "smart_format": "true",
        "punctuate": "true",
    }
    assert conn.controls == ["Finalize", "CloseStream"]
    assert conn.received[-2:] == ["Finalize", "CloseStream"] and conn.violations == []
    assert conn.close_code == 1000 and conn.sent[-1]["type"] == "Metadata"
    assert bytes(conn.audio) == utterances(1.0, 1.5, 0.8, tail=1.5)


async def test_segment_finals_are_joined(key: str) -> None:
    async with FakeDeepgram(script=["one two three four five six"], split_final_every_s=0.4) as fake:
        events = await transcribe(make_stt(fake), utterances(2.0))
    assert finals(events) == ["one two three four five six"]
    segments = [m for m in fake.connections[0].sent_of("Results") if m["is_final"]]
    assert sum(1 for m in segments if m["channel"]["alternatives"][0]["transcript"]) >= 3


async def test_final_on_utterance_end_without_endpointing(key: str, fake: FakeDeepgram) -> None:
    events = await transcribe(make_stt(fake, endpointing_ms=None), utterances(1.0, 1.0, gap=1.5, tail=1.5))
    assert fake.connections[0].params["endpointing"] == "false"
    tail = [type(e) for e in events if isinstance(e, (Final, UtteranceEnd))]
    assert tail == [Final, UtteranceEnd, Final, UtteranceEnd]
    assert finals(events) == ["hello there", "how are you today"]


async def test_finalize_flushes_speech_cut_short(key: str, fake: FakeDeepgram) -> None:
    # input ends 60 ms after the speech: only Finalize can close the utterance
    events = await transcribe(make_stt(fake), silence(0.2) + tone(1.0) + silence(0.06))
    assert finals(events) == ["hello there"]
    assert any(m.get("from_finalize") for m in fake.connections[0].sent_of("Results"))


async def test_keepalive_holds_an_idle_stream(key: str) -> None:
    async with FakeDeepgram(script=["first", "second"], idle_timeout_s=0.6) as fake:
        pcm = utterances(0.6, 0.6, gap=0.5)
        events = await transcribe(
            make_stt(fake, keepalive_s=0.15), pcm, pause_at=len(pcm) // 2 // CHUNK * CHUNK, pause_s=1.5
        )
    assert finals(events) == ["first", "second"]
    (conn,) = fake.connections
    assert conn.controls.count("KeepAlive") >= 5
    assert conn.close_code == 1000 and conn.violations == []
    assert conn.controls[-2:] == ["Finalize", "CloseStream"]


async def test_without_keepalive_the_idle_close_is_survived(key: str) -> None:
    """Control for the test above: the fake does close idle streams, and the client recovers.

    An idle close is the service's routine, not a failure: even a policy without retries
    (``attempts: 1``) reconnects after each one.
    """
    async with FakeDeepgram(script=["first", "second"], idle_timeout_s=0.6) as fake:
        pcm = utterances(0.6, 0.6, gap=0.5)
        stt = make_stt(fake, keepalive_s=None, retry={"attempts": 1})
        events = await transcribe(stt, pcm, pause_at=len(pcm) // 2 // CHUNK * CHUNK, pause_s=1.5)
    assert fake.connections[0].close_code == 1011
    assert "net0001" in fake.connections[0].close_reason
    assert len(fake.connections) >= 2  # each silent connection times out until audio flows again
    assert finals(events) == ["first", "second"]


def _resume_point(conn_sent: list[dict[str, object]]) -> int:
    """Byte offset up to which the finals a connection delivered cover the audio."""
    ends = [m["start"] + m["duration"] for m in conn_sent if m.get("type") == "Results" and m["is_final"]]  # type: ignore[operator]
    return round(max(ends, default=0.0) * RATE) * 2


@pytest.mark.parametrize("drop_code", [1011, None], ids=["close-1011", "network-abort"])
@pytest.mark.parametrize("split", [None, 0.5], ids=["whole", "segmented"])
async def test_dropped_socket_loses_and_repeats_nothing(key: str, drop_code: int | None, split: float | None) -> None:
    script = ["hello there", "how are you doing today my friend", "fine thanks"]
    pcm = utterances(1.0, 2.0, 0.8, tail=1.2)
    utterance2 = int((0.3 + 1.0 + 0.8 + 1.25) * RATE) * 2  # 1.25 s into the second utterance
    async with FakeDeepgram(
        script=script, drop_after_bytes=utterance2, drop_code=drop_code, split_final_every_s=split
    ) as fake:
        events = await transcribe(make_stt(fake), pcm)
    assert finals(events) == script
    assert fake.finals() == script if split is None else " ".join(fake.finals()) == " ".join(script)
    first, second = fake.connections
    assert bytes(first.audio[:utterance2]) == pcm[:utterance2]
    resume = _resume_point(first.sent)
    assert 0 < resume < utterance2
    assert bytes(second.audio) == pcm[resume:]  # exactly the audio no final covered, then the rest
    assert any(isinstance(e, Interim) and "how" in e.text for e in events)


async def test_final_lost_in_flight_is_earned_again(key: str) -> None:
    """A final still delayed when the socket drops never arrives: its audio is re-sent."""
    pcm = utterances(1.0, 1.0)
    after_endpoint = int((0.3 + 1.0 + 0.5) * RATE) * 2
    async with FakeDeepgram(script=["first", "second"], final_delay_ms=400, drop_after_bytes=after_endpoint) as fake:
        events = await transcribe(make_stt(fake), pcm)
    assert finals(events) == ["first", "second"]
    first, second = fake.connections
    assert not [m for m in first.sent_of("Results") if m["is_final"]]
    assert bytes(second.audio) == pcm


async def test_resend_buffer_stays_bounded(key: str, fake: FakeDeepgram) -> None:
    stt = make_stt(fake)
    async with stt, stt.stream() as stream:
        pcm = utterances(1.0, 1.0, 1.0, tail=2.5)
        for i in range(0, len(pcm), CHUNK):
            stream.push_audio(pcm[i : i + CHUNK])
        seen: list[str] = []
        async for event in stream:
            if isinstance(event, Final):
                seen.append(event.text)
                if len(seen) == 3:
                    break
        # all three utterances and the silence after them are final: nothing is kept for re-sending
        await asyncio.sleep(0.2)
        assert stream.unfinalized_s < 1.5
        stream.end_input()
        assert [e async for e in stream if isinstance(e, Final)] == []


async def test_bad_key_is_an_auth_error(monkeypatch: pytest.MonkeyPatch, fake: FakeDeepgram) -> None:
    monkeypatch.setenv("DEEPGRAM_API_KEY", "wrong-key")
    with pytest.raises(AuthError, match="DEEPGRAM_API_KEY") as info:
        await transcribe(make_stt(fake), utterances(0.5))
    assert "\n" not in str(info.value) and "wrong-key" not in str(info.value)
    assert [status for status, _ in fake.handshakes] == [401]  # not retried


async def test_bad_model_is_a_clear_error(key: str, fake: FakeDeepgram) -> None:
    with pytest.raises(BackendError, match=r"stt\.model='nova-9'") as info:
        await transcribe(make_stt(fake, model="nova-9"), utterances(0.5))
    assert not info.value.retryable and "No such model" in str(info.value)
    assert [status for status, _ in fake.handshakes] == [400]


async def test_busy_service_is_retried(key: str) -> None:
    async with FakeDeepgram(script=["made it"], handshake_statuses=[429, 503], retry_after=0.2) as fake:
        started = asyncio.get_running_loop().time()
        events = await transcribe(make_stt(fake), utterances(0.8))
        waited = asyncio.get_running_loop().time() - started
    assert [status for status, _ in fake.handshakes] == [429, 503, 101]
    assert finals(events) == ["made it"]
    assert waited >= 0.4  # Retry-After was honoured twice


async def test_retries_give_up(key: str) -> None:
    async with FakeDeepgram(handshake_statuses=[503] * 10) as fake:
        with pytest.raises(BackendError) as info:
            await transcribe(make_stt(fake, retry={"attempts": 3, "initial_ms": 0, "max_ms": 0}), utterances(0.5))
    assert str(info.value) == (
        "stt:deepgram: Deepgram answered HTTP 503; gave up after 3 tries: check the network, stt.base_url and stt.retry"
    )
    assert not info.value.retryable  # the policy is spent: the core must not spend it again
    assert len(fake.handshakes) == 3


async def test_hanging_handshake_times_out(key: str) -> None:
    async with FakeDeepgram(handshake_delay_ms=1000) as fake:
        with pytest.raises(BackendError, match=r"TimeoutError.*gave up after 2 tries"):
            await transcribe(make_stt(fake, timeout_s=0.2, retry={"attempts": 2, "initial_ms": 0}), utterances(0.5))
    assert len(fake.handshakes) == 2


async def test_retry_after_is_surfaced_and_a_long_one_ends_the_retries(key: str) -> None:
    """A 429 asking for 60 s, beyond the policy's 15 s budget: no second try, and the wait is on the error."""
    async with FakeDeepgram(handshake_statuses=[429], retry_after=60) as fake:
        with pytest.raises(BackendError) as info:
            await transcribe(make_stt(fake, retry={"attempts": 5, "budget_ms": 15_000}), utterances(0.5))
    assert info.value.retry_after == 60
    assert "HTTP 429, asking to wait 60 s; gave up after 1 try" in str(info.value)
    assert [status for status, _ in fake.handshakes] == [429]


async def test_drops_in_a_row_give_up_after_the_policy_attempts(key: str) -> None:
    """Every connection drops before a final: each try counts, and the third is the last."""
    pcm = utterances(1.0, tail=1.0)
    drop_at = int(0.5 * RATE) * 2  # 0.2 s into the speech, long before its final
    async with FakeDeepgram(script=["never finished"], drop_after_bytes=drop_at, drop_count=10) as fake:
        stt = make_stt(fake, retry={"attempts": 3, "initial_ms": 0, "max_ms": 0})
        with pytest.raises(BackendError) as info:
            await transcribe(stt, pcm)
    message = str(info.value)
    assert message.startswith("stt:deepgram: Deepgram closed the connection (1011 NET-0000")
    assert message.endswith("gave up after 3 tries: check the network, stt.base_url and stt.retry")
    assert "\n" not in message and not info.value.retryable
    assert len(fake.connections) == 3
    assert all(bytes(c.audio[:drop_at]) == pcm[:drop_at] for c in fake.connections)  # each try re-sent it all


async def test_a_connection_that_finalized_something_resets_the_count(key: str) -> None:
    """Drops that each come after a final are progress, not failures in a row: one retry allowed
    (``attempts: 2``) carries the stream through three of them."""
    script = ["one", "two", "three"]
    async with FakeDeepgram(script=script, drop_after_bytes=int(2.2 * RATE) * 2, drop_count=3) as fake:
        stt = make_stt(fake, retry={"attempts": 2, "initial_ms": 0, "max_ms": 0})
        events = await transcribe(stt, utterances(1.0, 1.0, 1.0, tail=1.2))
    assert finals(events) == script
    assert len(fake.connections) == 4
    assert all(c.sent_of("Results") for c in fake.connections[:3])


async def test_aclose_sends_close_stream(key: str, fake: FakeDeepgram) -> None:
    stt = make_stt(fake)
    async with stt:
        stream = stt.stream()
        async with stream:
            stream.push_audio(utterances(1.0, tail=0.0))
            async for event in stream:
                if isinstance(event, Interim):
                    break
        await stream.aclose()  # twice is fine
    await stt.aclose()
    await asyncio.sleep(0.1)
    (conn,) = fake.connections
    assert conn.controls == ["CloseStream"] and conn.violations == []


async def test_standalone_fake(key: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.deepgram", "--port", "0", "--script", "from the command line",
        "--api-key", key, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        stt = DeepgramSTT(DeepgramSTT.Options(base_url=url))
        assert finals(await transcribe(stt, utterances(1.0))) == ["from the command line"]
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


# --- shared contract, real speech ------------------------------------------------------


class TestDeepgramContract(STTContract):
    """The STT contract over espeak-ng speech, through the real SDK and the fake service."""

    timeout_s = 20.0

    @pytest.fixture
    async def backend(self, key: str) -> AsyncIterator[DeepgramSTT]:
        async with FakeDeepgram(script=["hello world"]) as server, make_stt(server) as stt:
            yield stt


async def test_synthesized_speech(key: str, fake: FakeDeepgram) -> None:
    from voicekit.testing.speech import synthesize

    pcm = synthesize("hello there") + silence(0.6) + synthesize("how are you today") + silence(0.6)
    events = await transcribe(make_stt(fake), pcm)
    assert finals(events) == ["hello there", "how are you today"]
    assert sum(isinstance(e, SpeechStarted) for e in events) == 2


# --- end to end: voicekit chat with a deepgram profile ------------------------------------


async def test_cli_chat_with_deepgram_profile(key: str, tmp_path: Path) -> None:
    from voicekit.testing.speech import synthesize, write_wav

    said = ["hello there", "how are you"]
    speech = write_wav(tmp_path / "speech.wav", b"".join(synthesize(s) + silence(1.5) for s in said))
    profile = tmp_path / "deepgram-echo.yaml"
    profile.write_text(
        "description: Deepgram -> echo, no output\n"
        "language: en\n"
        "stt: {use: deepgram, model: nova-3, endpointing_ms: 300}\n"
        "llm: {use: echo}\n"
        "output: {use: silent}\n"
    )
    record = tmp_path / "rec"
    async with FakeDeepgram(script=said) as fake:
        args = ["chat", "--profile", str(profile), "--input", str(speech), "--fast", "--record", str(record)]
        args += ["--set", f"stt.base_url={fake.url}"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicekit", *args, cwd=ROOT, env={**os.environ, "DEEPGRAM_API_KEY": key},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
    assert all(s in out.decode() for s in said), out.decode()[-2000:]
    lines = [json.loads(line) for line in (record / "transcript.jsonl").read_text().splitlines()]
    assert [line["text"] for line in lines if line["type"] == "Final"] == said
    assert fake.connections[0].headers["Authorization"] == f"Token {key}"
    assert fake.connections[-1].controls[-2:] == ["Finalize", "CloseStream"]
    assert all(not c.violations for c in fake.connections)
