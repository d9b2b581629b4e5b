"""Deepgram Flux: the unchanged SDK (``listen.v2``) against the local fake in tests/fakes/deepgram_flux.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pydantic
import pytest

from tests.fakes.deepgram_flux import FakeFlux
from voicekit.errors import AuthError, BackendError
from voicekit.events import EagerEndOfTurn, EndOfTurn, Final, Interim, SpeechStarted, STTEvent, TurnResumed
from voicekit.options import RetryPolicy
from voicekit.plugins.stt.deepgram import DeepgramSTT
from voicekit.plugins.stt.deepgram_flux import DeepgramFluxSTT, FluxStream
from voicekit.roles import BackendContext

RATE = 16000
CHUNK = 640


def tone(seconds: float, freq: float = 220.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * 2)


def turn_with_a_pause() -> bytes:
    """Speech, a 300 ms pause inside the turn, more speech, then a long silence."""
    return silence(0.2) + tone(0.8) + silence(0.3) + tone(0.6, 260) + silence(0.8)


@pytest.fixture
async def fake() -> AsyncIterator[FakeFlux]:
    async with FakeFlux(script=["i would like to order a large pizza please", "thanks"]) as server:
        yield server


def make_stt(fake: FakeFlux, **options: object) -> DeepgramFluxSTT:
    policy = RetryPolicy.model_validate({"attempts": 4, "initial_ms": 10, "max_ms": 50})
    stt = DeepgramFluxSTT(
        DeepgramFluxSTT.Options(api_key="test-key", base_url=fake.url, **options),
        BackendContext(language="en", retry=policy),
    )
    stt.name = "deepgram_flux"
    return stt


async def transcribe(stt: DeepgramFluxSTT, pcm: bytes) -> tuple[list[STTEvent], FluxStream]:
    events: list[STTEvent] = []
    async with stt:
        stream = stt.stream()
        async with stream:
            for i in range(0, len(pcm), CHUNK):
                stream.push_audio(pcm[i : i + CHUNK])
                if i % (CHUNK * 5) == 0:
                    await asyncio.sleep(0)
            stream.end_input()
            async for event in stream:
                events.append(event)
    return events, stream


async def test_turn_events_drive_the_engines_events(fake: FakeFlux) -> None:
    events, stream = await transcribe(
        make_stt(fake, eot_threshold=0.8, eager_eot_threshold=0.4, eot_timeout_ms=3000, keyterms=["pizza"]),
        turn_with_a_pause(),
    )
    (status, query), *_ = fake.handshakes
    assert status == 101 and query["model"] == ["flux-general-en"] and query["encoding"] == ["linear16"]
    assert query["eot_threshold"] == ["0.8"] and query["eager_eot_threshold"] == ["0.4"]
    assert query["eot_timeout_ms"] == ["3000"] and query["keyterm"] == ["pizza"]
    assert fake.connections[0].headers["Authorization"] == "Token test-key"
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "SpeechStarted"
    assert kinds.index("EagerEndOfTurn") < kinds.index("TurnResumed") < kinds.index("Final") < kinds.index("EndOfTurn")
    assert kinds.count("Final") == 1 and kinds.count("EndOfTurn") == 1
    eager = next(e for e in events if isinstance(e, EagerEndOfTurn))
    final = next(e for e in events if isinstance(e, Final))
    assert final.text == "i would like to order a large pizza please" and final.confidence == pytest.approx(0.97)
    assert eager.confidence == pytest.approx(0.6) and any(isinstance(e, Interim) for e in events)
    assert next(e for e in events if isinstance(e, EndOfTurn)).confidence == pytest.approx(0.9)
    assert stream.sequence_gaps == 0
    assert [e.t for e in events] == sorted(e.t for e in events)


async def test_no_eager_events_without_an_eager_threshold(fake: FakeFlux) -> None:
    events, _ = await transcribe(make_stt(fake, eager_eot_threshold=None), turn_with_a_pause())
    assert not [e for e in events if isinstance(e, (EagerEndOfTurn, TurnResumed))]
    assert "eager_eot_threshold" not in fake.handshakes[0][1]
    assert [e.text for e in events if isinstance(e, Final)] == ["i would like to order a large pizza please"]


async def test_the_end_of_input_ends_the_open_turn(fake: FakeFlux) -> None:
    events, _ = await transcribe(make_stt(fake), silence(0.2) + tone(0.7))
    assert fake.connections[0].controls == ["ForceEndTurn", "CloseStream"]
    assert [e.text for e in events if isinstance(e, Final)] == ["i would like to order a large pizza please"]
    assert isinstance(events[-1], EndOfTurn) and isinstance(events[0], SpeechStarted)


async def test_a_dropped_connection_resends_the_open_turn(fake: FakeFlux) -> None:
    fake.drop_after_bytes = int(RATE * 0.6) * 2  # inside the first turn
    events, stream = await transcribe(make_stt(fake), turn_with_a_pause() + tone(0.5, 300) + silence(0.8))
    assert stream.connections == 2
    assert [e.text for e in events if isinstance(e, Final)] == ["i would like to order a large pizza please", "thanks"]
    assert fake.end_of_turns() == ["i would like to order a large pizza please", "thanks"]


async def test_an_error_message_is_retried_as_the_policy_says(fake: FakeFlux) -> None:
    fake.error_after_bytes = 6400
    events, stream = await transcribe(make_stt(fake), turn_with_a_pause())
    assert stream.connections == 2
    assert [e.text for e in events if isinstance(e, Final)] == ["i would like to order a large pizza please"]


async def test_a_busy_service_is_retried_with_its_retry_after(fake: FakeFlux) -> None:
    fake.handshake_statuses, fake.retry_after = [503], 0.05
    events, _ = await transcribe(make_stt(fake), turn_with_a_pause())
    assert [s for s, _ in fake.handshakes] == [503, 101]
    assert len([e for e in events if isinstance(e, Final)]) == 1


async def test_a_rejected_key_is_one_line_naming_the_variable(fake: FakeFlux) -> None:
    stt = DeepgramFluxSTT(DeepgramFluxSTT.Options(api_key="wrong", base_url=fake.url))
    with pytest.raises(AuthError, match="DEEPGRAM_API_KEY"):
        await transcribe(stt, turn_with_a_pause())
    assert [s for s, _ in fake.handshakes] == [401]


async def test_a_refused_setting_is_not_retried(fake: FakeFlux) -> None:
    fake.handshake_statuses = [400]
    with pytest.raises(BackendError, match="HTTP 400") as caught:
        await transcribe(make_stt(fake), turn_with_a_pause())
    assert not caught.value.retryable and len(fake.handshakes) == 1


def test_flux_models_belong_to_deepgram_flux_and_thresholds_are_bounded() -> None:
    with pytest.raises(pydantic.ValidationError, match="deepgram_flux"):
        DeepgramSTT.Options(model="flux-general-en")
    with pytest.raises(pydantic.ValidationError, match="Flux model"):
        DeepgramFluxSTT.Options(model="nova-3")
    with pytest.raises(pydantic.ValidationError, match=r"less than or equal to 0\.9"):
        DeepgramFluxSTT.Options(eot_threshold=0.95)


def test_sdk_typed_messages_parse() -> None:
    from deepgram.core.unchecked_base_model import construct_type
    from deepgram.listen.v2.socket_client import V2SocketClientResponse

    raw = {
        "type": "TurnInfo", "request_id": "r", "sequence_id": 7, "event": "EndOfTurn", "turn_index": 0,
        "audio_window_start": 0.0, "audio_window_end": 1.5, "transcript": "Hello there.",
        "words": [{"word": "Hello", "confidence": 0.9, "start": 0.1, "end": 0.5}], "end_of_turn_confidence": 0.88,
        "trigger": "model", "languages": ["en"],
    }  # fmt: skip
    typed = construct_type(type_=V2SocketClientResponse, object_=raw)
    stream = make_stt(FakeFlux()).stream()
    from voicekit.plugins.stt.deepgram_flux import _as_dict

    events = stream._turn_events(_as_dict(typed))
    assert [type(e).__name__ for e in events] == ["Final", "EndOfTurn"]
    assert events[0].text == "Hello there." and events[0].language == "en"  # type: ignore[union-attr]
