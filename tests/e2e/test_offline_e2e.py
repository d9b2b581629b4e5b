"""The offline default, end to end, through the real CLI: synthesized speech in, spoken echo out."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, voicekit
from voicekit.audio.pcm import silence
from voicekit.audio.wav import load_pcm, write_wav
from voicekit.testing.speech import synthesize

SENTENCES = ["what is the weather like", "i would like some coffee"]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    pcm = b"".join(synthesize(text) + silence(1200, 16000) for text in SENTENCES)
    write_wav(path, pcm, 16000)
    return path


async def transcribe(pcm: bytes) -> str:
    from voicekit.events import Final
    from voicekit.plugins.stt.pocketsphinx import PocketsphinxSTT

    stt = PocketsphinxSTT()
    await stt.start()
    words = []
    try:
        async with stt.stream(sample_rate=16000) as stream:
            for i in range(0, len(pcm), 640):
                stream.push_audio(pcm[i : i + 640])
            stream.end_input()
            async for event in stream:
                if isinstance(event, Final):
                    words.append(event.text)
    finally:
        await stt.aclose()
    return " ".join(words)


def test_offline_chat_hears_and_answers(speech_wav: Path, tmp_path: Path) -> None:
    reply = tmp_path / "reply.wav"
    record = tmp_path / "rec"
    result = voicekit(
        "chat",
        "--profile",
        "offline",
        "--input",
        str(speech_wav),
        "--output",
        str(reply),
        "--record",
        str(record),
        "--fast",
    )
    assert result.returncode == 0, result.stderr
    shown = result.stdout.lower()
    assert "you: " in shown and "bot: you said" in shown
    assert "weather" in shown and "coffee" in shown, shown
    assert "text→first token" in result.stdout  # a latency line per turn (--fast: the services' own figures)
    # the reply is speech: pocketsphinx hears the echoed words back
    heard = asyncio.run(transcribe(load_pcm(reply)))
    assert "said" in heard and ("weather" in heard or "coffee" in heard), heard
    # the recording: both sides, time-aligned stereo, transcript and metrics
    with wave.open(str(record / "conversation.wav")) as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == 16000
        assert wav.getnframes() / 16000 > 4
    lines = [json.loads(line) for line in (record / "transcript.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines if x["type"] == "UserTurn"], lines
    metrics = json.loads((record / "metrics.json").read_text())
    assert len(metrics["turns"]) == 2 and metrics["stages"]["voice_to_voice_ms"]["p50"] is not None


def test_sigint_mid_turn_exits_130_with_complete_recording(speech_wav: Path, tmp_path: Path) -> None:
    record = tmp_path / "rec"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicekit",
            "chat",
            "--profile",
            "offline",
            "--input",
            str(speech_wav),
            "--output",
            str(tmp_path / "reply.wav"),
            "--record",
            str(record),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    out = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:  # wait until the bot is answering the first turn
        line = proc.stdout.readline()
        out += line
        if line.startswith("you:"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + stdout + stderr
    assert "Traceback" not in stderr
    with wave.open(str(record / "conversation.wav")) as wav:  # the header is complete: readable to the end
        frames = wav.readframes(wav.getnframes())
        assert wav.getnchannels() == 2 and len(frames) == wav.getnframes() * 4 and wav.getnframes() > 16000
    for line in (record / "transcript.jsonl").read_text().splitlines():
        json.loads(line)
    assert json.loads((record / "metrics.json").read_text())["conversation_id"]
    listed = voicekit("sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"interrupted"' in listed.stdout


def test_sigterm_ends_cleanly(speech_wav: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicekit",
            "chat",
            "--profile",
            "offline",
            "--input",
            str(speech_wav),
            "--output",
            str(tmp_path / "reply.wav"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    with wave.open(str(tmp_path / "reply.wav")) as wav:
        wav.readframes(wav.getnframes())
