"""Gemini Live: no user turn is lost, and none answered twice, when a connection is replaced.

The fake breaks a turn on purpose (:meth:`FakeGeminiLive.break_next_turn`): ``goAway``
and close, or a drop, right after the user's turn and before any of the reply (the
turn must be sent again and answered once), or after a few chunks of the reply (the
turn must not be sent again; the cut reply is reported); or it stays silent (a stall,
retried by the retry policy, then one ``BackendError``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.backends.test_gemini_live import UTTERANCE, eventually, fake, make_llm, policy, say, until
from tests.backends.test_gemini_live_text import collect
from tests.fakes.gemini_live import Exchange, FakeGeminiLive, Latency
from voicekit.errors import BackendError
from voicekit.events import AudioOut, Final, Interim, LLMDone, TextDelta
from voicekit.plugins.llm.gemini_live.replay import ReplayBuffer
from voicekit.plugins.llm.gemini_live.stream import TurnTracker
from voicekit.plugins.llm.gemini_live.wire import LiveUpdate

__all__ = ["fake"]

#: how the service loses a turn: goAway with time to switch, goAway and an immediate close, a drop
LOSSES = [("go_away", 1.0), ("go_away", 0.0), ("drop", 0.0)]


def answered(fake: FakeGeminiLive) -> list[tuple[int, str, bool]]:
    """(connection, what was heard, completed) of every reply the fake started."""
    return [(r.connection, r.heard, r.completed) for r in fake.replies]


def typed(conn: Any) -> list[str]:
    return [m["realtime_input"]["text"] for m in conn.messages[1:] if "text" in m.get("realtime_input", {})]


# --- the account of what to send again, on its own ----------------------------------------


def test_replay_buffer_policy() -> None:
    buffer = ReplayBuffer(max_audio_bytes=10)
    buffer.written("audio", b"aaaa", model_speaking=False)
    buffer.written("text", "typed", model_speaking=False)
    buffer.covered()  # a handle: what was written just before it may not have reached the service yet
    buffer.written("audio", b"cccc", model_speaking=False)
    assert len(buffer) == 3
    buffer.covered()  # the next handle covers the audio written before the first one; not the typed turn
    assert buffer.awaiting_reply and buffer.take() == [("text", "typed"), ("audio", b"cccc")]
    buffer.written("text", "first", model_speaking=False)
    buffer.written("audio", b"bbbb", model_speaking=False)
    buffer.reply_started()  # the model answers both
    assert not buffer.awaiting_reply and len(buffer) == 0
    buffer.reply_started()
    buffer.written("text", "barge-in", model_speaking=True)  # behind the reply under way
    buffer.reply_started()  # more of the same reply: it does not answer what came behind it
    assert buffer.awaiting_reply
    buffer.turn_ended()
    buffer.reply_started()  # the next reply does
    assert not buffer.awaiting_reply
    for chunk in (b"111111", b"222222", b"333333"):
        buffer.written("audio", chunk, model_speaking=False)
    assert buffer.take() == [("audio", b"333333")], "the oldest unanswered audio goes first past the bound"


def test_tracker_restarts_the_transcript_of_resent_speech() -> None:
    tracker = TurnTracker()
    events = tracker.feed(LiveUpdate(input_text="hello"))
    events += tracker.feed(LiveUpdate(audio_resent=True))  # the new connection hears it all again
    events += tracker.feed(LiveUpdate(input_text="hello"))
    events += tracker.feed(LiveUpdate(input_text=" there"))
    events += tracker.feed(LiveUpdate(output_text="Hi", audio=[(b"\0\0", 24000)]))
    assert [e.text for e in events if isinstance(e, Interim)] == ["hello", "hello", "hello there"]
    assert [e.text for e in events if isinstance(e, Final)] == ["hello there"]
    assert [type(e).__name__ for e in events].count("SpeechStarted") == 1


# --- a typed turn lost with its connection ----------------------------------------------------


@pytest.mark.parametrize(("action", "time_left_s"), LOSSES)
async def test_text_turn_lost_with_its_connection_is_answered_once(
    fake: FakeGeminiLive, action: Any, time_left_s: float
) -> None:
    fake.script = (Exchange("", "Answer {turn}."),)
    llm = make_llm(fake, mode="text", reply_timeout_s=5)
    await llm.start()
    fake.break_next_turn(action, time_left_s=time_left_s)
    events = await collect(llm, [], "What time is it?")
    second = await collect(llm, [], "And the date?")
    await llm.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Answer", " 1."]
    assert events[-1] == LLMDone("Answer 1.", t=events[-1].t)
    assert second[-1].text == "Answer 2.", "the conversation goes on, with its context"
    first, resumed = fake.connections
    assert typed(first) == ["What time is it?"]
    assert resumed.resumed_from == first.handles[-1]
    assert typed(resumed) == ["What time is it?", "And the date?"], "sent again once, on the resumed session"
    assert answered(fake) == [(1, "What time is it?", True), (1, "And the date?", True)], "answered exactly once"


@pytest.mark.parametrize(("action", "time_left_s"), LOSSES)
async def test_typed_turn_in_audio_mode_survives_a_lost_connection(
    fake: FakeGeminiLive, action: Any, time_left_s: float
) -> None:
    llm = make_llm(fake, reply_timeout_s=5)
    await llm.start()
    fake.break_next_turn(action, time_left_s=time_left_s)
    async with llm.realtime() as stream:
        await stream.send_text("What time is it?")
        log: list[Any] = []
        done = await until(aiter(stream), LLMDone, log, timeout=15)
        info = stream.info
    await llm.aclose()
    assert done.text == "Hi! This is reply 1."
    assert [type(e) for e in log].count(LLMDone) == 1
    assert [typed(c) for c in fake.connections] == [["What time is it?"], ["What time is it?"]]
    assert answered(fake) == [(1, "What time is it?", True)]
    assert (info["connections"], info["resumed"], info["replayed"]) == (2, 1, 1)


# --- speech lost with its connection -------------------------------------------------------------


@pytest.mark.parametrize(("action", "time_left_s"), LOSSES)
async def test_speech_lost_with_its_connection_is_answered_once(
    fake: FakeGeminiLive, action: Any, time_left_s: float
) -> None:
    llm = make_llm(fake)
    await llm.start()
    fake.break_next_turn(action, time_left_s=time_left_s)  # the fake hears the end of the speech, then loses it
    async with llm.realtime() as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE)
        log: list[Any] = []
        done = await until(events, LLMDone, log, timeout=15)
    await llm.aclose()
    assert done.text == "Hi! This is reply 1."
    assert [e.text for e in log if isinstance(e, Final)] == ["hello there"], "one transcript, not doubled"
    assert all(e.text in ("hello", "hello there") for e in log if isinstance(e, Interim))
    first, resumed = fake.connections
    assert bytes(first.audio) == UTTERANCE[: len(first.audio)] and first.audio_at_handle == [0]
    assert bytes(resumed.audio) == UTTERANCE, "the audio the handle did not cover went again, all of it"
    assert answered(fake) == [(1, "hello there", True)]


async def test_speech_cut_midway_by_a_drop_is_heard_whole(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake)
    await llm.start()
    half = len(UTTERANCE) // 4 // 640 * 640  # into the speech
    async with llm.realtime() as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE[:half])
        await eventually(lambda: len(fake.connections[0].audio) == half)
        await fake.drop()
        await say(stream, UTTERANCE[half:])
        log: list[Any] = []
        done = await until(events, LLMDone, log, timeout=15)
    await llm.aclose()
    assert done.text == "Hi! This is reply 1."
    assert bytes(fake.connections[1].audio) == UTTERANCE
    assert [e.text for e in log if isinstance(e, Final)] == ["hello there"]
    assert answered(fake) == [(1, "hello there", True)]


# --- a reply that had started: reported, never repeated -------------------------------------------


async def test_started_reply_cut_by_a_drop_is_not_asked_again(fake: FakeGeminiLive) -> None:
    fake.reply_ms = 1000
    llm = make_llm(fake)
    await llm.start()
    fake.break_next_turn("drop", after_chunks=3)
    async with llm.realtime() as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE)
        log: list[Any] = []
        cut = await until(events, LLMDone, log)
        await eventually(lambda: stream.info["connections"] == 2)
        await say(stream, UTTERANCE)
        after: list[Any] = []
        done = await until(events, LLMDone, after)
    await llm.aclose()
    assert sum(len(e.pcm) for e in log if isinstance(e, AudioOut)) == 3 * fake.chunk_ms * 48
    assert cut.text == "".join(e.text for e in log if isinstance(e, TextDelta)) and cut.text != done.text
    assert [e.text for e in log + after if isinstance(e, Final)] == ["hello there", "hello there"]
    assert bytes(fake.connections[1].audio) == UTTERANCE, "the answered utterance was not sent again"
    assert answered(fake) == [(0, "hello there", False), (1, "hello there", True)]
    assert done.text == "Hi! This is reply 1."


async def test_started_text_reply_cut_by_a_drop_is_reported(
    fake: FakeGeminiLive, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script = (Exchange("", "A long answer number {turn}."),)
    llm = make_llm(fake, mode="text", model="gemini-live-2.5-flash-preview")  # TEXT replies: one piece a chunk
    await llm.start()
    fake.break_next_turn("drop", after_chunks=2)
    with caplog.at_level(logging.WARNING):
        cut = await collect(llm, [], "Tell me")
    nxt = await collect(llm, [], "Again")
    await llm.aclose()
    assert [e.text for e in cut if isinstance(e, TextDelta)] == ["A", " long"]
    assert cut[-1] == LLMDone("A long", t=cut[-1].t)
    assert "the connection broke during the reply; it ends after 6 characters" in caplog.text
    assert nxt[-1].text == "A long answer number 1."
    assert typed(fake.connections[1]) == ["Again"], "the answered turn was not sent again"
    assert answered(fake) == [(0, "Tell me", False), (1, "Again", True)]


# --- stalls: retried by the policy, then one error -----------------------------------------------


async def test_stalled_turn_is_sent_again_on_a_new_connection(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("", "Answer {turn}."),)
    llm = make_llm(fake, mode="text", reply_timeout_s=0.3, retry=policy(attempts=2))
    await llm.start()
    fake.break_next_turn("stall")
    events = await collect(llm, [], "Hello?")
    await llm.aclose()
    assert events[-1].text == "Answer 1."
    assert [typed(c) for c in fake.connections] == [["Hello?"], ["Hello?"]]
    assert fake.connections[0].closed == (1000, ""), "the stalled connection was closed by the client"
    assert answered(fake) == [(1, "Hello?", True)]


async def test_turn_never_answered_is_one_retryable_error(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("", "Answer {turn}."),)
    llm = make_llm(fake, mode="text", reply_timeout_s=0.3, retry=policy(attempts=2))
    await llm.start()
    fake.break_next_turn("stall")
    fake.break_next_turn("stall")
    with pytest.raises(BackendError) as caught:
        await collect(llm, [], "Hello?")
    assert str(caught.value) == f"{llm.label}: no reply for 0.3 s"
    assert (caught.value.retryable, caught.value.retry_after) == (True, None)
    assert [typed(c) for c in fake.connections] == [["Hello?"], ["Hello?"]], "tried as often as the policy says"
    after = await collect(llm, [], "Still there?")  # the conversation can go on: a new live session
    await llm.aclose()
    assert after[-1].text == "Answer 1." and answered(fake) == [(2, "Still there?", True)]


async def test_reply_that_stops_is_reported_and_the_stream_goes_on(fake: FakeGeminiLive) -> None:
    fake.latency = Latency(chunk_s=0.01)
    llm = make_llm(fake, reply_timeout_s=0.3)
    await llm.start()
    fake.break_next_turn("stall", after_chunks=2)
    async with llm.realtime() as stream:
        events = aiter(stream)
        await say(stream, UTTERANCE)
        log: list[Any] = []
        cut = await until(events, LLMDone, log)
        await say(stream, UTTERANCE)
        done = await until(events, LLMDone, [])
    await llm.aclose()
    assert sum(len(e.pcm) for e in log if isinstance(e, AudioOut)) == 2 * fake.chunk_ms * 48
    assert cut.text != done.text == "Hi! This is reply 1."
    assert answered(fake) == [(0, "hello there", False), (1, "hello there", True)]
