"""``voicekit serve`` with its default profile, gemini-live (speech to speech in one model),
against the local Gemini Live fake: the realtime path through the server, over the wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.fakes.gemini_live import DEFAULT_KEY, FakeGeminiLive
from tests.serve_helpers import connect, running_server, speech
from voicekit.ledger import SessionLedger
from voicekit.serve.config import ServeConfig


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiLive]:
    server = FakeGeminiLive(reply_ms=600)
    await server.start()
    yield server
    await server.stop()


async def test_default_profile_speaks_through_the_server(fake: FakeGeminiLive) -> None:
    config = ServeConfig(
        profile="gemini-live",
        ledger=SessionLedger(),
        overrides=(f"llm.base_url={fake.base_url}", f"llm.api_key={DEFAULT_KEY}", f"llm.ca_file={fake.cert_file}"),
    )
    async with running_server(config) as server, connect(server.ws_url) as client:
        ready = await client.ready()
        assert ready["data"]["about"]["profile"] == "gemini-live"
        await client.stream(bytes(3200) + speech(500) + bytes(16000 * 2))
        await client.wait_for("metrics", timeout=10)
        kinds = client.kinds
        finals = [m["data"]["text"] for m in client.messages("user-transcription") if m["data"]["final"]]
        assert finals == ["hello there"]
        assert kinds.index("user-started-speaking") < kinds.index("bot-started-speaking") < kinds.index("audio")
        audio = [p for _, k, p in client.log if k == "audio"]
        assert {(a.sample_rate, a.num_channels) for a in audio} == {(24000, 1)}
        assert sum(len(a.audio) for a in audio) == pytest.approx(fake.reply_ms * 48, abs=960)
        # a speech-to-speech model has no sentences for the voice: its words come as one bot-output
        outputs = client.messages("bot-output")
        assert [(o["data"]["text"], o["data"]["aggregated_by"]) for o in outputs] == [("Hi! This is reply 1.", "turn")]
        assert kinds.index("bot-output") < kinds.index("bot-stopped-speaking") < kinds.index("metrics")
        assert "".join(m["data"]["text"] for m in client.messages("bot-llm-text")) == "Hi! This is reply 1."
        assert kinds.count("bot-llm-started") == kinds.count("bot-llm-stopped") == 1
        await client.send_rtvi("disconnect-bot")
        await client.closed()
    await asyncio.sleep(0)
    assert fake.errors == []
    assert fake.connections and fake.connections[0].closed is not None, "the live session was closed"


async def test_typed_turn_lost_with_its_connection_is_answered_once(fake: FakeGeminiLive) -> None:
    """The service says goAway and closes right after a typed turn: the conversation answers it and goes on."""
    config = ServeConfig(
        profile="gemini-live",
        ledger=SessionLedger(),
        overrides=(f"llm.base_url={fake.base_url}", f"llm.api_key={DEFAULT_KEY}", f"llm.ca_file={fake.cert_file}"),
    )
    fake.break_next_turn("go_away", time_left_s=0.5)
    async with running_server(config) as server, connect(server.ws_url) as client:
        await client.ready()
        await client.send_rtvi("send-text", {"content": "what time is it"})
        first = await client.wait_for("bot-output", timeout=15)
        await client.wait_for("bot-stopped-speaking", after=first, timeout=10)
        await client.stream(bytes(3200) + speech(500) + bytes(16000 * 2))
        await client.wait_for("bot-output", after=first + 1, timeout=15)
        outputs = [o["data"]["text"] for o in client.messages("bot-output")]
        assert outputs == ["Hi! This is reply 1.", "Hi! This is reply 2."], "answered once, and the talk went on"
        assert "error" not in client.kinds, client.messages("error")
        await client.send_rtvi("disconnect-bot")
        await client.closed()
    assert [(r.connection, r.heard, r.completed) for r in fake.replies] == [
        (1, "what time is it", True),
        (1, "hello there", True),
    ]
    assert len(fake.connections) == 2 and fake.connections[1].resumed_from is not None
    assert fake.errors == []
