"""End to end: ``voicekit chat`` with the deepgram-elevenlabs profile, every service a local fake."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import DEFAULT_KEY as ELEVENLABS_KEY
from tests.fakes.elevenlabs import ElevenLabsFake
from tests.fakes.gemini_rest import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_rest import GeminiFake

ROOT = Path(__file__).resolve().parents[2]
SAID = ["hello there", "what time is it"]
REPLIES = [["Hi!", " Nice to meet you."], ["It is", " noon."]]
SPOKEN = ["Hi!", "Nice to meet you.", "It is noon."]


def _speech(tmp_path: Path) -> Path:
    from voicekit.testing.speech import silence, synthesize, write_wav

    return write_wav(tmp_path / "speech.wav", b"".join(synthesize(s) + silence(1500) for s in SAID))


async def _chat(tmp_path: Path, overrides: list[str], env: dict[str, str]) -> tuple[Path, Path, str]:
    reply, record = tmp_path / "reply.wav", tmp_path / "rec"
    args = [
        "chat",
        "--profile",
        "deepgram-elevenlabs",
        "--input",
        str(_speech(tmp_path)),
        "--output",
        str(reply),
        "--fast",
        "--record",
        str(record),
    ]
    # A file read faster than real time would barge in on the bot with its next utterance in
    # full duplex; half duplex answers each utterance in turn, so the run is deterministic.
    for override in ["turns.mode=half_duplex", *overrides]:
        args += ["--set", override]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", *args, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
    return reply, record, out.decode()


def _check_conversation(reply: Path, record: Path, gemini: GeminiFake, voice: ElevenLabsFake) -> None:
    # Gemini saw the profile's system instruction and, on the second turn, the first turn as history.
    assert [r.turns for r in gemini.requests] == [
        [("user", SAID[0])],
        [("user", SAID[0]), ("model", "Hi! Nice to meet you."), ("user", SAID[1])],
    ]
    systems = {r.system_text for r in gemini.requests}
    assert len(systems) == 1 and str(systems.pop()).startswith("You are a friendly voice assistant")
    assert all(r.headers["x-goog-api-key"] == GEMINI_KEY for r in gemini.requests)

    # One ElevenLabs socket for the conversation, one context per turn, every sentence sent as it came.
    (conn,) = voice.connections
    assert conn.query["model_id"] == "eleven_flash_v2_5" and conn.query["output_format"] == "pcm_24000"
    assert conn.query["language_code"] == "en" and conn.headers["xi-api-key"] == ELEVENLABS_KEY
    assert [m["text"].strip() for m in conn.sent(flush=True)] == SPOKEN
    assert len(conn.sent(close_context=True)) == 2 and conn.sent(close_socket=True)
    assert voice.violations == []

    # The reply WAV holds exactly the audio the voice made, at its 24 kHz.
    with wave.open(str(reply)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (24000, 1)
        expected = sum(round((len(s) + 1) * voice.ms_per_char * 24) for s in SPOKEN)
        assert wav.getnframes() == expected

    lines: list[dict[str, Any]] = [json.loads(x) for x in (record / "transcript.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines if x["type"] == "Final"] == SAID
    assert [x["text"] for x in lines if x["type"] == "BotTurn"] == ["Hi! Nice to meet you.", "It is noon."]
    metrics = [x for x in lines if x["type"] == "TurnMetrics"]
    assert len(metrics) == 2 and all(m["output_ttfa_ms"] is not None for m in metrics)


async def test_chat_scripted_stt_gemini_elevenlabs(tmp_path: Path) -> None:
    async with GeminiFake(replies=[list(r) for r in REPLIES]) as gemini, ElevenLabsFake() as voice:
        overrides = [
            "stt=scripted",
            f"stt.transcripts={json.dumps(SAID)}",
            f"llm.base_url={gemini.base_url}",
            f"output.base_url={voice.base_url}",
        ]
        reply, record, out = await _chat(
            tmp_path, overrides, {"GEMINI_API_KEY": GEMINI_KEY, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}
        )
    assert "Nice to meet you." in out and "It is noon." in out
    _check_conversation(reply, record, gemini, voice)


async def test_chat_the_whole_profile_against_three_fakes(tmp_path: Path) -> None:
    """The profile as shipped: Deepgram nova-3 -> Gemini -> ElevenLabs, each a local fake."""
    async with (
        FakeDeepgram(script=list(SAID)) as deepgram,
        GeminiFake(replies=[list(r) for r in REPLIES]) as gemini,
        ElevenLabsFake() as voice,
    ):
        overrides = [
            f"stt.base_url={deepgram.url}",
            f"llm.base_url={gemini.base_url}",
            f"output.base_url={voice.base_url}",
        ]
        env = {"DEEPGRAM_API_KEY": deepgram.api_key, "GEMINI_API_KEY": GEMINI_KEY, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}
        reply, record, _ = await _chat(tmp_path, overrides, env)
    assert deepgram.handshakes and deepgram.handshakes[0][1].get("model") == "nova-3"
    _check_conversation(reply, record, gemini, voice)


@pytest.mark.parametrize(
    ("section", "option"),
    [
        ("stt", "reconnect_attempts"),
        ("stt", "reconnect_backoff_s"),
        ("llm", "max_retries"),
        ("llm", "retry_max_delay_s"),
    ],
)
async def test_a_retired_retry_option_is_one_line(tmp_path: Path, section: str, option: str) -> None:
    """Retries follow the role's retry: policy; a profile still setting a backend's old retry option
    is refused like any unknown option, naming the file and line."""
    from voicekit.testing.speech import silence, write_wav

    (tmp_path / "old.yaml").write_text(f"extends: deepgram-elevenlabs\n{section}:\n  {option}: 3\n")
    speech = write_wav(tmp_path / "speech.wav", silence(200))
    env = {"DEEPGRAM_API_KEY": "k", "GEMINI_API_KEY": "k", "ELEVENLABS_API_KEY": "k"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", "chat", "--profile", "old.yaml", "--input", str(speech), "--fast",
        cwd=tmp_path, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = (out + err).decode().strip().splitlines()
    assert proc.returncode == 2 and lines == [f"error: old.yaml:3: {section}.{option}: unknown option"], lines
