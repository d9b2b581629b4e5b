"""ElevenLabs output: the multi-context websocket (and the SDK's HTTP stream) against the local fake."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tests.fakes.elevenlabs import DEFAULT_KEY, ElevenLabsFake
from voicekit.engine import retry
from voicekit.errors import AuthError, BackendError
from voicekit.events import AudioOut, SpeakingEnded, SpeakingStarted
from voicekit.options import RetryPolicy
from voicekit.plugins.output._elevenlabs_protocol import SentenceAttributor, parse_server_message
from voicekit.plugins.output.elevenlabs import ElevenLabsOutput
from voicekit.registry import load_registry
from voicekit.roles import BackendContext
from voicekit.testing.contracts import OutputContract

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "elevenlabs"
SENTENCES = ("Hello there.", "How are you today?")


def sample_messages(name: str) -> list[dict[str, Any]]:
    example = json.loads((SAMPLES / name).read_text())["x-fern-examples"][0]
    return list(example["messages"])


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[ElevenLabsFake]:
    async with ElevenLabsFake() as server:
        yield server


@pytest.fixture
async def make_out(fake: ElevenLabsFake) -> AsyncIterator[Callable[..., ElevenLabsOutput]]:
    made: list[ElevenLabsOutput] = []

    def make(language: str | None = "en", retry: dict[str, int] | None = None, **options: Any) -> ElevenLabsOutput:
        options.setdefault("api_key", DEFAULT_KEY)
        options.setdefault("timeout_s", 5.0)
        options.setdefault("base_url", fake.base_url)
        context = BackendContext(language=language, retry=policy(**(retry or {"attempts": 3})))
        out = ElevenLabsOutput(ElevenLabsOutput.Options(**options), context)
        out.name = "elevenlabs"
        made.append(out)
        return out

    yield make
    for out in made:
        await out.aclose()


def policy(**fields: int) -> RetryPolicy:
    """A role's ``retry:`` policy, without waits unless asked (tests stay fast)."""
    return RetryPolicy.model_validate({"initial_ms": 0, "max_ms": 0, **fields})


async def feed(sentences: Sequence[str], gap_s: float = 0.0) -> AsyncIterator[str]:
    for sentence in sentences:
        await asyncio.sleep(gap_s)
        yield sentence


async def speak(out: ElevenLabsOutput, sentences: Sequence[str] = SENTENCES, gap_s: float = 0.0) -> list[Any]:
    return [event async for event in out.speak(feed(sentences, gap_s))]


def audio_per_sentence(events: Sequence[Any]) -> dict[str, int]:
    """Bytes of audio between each SpeakingStarted/SpeakingEnded pair; checks the framing on the way."""
    per: dict[str, int] = {}
    current: str | None = None
    for event in events:
        if isinstance(event, SpeakingStarted):
            assert current is None, f"{event} inside {current!r}"
            current = event.text
            per[current] = 0
        elif isinstance(event, AudioOut):
            assert current is not None, "audio outside a sentence"
            assert len(event.pcm) % 2 == 0
            per[current] += len(event.pcm)
        elif isinstance(event, SpeakingEnded):
            assert event.text == current
            current = None
    assert current is None
    return per


def expected_bytes(fake: ElevenLabsFake, sentence: str, rate: int) -> int:
    """The fake speaks ms_per_char per character of the text as sent (with its trailing space)."""
    return round((len(sentence) + 1) * fake.ms_per_char * rate / 1000) * 2


# --- the vendor's own examples ------------------------------------------------------------------


def test_parses_the_stream_input_audio_example() -> None:
    (audio,) = [m["value"] for m in sample_messages("stream-input.fern-example.json") if m["type"] == "subscribe"]
    msg = parse_server_message(json.dumps(audio))
    assert msg.audio == base64.b64decode(audio["audio"])
    assert msg.chars is not None and "".join(msg.chars) == "Hello world"
    assert msg.starts_ms[:3] == (0.0, 3.0, 7.0)
    assert not msg.final and msg.error is None and msg.context_id is None


def test_parses_the_multi_context_examples() -> None:
    received = [m["value"] for m in sample_messages("multi-stream-input.fern-example.json") if m["type"] == "subscribe"]
    audio, audio_no_alignment, final = (parse_server_message(json.dumps(v)) for v in received)
    assert audio.context_id == "conv_1" and audio.audio and audio.chars is not None and not audio.final
    assert audio_no_alignment.context_id == "interruption_context" and audio_no_alignment.chars is None
    assert final.final and final.context_id == "interruption_context" and not final.audio  # is_final spelling
    sdk_style = parse_server_message('{"isFinal": true, "contextId": "c1"}')
    assert sdk_style.final and sdk_style.context_id == "c1"


def test_parses_the_timeout_error() -> None:
    msg = parse_server_message(
        '{"message": "Have not received a new text input within the timeout of 20.0 seconds.", '
        '"error": "input_timeout_exceeded", "code": 1008}'
    )
    assert msg.error == "input_timeout_exceeded" and "20.0 seconds" in (msg.message or "")


def test_attributor_on_the_example_chunk() -> None:
    """The docs' chunk says "Hello world": split between two sentences at the "w" (13 ms)."""
    (audio,) = [m["value"] for m in sample_messages("stream-input.fern-example.json") if m["type"] == "subscribe"]
    msg = parse_server_message(json.dumps(audio))
    attributor = SentenceAttributor(sample_rate=1000)  # one sample per millisecond
    attributor.add("Hello")
    attributor.add("world")
    pcm = bytes(range(48))  # 24 samples
    pieces = attributor.split(pcm, msg.chars, msg.starts_ms)
    assert [(i, len(p)) for i, p in pieces] == [(0, 26), (1, 22)]
    assert b"".join(p for _, p in pieces) == pcm and not attributor.pending


async def test_client_messages_match_the_documented_shapes(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    published = {
        m["messageId"]: m["value"]
        for m in sample_messages("multi-stream-input.fern-example.json")
        if m["type"] == "publish"
    }
    await speak(make_out())
    sent = [m for _, m in fake.connections[0].messages]
    init, text, close = sent[0], sent[1], sent[-1]
    assert set(published["InitializeConnectionMulti"]) <= set(init)
    assert set(published["InitializeConnectionMulti"]["voice_settings"]) <= set(init["voice_settings"])
    assert set(published["SendTextMulti"]) <= set(text)
    assert set(close) == set(published["CloseContextClient"])


# --- speaking -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 22050, 24000])
async def test_sentences_in_audio_out_at_the_format_rate(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput], rate: int
) -> None:
    out = make_out(output_format=f"pcm_{rate}")
    await out.start()
    assert out.sample_rate == rate
    events = await speak(out, gap_s=0.02)
    assert {e.sample_rate for e in events if isinstance(e, AudioOut)} == {rate}
    per = audio_per_sentence(events)
    assert per == {s: expected_bytes(fake, s, rate) for s in SENTENCES}
    assert [e.t for e in events] == sorted(e.t for e in events)

    (conn,) = fake.connections
    assert conn.path == f"/v1/text-to-speech/{out.options.voice_id}/multi-stream-input"
    assert conn.query["output_format"] == f"pcm_{rate}"
    assert conn.query["model_id"] == "eleven_flash_v2_5" and conn.query["language_code"] == "en"
    assert conn.headers["xi-api-key"] == DEFAULT_KEY
    assert fake.violations == []
    texts = [m["text"] for m in conn.sent(flush=True)]
    assert texts == ["Hello there. ", "How are you today? "]


async def test_chunks_straddling_sentences_are_split_by_alignment(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    """Flushed only at the end of the turn, chunks of 7 chars cross sentence ends: each gets its own audio."""
    fake.chars_per_chunk = 7
    sentences = ("Hi.", "This is a test.", "Bye now!")
    out = make_out(output_format="pcm_16000", flush_each_sentence=False, chunk_length_schedule=[500])
    per = audio_per_sentence(await speak(out, sentences))
    assert per == {s: expected_bytes(fake, s, 16000) for s in sentences}
    conn = fake.connections[0]
    assert conn.sent(flush=True) == [{"context_id": conn.sent(close_context=True)[0]["context_id"], "flush": True}]
    assert conn.messages[0][1]["generation_config"] == {"chunk_length_schedule": [500]}
    assert fake.violations == []


async def test_audio_without_alignment_and_docs_spellings(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    """No alignment: all the audio still comes, framed; `is_final` is understood like `isFinal`."""
    fake.alignment = False
    fake.final_key = "is_final"
    events = await speak(make_out(output_format="pcm_16000"))
    per = audio_per_sentence(events)
    assert list(per) == list(SENTENCES)
    assert sum(per.values()) == sum(expected_bytes(fake, s, 16000) for s in SENTENCES)


async def test_empty_turn_and_blank_sentences(fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]) -> None:
    out = make_out()
    assert await speak(out, ()) == []
    assert await speak(out, ("  ", "")) == []
    events = await speak(out, ("  Spaced   out.  ",))
    assert [e.text for e in events if isinstance(e, SpeakingStarted)] == ["Spaced out."]
    assert fake.violations == []


# --- between turns, barge-in, failures ----------------------------------------------------------


async def test_keepalive_outlives_the_idle_timeout(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.idle_timeout_s = 0.6
    out = make_out(keepalive_s=0.2)
    await out.start()
    await asyncio.sleep(1.0)  # idle before the first turn
    assert audio_per_sentence(await speak(out))
    await asyncio.sleep(1.5)  # idle between turns, 2.5 times the service's timeout
    assert audio_per_sentence(await speak(out))
    (conn,) = fake.connections  # one socket for the whole conversation
    assert conn.close_code is None
    keepalives = conn.sent(text="")
    assert len(keepalives) >= 4 and all(k.get("context_id") for k in keepalives)
    assert fake.violations == []


async def test_without_keepalive_the_fake_times_out_and_the_next_turn_reconnects(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.idle_timeout_s = 0.4
    out = make_out(keepalive_s=60)
    await speak(out)
    await asyncio.sleep(0.8)
    assert fake.connections[0].close_code == 1008  # input_timeout_exceeded
    assert audio_per_sentence(await speak(out)) == {s: expected_bytes(fake, s, 24000) for s in SENTENCES}
    assert len(fake.connections) == 2


async def test_barge_in_drops_the_interrupted_audio(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.chars_per_chunk = 4
    fake.chunk_delay_s = 0.03
    out = make_out(output_format="pcm_16000")
    speech = out.speak(feed(["This first sentence is long enough to be cut off.", "Never heard."]))
    first = await speech.__anext__()
    assert isinstance(first, SpeakingStarted)
    assert isinstance(await speech.__anext__(), AudioOut)
    await out.interrupt()
    after = [event async for event in speech]
    assert not [e for e in after if isinstance(e, (AudioOut, SpeakingStarted))]

    # The next turn hears only its own audio, although the service kept sending the old one.
    fake.chunk_delay_s = 0.0
    per = audio_per_sentence(await speak(out, ("Next turn.",)))
    assert per == {"Next turn.": expected_bytes(fake, "Next turn.", 16000)}
    (conn,) = fake.connections
    assert sum(conn.audio_after_close.values()) > 0, "the fake should have sent audio after close_context"
    closed = conn.sent(close_context=True)
    assert closed and closed[0]["context_id"] == first_context(conn)


def first_context(conn: Any) -> str:
    return str(conn.messages[0][1]["context_id"])


async def test_cancelled_consumer_closes_the_context(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    """The engine may just cancel the task reading speak(): the context is closed all the same."""
    fake.chars_per_chunk = 4
    fake.chunk_delay_s = 0.03
    out = make_out()
    got_audio = asyncio.Event()

    async def consume() -> None:
        async for event in out.speak(feed(["A long sentence that is spoken for a while."])):
            if isinstance(event, AudioOut):
                got_audio.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(got_audio.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    conn = fake.connections[0]
    assert conn.sent(close_context=True)
    fake.chunk_delay_s = 0.0
    assert audio_per_sentence(await speak(out, ("Fine.",))) == {"Fine.": expected_bytes(fake, "Fine.", 24000)}


async def test_many_interrupted_turns_stay_under_the_context_limit(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.chars_per_chunk = 4
    fake.chunk_delay_s = 0.01
    out = make_out()
    for _ in range(7):
        speech = out.speak(feed(["Some words that get cut off right away, again and again."]))
        while not isinstance(await speech.__anext__(), AudioOut):
            pass
        await out.interrupt()
        await speech.aclose()
    fake.chunk_delay_s = 0.0
    assert audio_per_sentence(await speak(out))
    assert len(fake.connections) == 1 and fake.violations == []


async def test_dropped_socket_fails_the_turn_and_the_next_one_reconnects(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.drop_after_chunks = 1
    out = make_out()
    with pytest.raises(BackendError) as caught:
        await speak(out)
    assert caught.value.retryable
    assert fake.connections[0].dropped
    assert audio_per_sentence(await speak(out)) == {s: expected_bytes(fake, s, 24000) for s in SENTENCES}
    assert len(fake.connections) == 2


@pytest.mark.parametrize("gap_s", [0.0, 0.3], ids=["sent-at-once", "model-still-writing"])
async def test_drop_before_audio_reconnects_and_says_the_turn_again(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput], gap_s: float
) -> None:
    """Only the socket's owner knows the turn's text: it reconnects and sends it all again,
    while the language model goes on writing into the same turn."""
    fake.drop_before_audio = 1
    out = make_out()
    await out.start()
    per = audio_per_sentence(await speak(out, gap_s=gap_s))
    assert per == {s: expected_bytes(fake, s, 24000) for s in SENTENCES}
    first, second = fake.connections
    assert first.dropped and not second.dropped
    assert [m["text"] for m in second.sent(flush=True)] == [s + " " for s in SENTENCES]
    assert fake.violations == []


async def test_drops_in_a_row_give_up_after_the_policy_attempts(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.drop_before_audio = 10
    out = make_out(retry={"attempts": 3})
    await out.start()
    heard: list[Any] = []
    with pytest.raises(BackendError) as caught:
        async for event in out.speak(feed(SENTENCES)):
            heard.append(event)
    message = str(caught.value)
    assert message.startswith("output:elevenlabs: the ElevenLabs socket") and "\n" not in message
    assert message.endswith("gave up after 3 tries: check the network, output.base_url and output.retry")
    assert not caught.value.retryable  # the policy is spent: the core must not spend it again
    assert heard == [] and len(fake.connections) == 3


async def test_a_refusing_service_at_the_start_of_a_turn_is_retried_per_the_policy(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    """The socket died between turns; reopening it meets two 503s and then works."""
    fake.idle_timeout_s = 0.3
    out = make_out(keepalive_s=60, retry={"attempts": 3})
    await speak(out)
    await asyncio.sleep(0.6)  # the service closes the idle socket
    fake.handshake_statuses = [503, 503]
    assert audio_per_sentence(await speak(out)) == {s: expected_bytes(fake, s, 24000) for s in SENTENCES}
    assert fake.handshakes == [101, 503, 503, 101]


async def test_a_refusing_service_gives_up_after_the_policy_attempts(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.idle_timeout_s = 0.3
    out = make_out(keepalive_s=60, retry={"attempts": 3})
    await speak(out)
    await asyncio.sleep(0.6)
    fake.handshake_statuses = [503] * 5
    with pytest.raises(BackendError) as caught:
        await speak(out)
    assert str(caught.value) == (
        "output:elevenlabs: ElevenLabs refused the websocket (HTTP 503); gave up after 3 tries: "
        "check the network, output.base_url and output.retry"
    )
    assert fake.handshakes == [101, 503, 503, 503]


async def test_handshake_retry_after_is_surfaced(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    """Opening the backend is one request: its error says how long the service asks to wait."""
    fake.handshake_statuses, fake.retry_after = [429], 3.0
    with pytest.raises(BackendError) as caught:
        await make_out().start()
    assert caught.value.retryable and caught.value.retry_after == 3.0
    assert "HTTP 429, asking to wait 3 s" in str(caught.value)
    assert fake.handshakes == [429]


async def test_start_is_retried_by_the_policy(fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]) -> None:
    fake.handshake_statuses = [503]
    out = make_out()
    await retry.call(out.start, policy(attempts=3))
    assert audio_per_sentence(await speak(out))
    assert fake.handshakes == [503, 101]


async def test_invalid_key_names_the_env_var(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "wrong-key")
    out = make_out(api_key=None)
    await out.start()  # the service answers the first message, not the handshake
    with pytest.raises(AuthError) as caught:
        await speak(out)
    message = str(caught.value)
    assert "ELEVENLABS_API_KEY" in message and "\n" not in message
    assert fake.connections[0].close_code == 1008
    with pytest.raises(AuthError):  # and it stays an auth error, without hammering the service
        await speak(out)
    assert len(fake.connections) == 1


async def test_invalid_key_rejected_at_the_handshake(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.auth_at_handshake = True
    with pytest.raises(AuthError, match="ELEVENLABS_API_KEY"):
        await make_out(api_key="wrong").start()


async def test_unreachable_service_is_a_retryable_error(make_out: Callable[..., ElevenLabsOutput]) -> None:
    out = make_out(base_url="http://127.0.0.1:9")
    with pytest.raises(BackendError) as caught:
        await out.start()
    assert caught.value.retryable and "127.0.0.1:9" in str(caught.value)


# --- HTTP transport -------------------------------------------------------------------------------


async def test_http_transport_speaks_each_sentence(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    out = make_out(transport="http", output_format="pcm_22050", stability=0.3)
    per = audio_per_sentence(await speak(out))
    assert per == {s: round(len(s) * fake.ms_per_char * 22050 / 1000) * 2 for s in SENTENCES}
    first = fake.http_requests[0]
    assert first["path"] == f"/v1/text-to-speech/{out.options.voice_id}/stream"
    assert first["query"]["output_format"] == "pcm_22050"
    assert first["headers"]["xi-api-key"] == DEFAULT_KEY
    assert first["body"]["text"] == "Hello there." and first["body"]["model_id"] == "eleven_flash_v2_5"
    assert first["body"]["voice_settings"]["stability"] == 0.3
    assert first["body"]["language_code"] == "en"


async def test_http_bad_key(fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]) -> None:
    out = make_out(transport="http", api_key="nope")
    with pytest.raises(AuthError, match="ELEVENLABS_API_KEY"):
        [e async for e in retry.stream(lambda: out.speak(feed(SENTENCES)), policy(attempts=5))]
    assert len(fake.http_requests) == 1  # never tried again


async def test_http_retry_after_is_surfaced_before_any_event(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.http_statuses, fake.retry_after = [429], 2.0
    heard: list[Any] = []
    with pytest.raises(BackendError) as caught:
        async for event in make_out(transport="http").speak(feed(SENTENCES)):
            heard.append(event)
    assert caught.value.retryable and caught.value.retry_after == 2.0
    assert "HTTP 429, asking to wait 2 s" in str(caught.value)
    assert heard == []  # nothing yielded yet: the core may try the turn again
    assert len(fake.http_requests) == 1


async def test_http_failure_is_retried_by_the_policy(
    fake: ElevenLabsFake, make_out: Callable[..., ElevenLabsOutput]
) -> None:
    fake.http_statuses = [503]
    out = make_out(transport="http", output_format="pcm_16000")
    events = [e async for e in retry.stream(lambda: out.speak(feed(SENTENCES)), policy(attempts=3))]
    assert audio_per_sentence(events) == {s: round(len(s) * fake.ms_per_char * 16) * 2 for s in SENTENCES}
    assert [r["body"]["text"] for r in fake.http_requests] == [SENTENCES[0], *SENTENCES]


def test_options_take_no_retry_settings() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_retries"):  # retries follow the role's retry: policy
        ElevenLabsOutput.Options(max_retries=2)  # type: ignore[call-arg]


# --- addresses, registry, imports -------------------------------------------------------------------


def test_websocket_url_from_the_http_base() -> None:
    out = ElevenLabsOutput(
        ElevenLabsOutput.Options(
            base_url="https://api.eu.residency.elevenlabs.io/", voice_id="v1", inactivity_timeout_s=60, auto_mode=True
        ),
        BackendContext(language="pt-BR"),
    )
    assert out.websocket_url() == (
        "wss://api.eu.residency.elevenlabs.io/v1/text-to-speech/v1/multi-stream-input?model_id=eleven_flash_v2_5"
        "&output_format=pcm_24000&language_code=pt&inactivity_timeout=60&sync_alignment=true&auto_mode=true"
    )
    multilingual = ElevenLabsOutput(
        ElevenLabsOutput.Options(model="eleven_multilingual_v2"), BackendContext(language="ru")
    )
    assert multilingual.websocket_url().startswith("wss://api.elevenlabs.io/")
    assert "language_code" not in multilingual.websocket_url()
    own = ElevenLabsOutput(ElevenLabsOutput.Options(language="de"), BackendContext(language="en"))
    assert own.language_code == "de"


def test_created_through_the_registry() -> None:
    out = load_registry().create("output", "elevenlabs", {"voice_id": "abc", "output_format": "pcm_16000"})
    assert isinstance(out, ElevenLabsOutput) and out.sample_rate == 16000


def test_module_import_does_not_load_the_sdks() -> None:
    code = (
        "import sys, voicekit.plugins.output.elevenlabs; "
        "print([m for m in ('elevenlabs', 'websockets') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


async def test_fake_single_stream_input_endpoint(fake: ElevenLabsFake) -> None:
    """The fake's classic stream-input socket (key in the first message), for benchmarks of that protocol."""
    from websockets.asyncio.client import connect

    url = fake.base_url.replace("http", "ws") + "/v1/text-to-speech/v/stream-input?output_format=pcm_16000"
    received: list[dict[str, Any]] = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"text": " ", "voice_settings": {"stability": 0.5}, "xi_api_key": DEFAULT_KEY}))
        await ws.send(json.dumps({"text": "Hello world ", "flush": True}))
        await ws.send(json.dumps({"text": ""}))
        async for raw in ws:
            received.append(json.loads(raw))
    audio = b"".join(parse_server_message(m).audio for m in received)
    assert len(audio) == round(len("Hello world ") * fake.ms_per_char * 16) * 2
    assert received[-1]["isFinal"] is True
    assert fake.connections[0].close_code == 1000 and fake.violations == []


# --- the Output contract -----------------------------------------------------------------------------


class TestElevenLabsContract(OutputContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ElevenLabsOutput]:
        async with ElevenLabsFake(chars_per_chunk=8, chunk_delay_s=0.005) as server:
            options = ElevenLabsOutput.Options(api_key=DEFAULT_KEY, base_url=server.base_url)
            async with ElevenLabsOutput(options) as out:
                yield out
            assert server.violations == []


class TestElevenLabsHTTPContract(OutputContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ElevenLabsOutput]:
        async with ElevenLabsFake(chunk_delay_s=0.005) as server:
            options = ElevenLabsOutput.Options(api_key=DEFAULT_KEY, base_url=server.base_url, transport="http")
            async with ElevenLabsOutput(options) as out:
                yield out
