"""The shipped ``openai`` profile as it is (Deepgram → OpenAI → ElevenLabs), every service a
local fake: ``voicekit chat`` through the three unchanged SDKs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import DEFAULT_KEY as ELEVENLABS_KEY
from tests.fakes.elevenlabs import ElevenLabsFake
from tests.fakes.openai_compat import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_compat import OpenAIFake
from voicekit.testing.speech import silence, synthesize, write_wav

ROOT = Path(__file__).resolve().parents[2]
SAID = ["hello there", "how are you"]


async def test_chat_the_openai_profile_against_three_fakes(tmp_path: Path) -> None:
    speech = write_wav(tmp_path / "speech.wav", b"".join(synthesize(s) + silence(1500) for s in SAID))
    async with FakeDeepgram(script=list(SAID)) as deepgram, OpenAIFake() as model, ElevenLabsFake() as voice:
        args = ["chat", "--profile", "openai", "--input", str(speech), "--output", str(tmp_path / "reply.wav"),
                "--fast", "--record", str(tmp_path / "rec"), "--set", "turns.mode=half_duplex",
                "--set", f"stt.base_url={deepgram.url}", "--set", f"llm.base_url={model.url}",
                "--set", f"output.base_url={voice.base_url}"]  # fmt: skip
        env = {"DEEPGRAM_API_KEY": deepgram.api_key, "OPENAI_API_KEY": OPENAI_KEY, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicekit", *args, cwd=ROOT, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
    first, second = (request.body for request in model.requests)
    assert first["model"] == "gpt-5.4-mini" and first["reasoning_effort"] == "low"
    assert first["messages"][0]["role"] == "system"
    assert str(first["messages"][0]["content"]).startswith("You are a friendly voice assistant")
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == f"You said: {SAID[0]}."
    lines = [json.loads(x) for x in (tmp_path / "rec" / "transcript.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines if x["type"] == "BotTurn"] == [f"You said: {s}." for s in SAID]
    (conn,) = voice.connections
    assert [m["text"].strip() for m in conn.sent(flush=True)] == [f"You said: {s}." for s in SAID]
