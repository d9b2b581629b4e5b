"""A whole local conversation through the real CLI: synthesized speech → whisper → echo → piper."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.backends.test_piper_weights import piper_joe_medium
from tests.backends.test_whisper_accuracy import normalize
from tests.backends.test_whisper_weights import whisper_tiny_en
from tests.cli_helpers import voicekit
from voicekit.audio.wav import load_pcm
from voicekit.events import Final
from voicekit.plugins.stt.whisper import WhisperSTT
from voicekit.testing.speech import silence, synthesize, write_wav

QUESTIONS = ("what is the weather like in london", "i would like some coffee")


async def _hear(pcm: bytes) -> str:
    async with WhisperSTT(WhisperSTT.Options(model_path=str(whisper_tiny_en()))) as stt:
        async with stt.stream() as stream:
            for i in range(0, len(pcm), 640):
                stream.push_audio(pcm[i : i + 640])
            stream.end_input()
            return " ".join(e.text for e in [e async for e in stream] if isinstance(e, Final))


def test_whisper_echo_piper_chat(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "in.wav", b"".join(synthesize(q) + silence(1200) for q in QUESTIONS))
    reply, record = tmp_path / "reply.wav", tmp_path / "rec"
    result = voicekit(
        "chat", "--profile", "offline",
        "--set", "stt.use=whisper", "--set", f"stt.model_path={whisper_tiny_en()}",
        "--set", "output.use=piper", "--set", f"output.model_path={piper_joe_medium()}",
        "--input", str(wav), "--output", str(reply), "--record", str(record), "--fast",
        env={"VOICEKIT_MODELS_DIR": str(tmp_path / "no-models"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (record / "transcript.jsonl").read_text().splitlines()]
    finals = [line["text"] for line in lines if line.get("type") == "Final"]
    assert len(finals) == 2, lines
    assert {"weather", "london"} <= set(normalize(finals[0])) and "coffee" in normalize(finals[1]), finals
    # the bot's reply is Piper speaking the echo, and Whisper hears it
    heard = set(normalize(asyncio.run(_hear(load_pcm(reply)))))
    assert {"said", "weather", "coffee"} <= heard, heard
