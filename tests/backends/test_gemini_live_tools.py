"""Function calling in Gemini Live: ``toolCall`` → ``toolResponse`` and ``toolCallCancellation``
through the real google-genai SDK against the TLS fake, in audio and text mode, across
reconnects."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.backends.test_gemini_live import ROOT, UTTERANCE, eventually, make_llm, policy, say, until
from tests.e2e.tool_helpers import stdio_entry
from tests.fakes.gemini_live import DEFAULT_KEY, Exchange, FakeGeminiLive, Latency
from tests.fakes.gemini_tools import ScriptedCall, ToolPlan
from voicekit.audio.sinks import NullSink
from voicekit.engine.runner import ChatRequest, prepare, run_prepared
from voicekit.events import (
    AudioOut,
    BotTurn,
    Event,
    LLMDone,
    TextDelta,
    ToolCall,
    ToolCallsCancelled,
    ToolResult,
)
from voicekit.plugins.llm.gemini_live.backend import GeminiLiveLLM
from voicekit.plugins.llm.gemini_live.replay import ReplayBuffer
from voicekit.plugins.llm.gemini_live.stream import TurnTracker
from voicekit.plugins.llm.gemini_live.wire import LiveUpdate
from voicekit.roles import Message, ToolSpec
from voicekit.testing.tool_contract import ToolCallingContract

CLOCK = ToolSpec(
    "clock",
    "The current date and time in a timezone.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}},
)
WEATHER = ToolSpec(
    "get_weather",
    "The current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ASK_TIME = ToolPlan("time", (ScriptedCall("clock", {"timezone": "UTC"}),), say="Let me check.")
TWO_CITIES = ToolPlan(
    "paris and rome", (ScriptedCall("get_weather", {"city": "Paris"}), ScriptedCall("get_weather", {"city": "Rome"}))
)
SCRIPT = (Exchange("what time is it", "unused"), Exchange("never mind", "Okay, never mind."))


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiLive]:
    server = FakeGeminiLive(script=SCRIPT, tool_plans=(ASK_TIME, TWO_CITIES))
    await server.start()
    yield server
    await server.stop()


def without_audio(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, (AudioOut, TextDelta))]


# --- audio mode ------------------------------------------------------------------------------


async def test_audio_tool_call_and_response(fake: FakeGeminiLive) -> None:
    """The user's Final, the words before the call, the ToolCall; the result goes back as a
    toolResponse by id and name, and the model's answer goes on in the same turn."""
    llm = make_llm(fake)
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log)
        assert (call.name, json.loads(call.arguments)) == ("clock", {"timezone": "UTC"})
        await stream.send_tool_results([ToolResult(call.id, "clock", "noon", duration_ms=1.0)])
        done = await until(events, LLMDone, log)
    await llm.aclose()
    assert done.text == "Let me check. The tool said: noon."
    kinds = without_audio(log)
    assert kinds.index("Final") < kinds.index("ToolCall") < kinds.index("LLMDone") and kinds.count("LLMDone") == 1
    assert fake.connections[0].setup["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "clock",
                    "description": "The current date and time in a timezone.",
                    "parameters_json_schema": dict(CLOCK.parameters),
                }
            ]
        }
    ]
    sent = [m for m in fake.connections[0].messages if "tool_response" in m]
    assert sent == [
        {"tool_response": {"functionResponses": [{"id": call.id, "name": "clock", "response": {"output": "noon"}}]}}
    ]
    assert fake.tool_calls == [(0, {"id": call.id, "name": "clock", "args": {"timezone": "UTC"}})]
    assert not fake.errors


async def test_audio_parallel_calls_answered_one_by_one(fake: FakeGeminiLive) -> None:
    """Two calls in one toolCall; the engine hands back each result as it ends; the model
    answers once both are in. A call before any words still comes after the user's Final."""
    fake.script = (Exchange("weather in paris and rome", "unused"),)
    llm = make_llm(fake)
    async with llm.realtime(tools=(WEATHER,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        first = await until(events, ToolCall, log)
        second = await until(events, ToolCall, log)
        kinds = without_audio(log)
        assert kinds[-3:] == ["Final", "ToolCall", "ToolCall"], "the user's Final comes before the calls"
        await stream.send_tool_results([ToolResult(second.id, second.name, "rain")])
        await asyncio.sleep(0.1)
        assert not fake.replies, "the model waits for every response"
        await stream.send_tool_results([ToolResult(first.id, first.name, "sun")])
        done = await until(events, LLMDone, log)
    await llm.aclose()
    assert done.text == "The tool said: rain and sun."
    assert [r["id"] for _, r in fake.tool_responses] == [second.id, first.id]
    assert not fake.errors


async def test_audio_error_result(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake)
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log)
        await stream.send_tool_results([ToolResult(call.id, "clock", "error: unknown timezone", "error")])
        done = await until(events, LLMDone, log)
    await llm.aclose()
    assert done.text == "Let me check. The tool failed: error: unknown timezone."
    assert fake.tool_responses[0][1]["response"] == {"error": "error: unknown timezone"}


async def test_barge_in_during_a_slow_tool(fake: FakeGeminiLive) -> None:
    """The user speaks while the tool runs: the service withdraws the call (ToolCallsCancelled)
    and ends the turn; the tool's late result is not sent; the new words are answered."""
    llm = make_llm(fake)
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log)
        await say(stream, UTTERANCE)  # "never mind"
        cancelled = await until(events, ToolCallsCancelled, log)
        assert cancelled.ids == (call.id,)
        await stream.send_tool_results([ToolResult(call.id, "clock", "noon")])  # the tool ended anyway
        answer = await until(events, LLMDone, log)
    await llm.aclose()
    assert answer.text == "Okay, never mind."
    kinds = without_audio(log)
    assert kinds.index("ToolCallsCancelled") < kinds.index("Interrupted") < kinds.index("LLMDone")
    assert fake.cancellations == [(0, [call.id])]
    assert fake.tool_responses == [], "a withdrawn call's result is never sent"
    assert not fake.errors


async def test_a_slow_tool_is_no_stall(fake: FakeGeminiLive) -> None:
    """While the model waits for a tool, its silence does not count against reply_timeout_s."""
    llm = make_llm(fake, reply_timeout_s=0.3)
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log)
        await asyncio.sleep(1.0)  # the tool takes more than three reply timeouts
        assert stream.info["connections"] == 1
        await stream.send_tool_results([ToolResult(call.id, "clock", "noon")])
        done = await until(events, LLMDone, log)
        assert stream.info["connections"] == 1
    await llm.aclose()
    assert done.text.endswith("The tool said: noon.")


async def test_go_away_while_a_tool_runs(fake: FakeGeminiLive) -> None:
    """The connection is replaced while the tool runs: the result reaches the resumed
    connection, once, and the model's answer ends the turn the call began."""
    llm = make_llm(fake)
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log)
        await fake.go_away(time_left_s=0.4)
        await eventually(lambda: stream.info["resumed"] == 1)
        await stream.send_tool_results([ToolResult(call.id, "clock", "noon")])
        done = await until(events, LLMDone, log)
    await llm.aclose()
    assert done.text == "Let me check. The tool said: noon.", "one turn across the two connections"
    assert [(conn, r["id"]) for conn, r in fake.tool_responses] == [(1, call.id)]
    assert fake.connections[0].closed == (1000, ""), "the client switched before the deadline"
    assert fake.replies[-1].connection == 1 and fake.replies[-1].completed
    assert not fake.errors


async def test_response_unanswered_when_the_socket_drops_is_sent_again_once(fake: FakeGeminiLive) -> None:
    fake.latency = Latency(first_reply_s=0.5)  # the model takes its time to answer the response
    llm = make_llm(fake, retry=policy(attempts=3))
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log, timeout=15)
        await stream.send_tool_results([ToolResult(call.id, "clock", "noon")])
        await eventually(lambda: bool(fake.tool_responses))
        await fake.drop()  # written, and not answered yet
        done = await until(events, LLMDone, log, timeout=15)
    await llm.aclose()
    assert done.text == "Let me check. The tool said: noon."
    assert [(conn, r["id"]) for conn, r in fake.tool_responses] == [(0, call.id), (1, call.id)]
    assert stream.info["resumed"] == 1 and not fake.errors
    assert [(r.connection, r.completed) for r in fake.replies if r.heard == "(function responses)"] == [
        (0, False),
        (1, True),
    ]


async def test_a_fresh_live_session_gets_the_results_in_words(fake: FakeGeminiLive) -> None:
    """Resuming is refused: the new live session never asked for the call, so it is told the
    result as words instead of a toolResponse it would not know."""
    llm = make_llm(fake, retry=policy(attempts=3))
    async with llm.realtime(tools=(CLOCK,)) as stream:
        events, log = aiter(stream), []
        await say(stream, UTTERANCE)
        call = await until(events, ToolCall, log)
        fake.handles.clear()  # the handles die with the service's memory of them
        await fake.drop()
        await eventually(lambda: stream.info["connections"] >= 2)
        await stream.send_tool_results([ToolResult(call.id, "clock", "noon")])
        await eventually(lambda: any("text" in m.get("realtime_input", {}) for m in fake.connections[-1].messages))
    await llm.aclose()
    last = fake.connections[-1]
    assert last.resumed_from is None
    texts = [m["realtime_input"]["text"] for m in last.messages if "text" in m.get("realtime_input", {})]
    assert texts == ["Results of the functions you called: clock: noon"]
    assert not any("tool_response" in m for m in last.messages)
    assert not fake.errors


# --- text mode -------------------------------------------------------------------------------


async def collect(llm: GeminiLiveLLM, history: list[Message], text: str, tools: tuple[ToolSpec, ...]) -> list[Any]:
    return [e async for e in llm.respond(history, text, tools=tools)]


def round_of(prompt: str, calls: list[ToolCall], *results: ToolResult) -> list[Message]:
    return [Message("user", prompt), Message("assistant", "", tool_calls=tuple(calls), tool_results=results)]


@pytest.mark.parametrize("turn_complete_after_tool_call", [False, True])
async def test_text_mode_rounds(fake: FakeGeminiLive, turn_complete_after_tool_call: bool) -> None:
    """Round one ends with the calls; round two sends the toolResponse and reads the answer
    (whether or not the service closed the call's turn with a turnComplete first)."""
    fake.turn_complete_after_tool_call = turn_complete_after_tool_call
    fake.script = (Exchange("", "Okay, turn {turn}."),)
    llm = make_llm(fake, mode="text", model="gemini-live-2.5-flash-preview")
    await llm.start()
    first = await collect(llm, [], "What time is it?", (CLOCK,))
    assert [type(e) for e in first] == [TextDelta, TextDelta, TextDelta, ToolCall, LLMDone]
    call = first[3]
    assert first[-1].text == "Let me check."
    second = await collect(
        llm, round_of("What time is it?", [call], ToolResult(call.id, "clock", "noon")), "", (CLOCK,)
    )
    assert second[-1].text == " The tool said: noon."
    assert not any(isinstance(e, ToolCall) for e in second)
    third = await collect(llm, [], "never mind", (CLOCK,))
    await llm.aclose()
    assert third[-1].text == "Okay, turn 2."
    # the session opened by start() knew no tools; the first turn with tools opened one that does
    assert "tools" not in fake.connections[0].setup and fake.connections[1].setup["tools"]
    assert len(fake.connections) == 2
    assert [r["response"] for _, r in fake.tool_responses] == [{"output": "noon"}]
    assert not fake.errors


async def test_text_mode_last_round_refuses_a_call(fake: FakeGeminiLive) -> None:
    """Offered no tools, the model is answered at once with an error and its words are the reply."""
    fake.script = (Exchange("", "Okay."),)
    llm = make_llm(fake, mode="text", model="gemini-live-2.5-flash-preview")
    await llm.start()
    first = await collect(llm, [], "never mind", (CLOCK,))  # declares the tools, calls nothing
    assert first[-1].text == "Okay."
    events = await collect(llm, [], "What time is it?", ())
    await llm.aclose()
    assert not any(isinstance(e, ToolCall) for e in events)
    assert (
        events[-1].text == "Let me check. The tool failed: no more tool calls in this reply: answer with what you have."
    )
    assert fake.tool_responses[0][1]["response"] == {
        "error": "no more tool calls in this reply: answer with what you have"
    }


async def test_text_mode_new_words_while_calls_wait(fake: FakeGeminiLive) -> None:
    """The engine dropped the round (barge-in): the next turn's words go; the service withdraws the
    calls and ends their turn, whose rest is skipped; no toolResponse is sent."""
    fake.script = (Exchange("", "Okay, turn {turn}."),)
    llm = make_llm(fake, mode="text", model="gemini-live-2.5-flash-preview")
    await llm.start()
    await collect(llm, [], "What time is it?", (CLOCK,))
    events = await collect(llm, [], "never mind", (CLOCK,))
    await llm.aclose()
    assert events[-1].text == "Okay, turn 2."
    assert len(fake.cancellations) == 1 and fake.tool_responses == []
    assert not fake.errors


async def test_text_mode_nothing_to_go_on_with(fake: FakeGeminiLive) -> None:
    """A later round without calls waiting and without results ends at once, sending nothing."""
    llm = make_llm(fake, mode="text", model="gemini-live-2.5-flash-preview")
    await llm.start()
    events = await asyncio.wait_for(collect(llm, [Message("user", "hi")], "", (CLOCK,)), 10)
    await llm.aclose()
    assert [type(e) for e in events] == [LLMDone] and events[0].text == ""
    assert not any("realtime_input" in m or "tool_response" in m for c in fake.connections for m in c.messages)


class TestGeminiLiveToolContract(ToolCallingContract):
    timeout_s = 15.0

    @pytest.fixture
    async def backend(self) -> AsyncIterator[GeminiLiveLLM]:
        server = FakeGeminiLive(script=(Exchange("", "Hello there, friend."),))
        await server.start()
        llm = make_llm(server, mode="text", model="gemini-live-2.5-flash-preview")
        await llm.start()
        yield llm
        await llm.aclose()
        await server.stop()


def test_both_modes_declare_tools() -> None:
    for mode in ("audio", "text"):
        assert GeminiLiveLLM.capabilities_for(GeminiLiveLLM.Options(mode=mode)).tools


# --- the policies, without a connection ---------------------------------------------------------


def test_tracker_calls_and_cancellations() -> None:
    tracker = TurnTracker()
    events = tracker.feed(LiveUpdate(input_text="what time is it"))
    events += tracker.feed(LiveUpdate(tool_calls=[("c1", "clock", {}), ("", "clock", {"timezone": "Asia/Tokyo"})]))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "Interim", "Final", "ToolCall", "ToolCall"], "the Final comes before the calls"
    first, second = events[-2:]
    assert first.id == "c1" and second.id and second.id != "c1", "a call without an id gets one"
    assert json.loads(second.arguments) == {"timezone": "Asia/Tokyo"}
    (withdrawn,) = tracker.feed(LiveUpdate(cancelled_calls=["c1", "unknown"]))
    assert isinstance(withdrawn, ToolCallsCancelled) and withdrawn.ids == ("c1",)
    late = ToolResult("c1", "clock", "noon")
    fresh = ToolResult(second.id, "clock", "nine")
    assert tracker.answerable([late, fresh]) == [fresh], "a withdrawn call's result is dropped"
    assert tracker.answerable([fresh]) == [], "and a call is answered once"
    assert tracker.feed(LiveUpdate(cancelled_calls=["c1"])) == []


def test_replay_keeps_a_tool_response_until_the_model_goes_on() -> None:
    replay = ReplayBuffer(max_audio_bytes=32000)
    replay.written("audio", b"x" * 100, model_speaking=False)
    replay.written("tool_response", (1, ["r"]), model_speaking=False)
    assert replay.awaiting_reply
    replay.covered()
    replay.covered()  # newer handles: the audio is in them, the response stays until answered
    assert replay.awaiting_reply and len(replay) == 1
    replay.tool_answered()
    assert len(replay) == 0 and not replay.awaiting_reply
    replay.written("tool_response", (2, ["r"]), model_speaking=False)
    assert [kind for kind, _ in replay.take()] == ["tool_response"], "what the next connection gets again"


# --- in a conversation --------------------------------------------------------------------------

CLOCK_SAYS = r"\w+day \d\d \w+ 20\d\d, \d\d:\d\d in UTC \(UTC\+00:00\)"


def live_profile(tmp_path: Path, fake: FakeGeminiLive, tools: str) -> Path:
    """The shipped gemini-live profile, pointed at the fake, with tools."""
    path = tmp_path / "live-tools.yaml"
    path.write_text(
        "extends: gemini-live\n"
        f"llm: {{base_url: '{fake.base_url}', ca_file: '{fake.cert_file}', api_key: {DEFAULT_KEY}}}\n"
        f"tools: {tools}\n"
    )
    return path


async def test_chat_text_where_the_live_model_calls_the_clock(fake: FakeGeminiLive, tmp_path: Path) -> None:
    """``voicekit chat --text`` with the gemini-live profile and ``tools: [clock]``: the model
    calls the built-in clock and speaks what it said."""
    fake.tool_plans = (ToolPlan("time", (ScriptedCall("clock", {}),)),)
    path = live_profile(tmp_path, fake, "[clock]")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", "chat", "--text", "--profile", str(path),
        "--output", str(tmp_path / "out.wav"), "--record", str(tmp_path / "rec"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"}, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(b"what time is it\n"), 90)
    shown = out.decode()
    assert process.returncode == 0, shown + err.decode()
    assert "⚙ clock({})" in shown, shown
    assert re.search(rf"↳ clock: {CLOCK_SAYS} \(\d+ ms\)", shown), shown
    assert re.search(rf"bot: The tool said: {CLOCK_SAYS}\.", shown), shown
    (setup_tools,) = fake.connections[0].setup["tools"]
    assert [d["name"] for d in setup_tools["functionDeclarations"]] == ["clock"]
    ((_, response),) = fake.tool_responses
    assert response["name"] == "clock" and re.fullmatch(CLOCK_SAYS, response["response"]["output"])
    lines = [json.loads(x) for x in (tmp_path / "rec" / "transcript.jsonl").read_text().splitlines()]
    (turn,) = [x for x in lines if x["type"] == "BotTurn"]
    assert re.fullmatch(rf"The tool said: {CLOCK_SAYS}\.", turn["text"]), turn
    with wave.open(str(tmp_path / "out.wav")) as spoken:
        assert spoken.getnframes() == fake.reply_ms * 24, "the answer was spoken"
    assert not fake.errors


async def test_barge_in_during_a_slow_tool_in_a_conversation(fake: FakeGeminiLive, tmp_path: Path) -> None:
    """The user types while an MCP tool runs: the service withdraws the call, the engine cancels
    the tool (a ``cancelled`` result), its result never reaches the service, the new words are
    answered."""
    fake.tool_plans = (ToolPlan("time", (ScriptedCall("slow", {"seconds": 60}),), say="Let me check."),)
    path = live_profile(tmp_path, fake, json.dumps([{"mcp": stdio_entry(only=["slow"])}]))
    events: list[Event] = []
    go_on = asyncio.Event()

    async def lines() -> AsyncIterator[str]:
        yield "what time is it"
        await go_on.wait()

    request = ChatRequest(
        profile=str(path),
        overrides=["tools_timeout_s=120"],
        text=True,
        text_lines=lines(),
        observers=[events.append],
        sink_factory=lambda rate: NullSink(rate, realtime=False),
    )
    conversation, finish = await prepare(request)
    running = asyncio.ensure_future(run_prepared(conversation, finish))
    try:
        await eventually(lambda: any(isinstance(e, ToolCall) for e in events), timeout=60)
        conversation.submit_text("never mind")
        await eventually(lambda: any(isinstance(e, ToolResult) for e in events), timeout=30)
        await eventually(lambda: sum(isinstance(e, BotTurn) for e in events) >= 2, timeout=30)
    finally:
        go_on.set()
        await asyncio.wait_for(running, 60)
    (withdrawn,) = [e for e in events if isinstance(e, ToolCallsCancelled)]
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (result.name, result.status) == ("slow", "cancelled") and withdrawn.ids == (result.id,)
    assert fake.cancellations == [(0, [result.id])] and fake.tool_responses == []
    turns = [e for e in events if isinstance(e, BotTurn)]
    assert turns[-1].text == "Okay, never mind."
    assert not fake.errors


async def test_fake_takes_tool_responses_in_either_casing(fake: FakeGeminiLive) -> None:
    """The fake's wire, raw: toolCall out; toolResponse in camelCase or snake_case (the SDK mixes them)."""
    context = ssl.create_default_context(cafile=str(fake.cert_file))
    url = f"wss://127.0.0.1:{fake.port}/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    declarations = [{"functionDeclarations": [{"name": "clock", "parametersJsonSchema": {"type": "object"}}]}]
    setup = {"model": "models/gemini-live-2.5-flash-preview", "tools": declarations}
    setup["generationConfig"] = {"responseModalities": ["TEXT"]}
    async with websockets.connect(url, ssl=context, additional_headers={"x-goog-api-key": DEFAULT_KEY}) as ws:
        await ws.send(json.dumps({"setup": setup}))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        for casing in ("toolResponse", "tool_response"):
            await ws.send(json.dumps({"realtimeInput": {"text": "what time is it"}}))
            said = [json.loads(await ws.recv()) for _ in range(4)]
            assert [next(iter(m)) for m in said] == ["serverContent"] * 3 + ["toolCall"]
            (call,) = said[-1]["toolCall"]["functionCalls"]
            assert call["name"] == "clock" and call["id"]
            response = {"id": call["id"], "name": "clock", "response": {"output": "noon"}}
            key = "functionResponses" if casing == "toolResponse" else "function_responses"
            await ws.send(json.dumps({casing: {key: [response]}}))
            answer = ""
            while "turnComplete" not in (message := json.loads(await ws.recv())).get("serverContent", {}):
                answer += "".join(
                    p.get("text", "") for p in message["serverContent"].get("modelTurn", {}).get("parts", [])
                )
            assert answer == " The tool said: noon."
    assert fake.errors == [] and len(fake.tool_responses) == 2


async def test_a_typed_cascade_with_live_text_mode_calls_the_clock(fake: FakeGeminiLive, tmp_path: Path) -> None:
    """Text mode in a cascade: the engine's rounds (the call, then ``user_text=""`` with the result)
    over one live session; the next turn goes on in the same live session."""
    fake.tool_plans = (ToolPlan("time", (ScriptedCall("clock", {}),), say="Let me check."),)
    fake.script = (Exchange("", "You are welcome."),)
    path = tmp_path / "live-text-tools.yaml"
    path.write_text(
        "description: live text with tools\nlanguage: en\n"
        f"llm: {{use: gemini_live, mode: text, model: gemini-live-2.5-flash-preview, base_url: '{fake.base_url}', "
        f"ca_file: '{fake.cert_file}', api_key: {DEFAULT_KEY}, retry: {{attempts: 1}}}}\n"
        "output: {use: silent}\ntools: [clock]\n"
    )

    async def lines() -> AsyncIterator[str]:
        for line in ("what time is it", "thanks"):
            yield line

    events: list[Event] = []
    conversation, finish = await prepare(
        ChatRequest(profile=str(path), text=True, text_lines=lines(), observers=[events.append])
    )
    await run_prepared(conversation, finish)
    first, second = [e for e in events if isinstance(e, BotTurn)]
    assert re.fullmatch(rf"Let me check\. The tool said: {CLOCK_SAYS}\.", first.text), first.text
    assert second.text == "You are welcome."
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (result.name, result.status) == ("clock", "ok")
    ((_, response),) = fake.tool_responses
    assert response["id"] == result.id and response["response"] == {"output": result.content}
    assert fake.connections[-1].setup["tools"] and not fake.errors
