"""Gemini Live: the real google-genai SDK against the local TLS fake (tests/fakes/gemini_live.py)."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fakes.gemini_live import (
    DEFAULT_KEY,
    Exchange,
    FakeGeminiLive,
    Latency,
)
from voicekit.clock import now
from voicekit.events import AudioOut, Final, Interim, Interrupted, LLMDone, SpeechStarted, TextDelta
from voicekit.options import RetryPolicy
from voicekit.plugins.llm.gemini_live.backend import GeminiLiveLLM
from voicekit.plugins.llm.gemini_live.stream import GeminiRealtimeStream, TurnTracker
from voicekit.plugins.llm.gemini_live.wire import LiveUpdate, decode_server_message, language_code, read_update
from voicekit.roles import BackendContext, Message

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "samples" / "gemini"
FRAME = 640  # 20 ms at 16 kHz


def tone(ms: int, amplitude: int = 8000, hz: float = 300.0) -> bytes:
    """Loud enough for the fake's energy detector: it counts as speech."""
    n = 16 * ms
    return (np.sin(2 * np.pi * hz * np.arange(n) / 16000) * amplitude).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(32 * ms)


UTTERANCE = silence(100) + tone(500) + silence(500)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiLive]:
    server = FakeGeminiLive()
    await server.start()
    yield server
    await server.stop()


def make_llm(
    fake: FakeGeminiLive, language: str | None = None, retry: RetryPolicy | None = None, **options: Any
) -> GeminiLiveLLM:
    options.setdefault("api_key", DEFAULT_KEY)
    options.setdefault("ca_file", str(fake.cert_file))
    opts = GeminiLiveLLM.Options(base_url=fake.base_url, **options)
    context = BackendContext(language=language)
    if retry is not None:
        context.retry = retry
    return GeminiLiveLLM(opts, context)


def policy(attempts: int, initial_ms: int = 10, **more: int) -> RetryPolicy:
    """A retry policy with short waits (the waits' length is the core's business, not these tests')."""
    return RetryPolicy(attempts=attempts, initial_ms=initial_ms, max_ms=max(initial_ms, 50), **more)


async def say(stream: GeminiRealtimeStream, pcm: bytes, pace_s: float = 0.0, into: bytearray | None = None) -> int:
    for i in range(0, len(pcm), FRAME):
        stream.push_audio(pcm[i : i + FRAME])
        await asyncio.sleep(pace_s)
    if into is not None:
        into += pcm
    return len(pcm)


async def eventually(condition: Any, timeout: float = 10.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def until(events: AsyncIterator[Any], kind: type, log: list[Any], timeout: float = 10.0) -> Any:
    """Read events into ``log`` until one of ``kind``; return it."""

    async def read() -> Any:
        async for event in events:
            log.append(event)
            if isinstance(event, kind):
                return event
        raise AssertionError(f"events ended before a {kind.__name__}: {log}")

    return await asyncio.wait_for(read(), timeout)


# --- real vendor messages -------------------------------------------------------------------


def test_sdk_fixture_messages_parse() -> None:
    lines = (SAMPLES / "live_sdk_unit_test_fixtures.jsonl").read_text().splitlines()
    updates = [read_update(decode_server_message(line)) for line in lines]
    assert updates[0].setup_complete
    assert updates[1].audio == [(b"000000", 24000)]  # a bare "audio/pcm" is 24 kHz
    assert (updates[2].input_text, updates[2].input_finished) == ("test_input", True)
    assert updates[3].output_text == "test_output"
    assert updates[4].go_away_s == 10.0
    assert updates[5].new_handle == "test_handle"  # "resumable": "true" as a string still counts
    assert updates[6].turn_complete

    tracker = TurnTracker()
    events = [e for u in updates for e in tracker.feed(u)]
    kinds = [type(e).__name__ for e in events]
    # the user's transcript arrives after the reply began: its Final comes at the end of the turn
    assert kinds == ["AudioOut", "Interim", "TextDelta", "Final", "LLMDone"], kinds
    assert (events[3].text, events[-1].text) == ("test_input", "test_output")


def test_vertex_transcription_example_parses() -> None:
    dumps = [
        ast.literal_eval(line.split("#", 1)[1].strip())
        for line in (SAMPLES / "live_vertex_transcription_example.txt").read_text().splitlines()
        if "{" in line
    ]
    tracker = TurnTracker()
    events: list[Any] = []
    for dump in dumps:
        events += tracker.feed(read_update(decode_server_message({"server_content": dump})))
    events += tracker.feed(LiveUpdate(turn_complete=True))
    finals = [e for e in events if isinstance(e, Final)]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert [f.text for f in finals] == ["Hello."]
    assert events.index(finals[0]) < next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert "".join(deltas) == "Hi there. What can I do for you today?"
    assert isinstance(events[-1], LLMDone) and events[-1].text == "".join(deltas)


def test_setup_complete_example_parses() -> None:
    text = (SAMPLES / "live_setup_complete_example.txt").read_text()
    literal = ast.literal_eval(text[text.index("{") : text.index("}") + 2])
    assert read_update(decode_server_message(literal)).setup_complete


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ + (f"({e.text})" if getattr(e, "text", "") else "") for e in events]


def test_tracker_transcript_order_policy() -> None:
    tracker = TurnTracker()
    audio = LiveUpdate(audio=[(b"\0\0", 24000)])
    run = lambda *updates: names([e for u in updates for e in tracker.feed(u)])  # noqa: E731
    # user first, then the reply: Final at the start of the model's turn; late pieces are dropped
    assert run(LiveUpdate(input_text="Hi"), audio, LiveUpdate(input_text=" there"), LiveUpdate(turn_complete=True)) == [
        "SpeechStarted", "Interim(Hi)", "Final(Hi)", "AudioOut", "LLMDone",
    ]  # fmt: skip
    # the transcript comes only during the reply: no SpeechStarted (it is no barge-in), Final at its end
    assert run(audio, LiveUpdate(input_text="Late"), LiveUpdate(output_text="Ok"), LiveUpdate(turn_complete=True)) == [
        "AudioOut", "Interim(Late)", "TextDelta(Ok)", "Final(Late)", "LLMDone(Ok)",
    ]  # fmt: skip
    # barge-in: the interrupted turn ends; what the user says next starts the next turn
    assert run(
        LiveUpdate(input_text="Story"), audio, LiveUpdate(interrupted=True),
        LiveUpdate(input_text="Stop"), LiveUpdate(turn_complete=True), LiveUpdate(output_text="Ok"),
    ) == ["SpeechStarted", "Interim(Story)", "Final(Story)", "AudioOut", "Interrupted",
          "SpeechStarted", "Interim(Stop)", "Final(Stop)", "TextDelta(Ok)"]  # fmt: skip
    assert run(LiveUpdate(turn_complete=True)) == ["LLMDone(Ok)"]
    # local cut: nothing more of that turn, and no LLMDone for it
    run(LiveUpdate(input_text="Again"), audio)
    assert tracker.cut()
    assert run(audio, LiveUpdate(output_text="more"), LiveUpdate(turn_complete=True)) == []
    assert tracker.transcript == [
        ("user", "Hi"), ("user", "Late"), ("assistant", "Ok"), ("user", "Story"), ("user", "Stop"),
        ("assistant", "Ok"), ("user", "Again"),
    ]  # fmt: skip


def test_language_codes() -> None:
    assert language_code("ru") == "ru-RU"
    assert language_code("en") == "en-US"
    assert language_code("pt_br") == "pt-BR"


# --- native audio ---------------------------------------------------------------------------


async def test_native_audio_turn(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake, voice="Kore", system="Be brief.")
    assert llm.capabilities.accepts_audio and llm.capabilities.produces_audio
    await llm.start()
    try:
        async with llm.realtime() as stream:
            pushed = await say(stream, UTTERANCE)
            log: list[Any] = []
            done = await until(aiter(stream), LLMDone, log)
    finally:
        await llm.aclose()
    kinds = [type(e) for e in log]
    assert kinds[0] is SpeechStarted
    final = next(e for e in log if isinstance(e, Final))
    assert final.text == "hello there"
    assert [e.text for e in log if isinstance(e, Interim)] == ["hello", "hello there"]
    first_audio = kinds.index(AudioOut)
    assert kinds.index(Final) < first_audio, "the user's Final comes before the reply"
    audio = [e for e in log if isinstance(e, AudioOut)]
    assert {e.sample_rate for e in audio} == {24000}
    assert sum(len(e.pcm) for e in audio) == fake.reply_ms * 48
    assert done.text == "".join(e.text for e in log if isinstance(e, TextDelta)) == "Hi! This is reply 1."

    conn = fake.connections[0]
    assert conn.version == "v1beta" and conn.headers["x-goog-api-key"] == DEFAULT_KEY
    setup = conn.setup
    assert setup["model"] == "models/gemini-3.8-live"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert setup["generationConfig"]["speechConfig"]["voice_config"]["prebuilt_voice_config"]["voice_name"] == "Kore"
    assert "inputAudioTranscription" in setup and "outputAudioTranscription" in setup
    assert "sliding_window" in setup["contextWindowCompression"] and "sessionResumption" in setup
    assert setup["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert bytes(fake.audio) == UTTERANCE[: len(fake.audio)] and len(fake.audio) == pushed
    assert fake.errors == []
    assert conn.closed == (1000, ""), "the stream closes its connection cleanly"


async def test_language_from_context(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake, language="ru")
    await llm.start()
    async with llm.realtime() as stream:
        await say(stream, UTTERANCE)
        await until(aiter(stream), LLMDone, [])
    await llm.aclose()
    setup = fake.connections[0].setup
    assert setup["generationConfig"]["speechConfig"]["language_code"] == "ru-RU"
    assert "Russian" in setup["systemInstruction"]["parts"][0]["text"]


async def test_barge_in_server_interrupts(fake: FakeGeminiLive) -> None:
    fake.reply_ms, fake.latency = 4000, Latency(chunk_s=0.02)
    fake.script = (Exchange("tell me a story", "Once upon a time there was a long story."), Exchange("stop", "OK."))
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime() as stream:
        events = aiter(stream)
        log: list[Any] = []
        await say(stream, UTTERANCE)
        await until(events, AudioOut, log)
        await say(stream, tone(400) + silence(500))  # the user talks over the bot
        interrupted = await until(events, Interrupted, log)
        after: list[Any] = []
        await until(events, LLMDone, after)
    await llm.aclose()
    assert fake.connections[0].interrupted == 1
    cut_audio = [
        e for e in after[: next(i for i, e in enumerate(after) if isinstance(e, Final))] if isinstance(e, AudioOut)
    ]
    assert cut_audio == [], "no audio of the interrupted turn after Interrupted"
    assert all(e.t >= interrupted.t for e in after)
    assert [e.text for e in after if isinstance(e, Final)] == ["stop"]
    assert after[-1].text == "OK."


async def test_local_interrupt_drops_the_rest(fake: FakeGeminiLive) -> None:
    fake.reply_ms, fake.latency = 3000, Latency(chunk_s=0.01)
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime() as stream:
        events = aiter(stream)
        log: list[Any] = []
        await say(stream, UTTERANCE)
        await until(events, AudioOut, log)
        await stream.interrupt()
        cut_at = now()
        # the fake never heard the user, so it goes on sending that turn: all of it must be dropped
        await eventually(lambda: len(fake.connections[0].handles) >= 2)  # the fake finished that turn
        await say(stream, UTTERANCE)
        after: list[Any] = []
        done = await until(events, LLMDone, after)
    await llm.aclose()
    first_final = next(i for i, e in enumerate(after) if isinstance(e, Final))
    assert not [e for e in after[:first_final] if isinstance(e, (AudioOut, TextDelta, LLMDone, Interrupted))]
    assert all(e.t >= cut_at for e in after)
    assert sum(len(e.pcm) for e in after if isinstance(e, AudioOut)) == fake.reply_ms * 48
    assert done.text == "Hi! This is reply 2."


async def test_go_away_resumes_without_losing_audio(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("hello there", "Reply {turn}."),)
    llm = make_llm(fake, retry=policy(attempts=1))  # no retries at all: a goAway is no failure
    await llm.start()
    pushed = bytearray()
    async with llm.realtime() as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE, into=pushed)
        first = await until(events, LLMDone, [])
        handle = fake.connections[0].handles[-1]
        await eventually(lambda: stream.info["handle"] == handle)
        await fake.go_away(time_left_s=3.0)
        # keep talking (silence) through the switch, and a bit after it
        deadline = now() + 5.0
        while stream.info["connections"] < 2:
            assert now() < deadline, "no new connection after goAway"
            await say(stream, silence(20), pace_s=0.002, into=pushed)
        await say(stream, silence(100), into=pushed)
        await say(stream, UTTERANCE, into=pushed)
        second = await until(events, LLMDone, [])
    await llm.aclose()
    assert (first.text, second.text) == ("Reply 1.", "Reply 2."), "the resumed live session kept its context"
    old, new = fake.connections
    assert new.resumed_from == handle
    assert new.messages[1]["realtime_input"]["audio"], "audio held during the switch went out first"
    assert old.closed == (1000, ""), "the client left the old connection before the deadline"
    # what the old connection got after the handle is not in the resumed live session: it goes again, and only it
    covered = old.audio_at_handle[-1]
    resent = len(old.audio) - covered
    assert resent > 0 and bytes(new.audio[:resent]) == bytes(old.audio[covered:])
    assert bytes(old.audio) + bytes(new.audio[resent:]) == bytes(pushed), "every pushed byte reached the service"
    assert stream.info["resumed"] == 1


async def test_go_away_waits_for_the_reply_to_end(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("hello there", "Reply {turn} is a long one."),)
    fake.reply_ms, fake.latency = 2000, Latency(chunk_s=0.01)
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime() as stream:
        events = aiter(stream)
        log: list[Any] = []
        await say(stream, UTTERANCE)
        await until(events, AudioOut, log)
        await fake.go_away(time_left_s=5.0)
        first = await until(events, LLMDone, log)
        await say(stream, UTTERANCE)
        second = await until(events, LLMDone, [])
    await llm.aclose()
    assert first.text == "Reply 1 is a long one." and second.text == "Reply 2 is a long one."
    assert sum(len(e.pcm) for e in log if isinstance(e, AudioOut)) == fake.reply_ms * 48, "the reply was not cut"
    assert len(fake.connections) == 2 and fake.connections[1].resumed_from == fake.connections[0].handles[-1]


async def test_go_away_deadline_cuts_a_long_reply(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("hello there", "Reply {turn}."),)
    fake.reply_ms, fake.latency = 6000, Latency(chunk_s=0.02)
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime() as stream:
        events = aiter(stream)
        log: list[Any] = []
        await say(stream, UTTERANCE)
        await until(events, AudioOut, log)
        await fake.go_away(time_left_s=0.4)
        cut = await until(events, LLMDone, log)  # the turn ends where the old connection ended
        await say(stream, UTTERANCE)
        second = await until(events, LLMDone, [])
    await llm.aclose()
    assert sum(len(e.pcm) for e in log if isinstance(e, AudioOut)) < fake.reply_ms * 48
    # the cut turn is reported as what was said, and not asked again: the newest handle
    # came before it, so the resumed live session answers the next utterance as its first
    assert cut.text != "Reply 1." and second.text == "Reply 1."
    assert [(r.connection, r.completed) for r in fake.replies] == [(0, False), (1, True)]
    assert bytes(fake.connections[1].audio) == UTTERANCE, "the answered utterance was not sent again"
    assert fake.connections[0].closed == (1000, ""), "the client switched before the service's deadline"


async def test_dropped_socket_resumes(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("hello there", "Reply {turn}."),)
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime() as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE)
        await until(events, LLMDone, [])
        await fake.drop()
        await say(stream, UTTERANCE, pace_s=0.001)
        second = await until(events, LLMDone, [])
    await llm.aclose()
    assert second.text == "Reply 2."
    assert fake.connections[1].resumed_from == fake.connections[0].handles[-1]


async def test_refused_handle_starts_fresh_with_history(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("hello there", "Reply {turn}."),)
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime([Message("user", "Earlier question"), Message("assistant", "Earlier answer")]) as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE)
        await until(events, LLMDone, [])
        fake.handles.clear()  # the service forgot the live session
        await fake.drop()
        await say(stream, UTTERANCE, pace_s=0.001)
        second = await until(events, LLMDone, [])
    await llm.aclose()
    first, refused, fresh = fake.connections
    assert refused.closed == (1007, "Request contains an invalid argument.")
    assert fresh.resumed_from is None and fresh.setup["historyConfig"] == {"initial_history_in_client_content": True}
    seeded = fresh.messages[1]["client_content"]
    texts = [(t["role"], t["parts"][0]["text"]) for t in seeded["turns"]]
    assert texts == [
        ("user", "Earlier question"), ("model", "Earlier answer"), ("user", "hello there"), ("model", "Reply 1."),
    ]  # fmt: skip
    assert first.messages[1]["client_content"]["turns"][0]["parts"][0]["text"] == "Earlier question"
    assert second.text == "Reply 1.", "a fresh live session starts its own count"


async def test_client_activity_detection(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake, activity_detection="client")
    await llm.start()
    async with llm.realtime() as stream:
        await stream.activity_start()
        await say(stream, tone(200))
        await stream.activity_end()
        done = await until(aiter(stream), LLMDone, [])
    await llm.aclose()
    conn = fake.connections[0]
    assert conn.setup["realtimeInputConfig"] == {"automatic_activity_detection": {"disabled": True}}
    inputs = [next(iter(m["realtime_input"])) for m in conn.messages[1:]]
    assert inputs[0] == "activityStart" and inputs[-1] == "activityEnd" and set(inputs[1:-1]) == {"audio"}
    assert done.text == "Hi! This is reply 1."


async def test_typed_text_in_audio_mode(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake)
    await llm.start()
    async with llm.realtime() as stream:
        await stream.send_text("What time is it?")
        log: list[Any] = []
        done = await until(aiter(stream), LLMDone, log)
    await llm.aclose()
    assert not any(isinstance(e, Final) for e in log), "typed input is not echoed as a transcript"
    assert fake.connections[0].messages[1] == {"realtime_input": {"text": "What time is it?"}}
    assert done.text == "Hi! This is reply 1."
