"""End to end: ``voicekit chat`` with the google-chirp3 profile, every service a local fake.

Google Speech-to-Text and Text-to-Speech are the gRPC fakes (plain text on 127.0.0.1),
Gemini is the REST fake; the profile is used as shipped apart from the endpoints.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gemini_rest import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_rest import GeminiFake
from tests.fakes.google_speech import FakeSpeechServer
from tests.fakes.google_tts import FakeTTSServer, tone

ROOT = Path(__file__).resolve().parents[2]
SAID = ["привет", "который час"]
REPLIES = [["Привет!", " Рада тебя слышать."], ["Сейчас", " полдень."]]
SPOKEN = ["Привет!", "Рада тебя слышать.", "Сейчас полдень."]


async def test_chat_google_gemini_chirp3(tmp_path: Path) -> None:
    from voicekit.testing.speech import silence, synthesize, write_wav

    speech = write_wav(tmp_path / "speech.wav", b"".join(synthesize(s, "ru") + silence(1500) for s in SAID))
    reply, record = tmp_path / "reply.wav", tmp_path / "rec"
    stt, tts = FakeSpeechServer(list(SAID)), FakeTTSServer()
    await stt.start()
    await tts.start()
    try:
        async with GeminiFake(replies=[list(r) for r in REPLIES]) as gemini:
            args = [
                "chat",
                "--profile",
                "google-chirp3",
                "--input",
                str(speech),
                "--output",
                str(reply),
                "--fast",
                "--record",
                str(record),
            ]
            # Half duplex answers each utterance in turn, so a file read ahead of real time
            # gives a deterministic conversation.
            for override in [
                "turns.mode=half_duplex",
                f"stt.base_url={stt.address}",
                f"output.base_url={tts.address}",
                f"llm.base_url={gemini.base_url}",
            ]:
                args += ["--set", override]
            env = {**os.environ, "GEMINI_API_KEY": GEMINI_KEY}
            env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)  # a loopback endpoint needs none
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voicekit", *args, cwd=ROOT, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        await stt.stop()
        await tts.stop()
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])

    # Speech-to-Text: v1 latest_long in Russian, one stream, every request within the limits.
    assert stt.streams and all(s.version == "v1" and s.code == "OK" for s in stt.streams)
    config = stt.streams[0].config.config
    assert (config.language_code, config.model, config.sample_rate_hertz) == ("ru-RU", "latest_long", 16000)
    assert max(max(s.chunk_sizes) for s in stt.streams) <= 15360

    # Gemini heard both utterances, the second with the first turn as history.
    assert [r.turns[-1] for r in gemini.requests] == [("user", SAID[0]), ("user", SAID[1])]

    # Text-to-Speech: one stream per reply, fed sentence by sentence, Chirp 3 HD Aoede at 24 kHz.
    assert [c.kind for c in tts.calls_log] == ["stream", "stream"]
    assert all(c.voice == "ru-RU-Chirp3-HD-Aoede" and c.sample_rate == 24000 for c in tts.calls_log)
    assert [t for c in tts.calls_log for t in c.texts] == SPOKEN

    # The reply WAV holds exactly the audio the voice made, at its 24 kHz.
    with wave.open(str(reply)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (24000, 1)
        expected = sum(len(tone(tts.seconds_for(s), 24000, 220.0)) // 2 for s in SPOKEN)
        assert wav.getnframes() == expected

    lines: list[dict[str, Any]] = [json.loads(x) for x in (record / "transcript.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines if x["type"] == "Final"] == SAID
    assert [x["text"] for x in lines if x["type"] == "BotTurn"] == ["Привет! Рада тебя слышать.", "Сейчас полдень."]


async def test_chat_without_google_credentials_is_one_line(tmp_path: Path) -> None:
    from voicekit.testing.speech import silence, synthesize, write_wav

    speech = write_wav(tmp_path / "speech.wav", synthesize("привет", "ru") + silence(500))
    env = {
        **os.environ,
        "GEMINI_API_KEY": GEMINI_KEY,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "true",
    }
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", "chat", "--profile", "google-chirp3", "--input", str(speech), "--fast",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = (out + err).decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "GOOGLE_APPLICATION_CREDENTIALS" in lines[0] and "credentials_file" in lines[0]


@pytest.mark.parametrize("section", ["stt", "output"])
async def test_the_retired_max_retries_option_is_one_line(tmp_path: Path, section: str) -> None:
    """Retries follow the role's retry: policy; the Google backends' old max_retries is an unknown option."""
    from voicekit.testing.speech import silence, write_wav

    (tmp_path / "old.yaml").write_text(f"extends: google-chirp3\n{section}:\n  max_retries: 2\n")
    speech = write_wav(tmp_path / "speech.wav", silence(200))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", "chat", "--profile", "old.yaml", "--input", str(speech), "--fast",
        cwd=tmp_path, env={**os.environ, "GEMINI_API_KEY": GEMINI_KEY, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = (out + err).decode().strip().splitlines()
    assert proc.returncode == 2 and lines == [f"error: old.yaml:3: {section}.max_retries: unknown option"], lines
