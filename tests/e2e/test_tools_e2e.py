"""Conversations where the model calls tools, end to end: the ``openai`` backend through
its SDK against the local fake, the built-in clock and a real MCP server, typed and spoken
turns, barge-in during a slow tool, the recording, and Ctrl-C with a stdio MCP server
running (no child process is left)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.tool_helpers import ROOT, alive, stdio_entry, wait_gone
from tests.fakes.openai_compat import DEFAULT_KEY, OpenAIFake, Reply, ScriptedCall
from voicekit.audio.pcm import silence
from voicekit.audio.sinks import NullSink
from voicekit.engine.runner import ChatRequest, prepare, run_prepared
from voicekit.events import BotTurn, Event, ToolResult
from voicekit.testing.speech import synthesize
from voicekit.tools.config import ToolsConfig

CLOCK_SAYS = r"\w+day \d\d \w+ 20\d\d, \d\d:\d\d in UTC \(UTC\+00:00\)"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as service:
        yield service


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", DEFAULT_KEY)


def profile(tmp_path: Path, fake: OpenAIFake, *, stt: str = "", output: str = "{use: silent}", extra: str = "") -> Path:
    path = tmp_path / "tools-test.yaml"
    path.write_text(
        "description: tool test\nlanguage: en\n"
        f"llm: {{use: openai, base_url: '{fake.url}', model: gpt-test, retry: {{attempts: 1}}}}\n"
        f"output: {output}\n" + (f"stt: {stt}\n" if stt else "") + extra
    )
    return path


async def typed(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


def tools(*entries: Any, **settings: Any) -> ToolsConfig:
    return ToolsConfig.from_profile({"tools": list(entries), **settings})


async def test_a_typed_conversation_where_the_model_calls_the_clock(fake: OpenAIFake, tmp_path: Path) -> None:
    fake.triggers = {"time": "clock"}
    events: list[Event] = []
    request = ChatRequest(
        profile=str(profile(tmp_path, fake)),
        text=True,
        text_lines=typed("what time is it", "thanks"),
        record=tmp_path / "rec",
        observers=[events.append],
        tools=tools("clock"),
    )
    conversation, finish = await prepare(request)
    result, _ = await run_prepared(conversation, finish)
    assert result is not None
    first, second = [e for e in events if isinstance(e, BotTurn)]
    assert re.fullmatch(rf"The tool said: {CLOCK_SAYS}\.", first.text), first.text
    assert second.text == "You said: thanks."
    assert [t["function"]["name"] for t in fake.requests[0].body["tools"]] == ["clock"]
    follow_up = fake.requests[1].messages
    assert follow_up[-2]["tool_calls"][0]["function"]["name"] == "clock"
    assert follow_up[-1]["role"] == "tool" and re.fullmatch(CLOCK_SAYS, follow_up[-1]["content"])
    next_turn = [m["role"] for m in fake.requests[2].messages]
    assert next_turn == ["user", "assistant", "tool", "assistant", "user"], "the next turn remembers the tool round"
    lines = [json.loads(x) for x in (tmp_path / "rec" / "transcript.jsonl").read_text().splitlines()]
    kinds = [line["type"] for line in lines]
    assert kinds.index("ToolCall") < kinds.index("ToolResult") < kinds.index("BotTurn")
    call = next(line for line in lines if line["type"] == "ToolCall")
    assert (call["name"], call["arguments"]) == ("clock", "{}")
    metrics = json.loads((tmp_path / "rec" / "metrics.json").read_text())
    assert metrics["turns"][0]["tool_ms"] is not None and metrics["turns"][1]["tool_ms"] is None
    assert metrics["stages"]["tool_ms"]["count"] == 1


async def test_a_spoken_conversation_where_an_mcp_tool_answers(fake: OpenAIFake, tmp_path: Path) -> None:
    fake.triggers = {"population": "lookup"}
    fake.tool_arguments = {"lookup": {"city": "Paris"}}
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(silence(300, 16000) + synthesize("what is the population of Paris") + silence(1500, 16000))
    pidfile = tmp_path / "pid"
    events: list[Event] = []
    request = ChatRequest(
        profile=str(
            profile(
                tmp_path,
                fake,
                stt="{use: scripted, transcripts: ['what is the population of Paris']}",
                output="{use: scripted, ms_per_char: 5, sample_rate: 16000}",
            )
        ),
        input=wav,
        output=tmp_path / "out.wav",
        fast=True,
        observers=[events.append],
        tools=tools({"mcp": stdio_entry(pidfile, only=["lookup"])}),
    )
    conversation, finish = await prepare(request)
    await run_prepared(conversation, finish)
    (turn,) = [e for e in events if isinstance(e, BotTurn)]
    assert turn.text == "The tool said: Paris has 2.1 million people."
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (result.name, result.status) == ("lookup", "ok")
    with wave.open(str(tmp_path / "out.wav")) as spoken:
        expected = len(turn.text) * 5 / 1000 * spoken.getframerate()  # the scripted voice: 5 ms a character
        assert spoken.getnframes() >= 0.9 * expected, "the answer was spoken"
    assert wait_gone(int(pidfile.read_text())), "the MCP server stopped with the conversation"


async def test_barge_in_during_a_slow_tool_cancels_it(fake: OpenAIFake, tmp_path: Path) -> None:
    fake.replies = [Reply(text="Let me check.", calls=[ScriptedCall("slow", {"seconds": 60})])]
    events: list[Event] = []
    go_on = asyncio.Event()

    async def lines() -> AsyncIterator[str]:
        yield "look it up slowly"
        await go_on.wait()

    request = ChatRequest(
        profile=str(
            profile(
                tmp_path,
                fake,
                output="{use: scripted, ms_per_char: 5}",
                extra="turns: {mode: full_duplex}\n",
            )
        ),
        text=True,
        text_lines=lines(),
        observers=[events.append],
        sink_factory=lambda rate: NullSink(rate, realtime=False),
        tools=tools({"mcp": stdio_entry(only=["slow"])}, tools_timeout_s=120),
    )
    conversation, finish = await prepare(request)
    running = asyncio.ensure_future(run_prepared(conversation, finish))
    deadline = time.monotonic() + 30
    while not (conversation.turns.current and conversation.turns.current.audio_started and fake.requests):
        assert time.monotonic() < deadline, "the bot never started to speak"
        await asyncio.sleep(0.02)
    conversation.submit_text("never mind")
    while not any(isinstance(e, ToolResult) for e in events):
        assert time.monotonic() < deadline, "the slow tool was not stopped"
        await asyncio.sleep(0.02)
    go_on.set()
    await asyncio.wait_for(running, 30)
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (result.name, result.status) == ("slow", "cancelled")
    turns = [e for e in events if isinstance(e, BotTurn)]
    assert turns[0].interrupted and turns[0].text == "Let me check."
    assert turns[1].text == "You said: never mind."
    assert all(m["role"] != "tool" for m in fake.requests[-1].messages), "the cut round is not in the history"


RUNNER = """
import asyncio, json, sys
from pathlib import Path
from voicekit.engine.runner import ChatRequest, run_chat
from voicekit.tools.config import ToolsConfig

request = ChatRequest(profile=sys.argv[1], input=Path(sys.argv[2]), output=Path(sys.argv[3]),
                      tools=ToolsConfig.from_profile(json.loads(sys.argv[4])))
outcome = asyncio.run(run_chat(request))
print("ended by signal", outcome.signal, flush=True)
sys.exit(128 + outcome.signal if outcome.signal else 0)
"""


async def test_ctrl_c_with_a_stdio_mcp_server_running_leaves_no_child_process(fake: OpenAIFake, tmp_path: Path) -> None:
    wav = tmp_path / "long.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(silence(60_000, 16000))
    pidfile = tmp_path / "pid"
    settings = {"tools": [{"mcp": stdio_entry(pidfile)}]}
    path = profile(tmp_path, fake, stt="{use: scripted}")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER, str(path), str(wav), str(tmp_path / "out.wav"), json.dumps(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline and process.returncode is None, "the MCP server never started"
        await asyncio.sleep(0.05)
    child = int(pidfile.read_text())
    assert alive(child)
    await asyncio.sleep(1.0)  # the conversation is running, with its server connected
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130, out.decode() + err.decode()
    assert b"ended by signal 2" in out
    assert wait_gone(child, 5), "the stdio MCP server outlived the conversation"


async def test_chat_text_with_tools_in_the_profile(fake: OpenAIFake, tmp_path: Path) -> None:
    fake.triggers = {"time": "clock"}
    path = profile(tmp_path, fake, extra="tools: [clock]\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from voicekit.cli import main; main()", "chat", "--text", "--profile", str(path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(b"what time is it\n"), 60)
    stdout = out.decode()
    assert process.returncode == 0, stdout + err.decode()
    assert "⚙ clock({})" in stdout
    assert re.search(rf"↳ clock: {CLOCK_SAYS} \(\d+ ms\)", stdout), stdout
    assert re.search(rf"bot: The tool said: {CLOCK_SAYS}\.", stdout), stdout


async def test_bench_shows_the_tool_stage(fake: OpenAIFake, tmp_path: Path) -> None:
    fake.triggers = {"time": "clock"}
    path = profile(
        tmp_path,
        fake,
        stt="{use: scripted, transcripts: ['what time is it']}",
        output="{use: scripted, ms_per_char: 2}",
        extra="tools: [clock]\n",
    )
    wav = tmp_path / "q.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(synthesize("what time is it"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from voicekit.cli import main; main()", "bench", "--profile", str(path),
        "--input", str(wav), "--turns", "2", "--json", str(tmp_path / "b.json"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode() + err.decode()
    assert "tools running" in out.decode()
    report = json.loads((tmp_path / "b.json").read_text())
    (run,) = report["runs"]
    assert run["stages"]["tool_ms"]["count"] == 2 and run["stages"]["tool_ms"]["p50"] is not None
