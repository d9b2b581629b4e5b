"""Gemini Live as a text LLM: one live session per conversation (the real SDK against the TLS fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.backends.test_gemini_live import fake, make_llm, policy
from tests.fakes.gemini_live import QUOTA_REASON, Exchange, FakeGeminiLive, Latency
from voicekit.errors import BackendError
from voicekit.events import LLMDone, TextDelta
from voicekit.plugins.llm.gemini_live.backend import GeminiLiveLLM
from voicekit.roles import Message
from voicekit.testing.contracts import LLMContract

__all__ = ["fake"]  # the fixture, shared with tests/test_gemini_live.py


# --- text mode ------------------------------------------------------------------------------


async def collect(llm: GeminiLiveLLM, history: list[Message], text: str) -> list[Any]:
    return [e async for e in llm.respond(history, text)]


async def test_text_mode_native_audio_model(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("", "Answer {turn}."),)
    llm = make_llm(fake, mode="text")
    assert not llm.capabilities.accepts_audio and not llm.capabilities.produces_audio
    await llm.start()
    first = await collect(llm, [], "Hi")
    second = await collect(llm, [Message("user", "Hi"), Message("assistant", "Answer 1.")], "Again")
    await llm.aclose()
    assert [type(e) for e in first][-1] is LLMDone and first[-1].text == "Answer 1."
    assert "".join(e.text for e in second if isinstance(e, TextDelta)) == second[-1].text == "Answer 2."
    assert len(fake.connections) == 1, "one live session for the whole conversation"
    setup = fake.connections[0].setup
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]  # native audio cannot answer in TEXT
    assert "outputAudioTranscription" in setup and "inputAudioTranscription" not in setup
    texts = [m["realtime_input"]["text"] for m in fake.connections[0].messages[1:]]
    assert texts == ["Hi", "Again"]


async def test_text_mode_text_modality(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake, mode="text", model="gemini-live-2.5-flash-preview")
    await llm.start()
    events = await collect(llm, [], "Hi")
    await llm.aclose()
    assert fake.connections[0].setup["generationConfig"]["responseModalities"] == ["TEXT"]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi!", " This", " is", " reply", " 1."]


async def test_text_mode_abandoned_reply_is_skipped(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("", "Long answer number {turn} with many words in it."),)
    fake.latency = Latency(chunk_s=0.02)
    llm = make_llm(fake, mode="text")
    await llm.start()
    reply = llm.respond([], "First")
    first = await anext(reply)
    assert isinstance(first, TextDelta)
    await reply.aclose()  # barge-in: the engine stops reading
    events = await collect(llm, [], "Second")
    await llm.aclose()
    assert events[-1].text == "Long answer number 2 with many words in it."
    assert fake.connections[0].interrupted == 1


async def test_text_mode_recovers_after_a_failed_session(fake: FakeGeminiLive) -> None:
    fake.script = (Exchange("", "Answer {turn}."),)
    llm = make_llm(fake, mode="text", retry=policy(attempts=2))
    await llm.start()
    assert (await collect(llm, [], "One"))[-1].text == "Answer 1."
    fake.break_next_turn("drop")  # "Two" is heard, the connection drops (try 1)...
    fake.fail_next(1011, QUOTA_REASON)  # ... and reconnecting hits the quota (try 2: the policy gives up)
    with pytest.raises(BackendError, match="quota") as caught:
        await collect(llm, [], "Two")
    assert caught.value.retryable
    third = await collect(llm, [], "Three")  # a new session, told what was said so far
    await llm.aclose()
    assert third[-1].text == "Answer 1."
    seeded = fake.connections[-1].messages[1]["client_content"]["turns"]
    assert [(t["role"], t["parts"][0]["text"]) for t in seeded] == [
        ("user", "One"),
        ("model", "Answer 1."),
        ("user", "Two"),
    ]
    assert fake.connections[-1].messages[2] == {"realtime_input": {"text": "Three"}}


class TestGeminiLiveTextContract(LLMContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self, fake: FakeGeminiLive) -> AsyncIterator[GeminiLiveLLM]:
        llm = make_llm(fake, mode="text")
        await llm.start()
        yield llm
        await llm.aclose()
