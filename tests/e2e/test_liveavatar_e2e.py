"""End to end: ``voicekit chat --profile heygen-ru`` (Deepgram → Gemini → LiveAvatar), every
service a local fake, and the avatar session closed however the run ends."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.gemini_rest import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_rest import GeminiFake
from tests.fakes.liveavatar import FakeLiveAvatar

ROOT = Path(__file__).resolve().parents[2]
AVATAR = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
SAID = ["привет", "как дела"]
REPLIES = [["Привет!", " Рада тебя видеть."], ["Всё", " хорошо."]]
SPOKEN = ["Привет!", "Рада тебя видеть.", "Всё хорошо."]


def _speech(tmp_path: Path) -> Path:
    from voicekit.testing.speech import silence, synthesize, write_wav

    return write_wav(tmp_path / "speech.wav", b"".join(synthesize(s, "ru") + silence(1500) for s in SAID))


def _env(tmp_path: Path, deepgram: FakeDeepgram, avatar: FakeLiveAvatar) -> dict[str, str]:
    return {
        **os.environ,
        "DEEPGRAM_API_KEY": deepgram.api_key,
        "GEMINI_API_KEY": GEMINI_KEY,
        "LIVEAVATAR_API_KEY": avatar.api_key,
        "LIVEAVATAR_AVATAR_ID": AVATAR,
        "VOICEKIT_LEDGER": str(tmp_path / "ledger.sqlite3"),
    }


def _args(
    tmp_path: Path, deepgram: FakeDeepgram, gemini: GeminiFake, avatar: FakeLiveAvatar, *extra: str, fast: bool = True
) -> list[str]:
    args = [
        "chat",
        "--profile",
        "heygen-ru",
        "--input",
        str(_speech(tmp_path)),
        "--output",
        str(tmp_path / "reply.wav"),
        "--record",
        str(tmp_path / "rec"),
    ]
    if fast:
        args.append("--fast")
    # half duplex: a file read faster than real time must not barge in on its own replies
    for override in [
        "turns.mode=half_duplex",
        f"stt.base_url={deepgram.url}",
        f"llm.base_url={gemini.base_url}",
        f"output.base_url={avatar.base_url}",
        "output.connect_room=false",
        *extra,
    ]:
        args += ["--set", override]
    return args


def _ledger(tmp_path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        conversations = db.execute("SELECT profile, status FROM conversations").fetchall()
        sessions = db.execute("SELECT backend, remote_id, state FROM remote_sessions").fetchall()
    return conversations, sessions


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _transcript(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "rec" / "transcript.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_full_mode_profile_as_shipped(tmp_path: Path) -> None:
    """FULL mode: the REST session lifecycle around a whole conversation (no LiveKit room here)."""
    with FakeLiveAvatar(api_key="la-key") as avatar:
        async with FakeDeepgram(script=list(SAID)) as deepgram, GeminiFake(replies=[list(r) for r in REPLIES]) as gem:
            code, out, err = await _run(_args(tmp_path, deepgram, gem, avatar), _env(tmp_path, deepgram, avatar))
        assert code == 0, (out[-2000:], err[-2000:])
        [session] = avatar.sessions.values()
        assert session.mode == "FULL" and session.body["avatar_id"] == AVATAR
        assert session.body["avatar_persona"] == {"language": "ru"}
        assert session.body["video_settings"] == {"quality": "high", "encoding": "H264"}
        assert session.state == "stopped" and avatar.active() == []
    assert "Рада тебя видеть." in out
    assert [x["text"] for x in _transcript(tmp_path) if x["type"] == "BotTurn"] == [
        "Привет! Рада тебя видеть.",
        "Всё хорошо.",
    ]
    assert "text is not delivered" in err  # said plainly: FULL mode without its room
    assert _ledger(tmp_path) == ([("heygen-ru", "ended")], [("liveavatar", session.session_id, "closed")])


async def test_lite_mode_speaks_our_voice_through_the_avatar(tmp_path: Path) -> None:
    """LITE mode: espeak's Russian audio reaches the avatar's websocket, sentence by sentence."""
    pytest.importorskip("espeakng_loader")
    with FakeLiveAvatar(api_key="la-key", speed=20.0) as avatar:
        async with FakeDeepgram(script=list(SAID)) as deepgram, GeminiFake(replies=[list(r) for r in REPLIES]) as gem:
            args = _args(tmp_path, deepgram, gem, avatar, "output.mode=LITE", 'output.tts={"use": "espeak"}')
            code, out, err = await _run(args, _env(tmp_path, deepgram, avatar))
        assert code == 0, (out[-2000:], err[-2000:])
        [session] = avatar.sessions.values()
        assert session.mode == "LITE" and session.state == "stopped"
    assert len(session.events) == len(SPOKEN)
    for event in session.events:
        assert event.ended and len(event.audio) / 2 / 24000 > 0.3  # seconds of 24 kHz speech per sentence
    lines = _transcript(tmp_path)
    assert [x["text"] for x in lines if x["type"] == "BotTurn"] == ["Привет! Рада тебя видеть.", "Всё хорошо."]
    assert [x["text"] for x in lines if x["type"] == "BotSentence"] == SPOKEN
    metrics = [x for x in lines if x["type"] == "TurnMetrics"]
    assert len(metrics) == 2 and all(m["output_ttfa_ms"] is not None for m in metrics)  # the avatar's start
    assert _ledger(tmp_path)[1] == [("liveavatar", session.session_id, "closed")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_mid_conversation_closes_the_session(tmp_path: Path, signum: int) -> None:
    # The speech recognizer is the scripted one here: the Deepgram fake's server can hang on
    # shutdown when its client goes away mid-stream, which is not what this test is about.
    deepgram = FakeDeepgram(script=list(SAID))  # not started: only its settings are used
    with FakeLiveAvatar(api_key="la-key") as avatar:
        async with GeminiFake(replies=[list(r) for r in REPLIES]) as gem:
            # real time: the conversation is still going when the signal comes
            args = _args(
                tmp_path, deepgram, gem, avatar, "stt=scripted", f"stt.transcripts={json.dumps(SAID)}", fast=False
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voicekit", *args, cwd=ROOT, env=_env(tmp_path, deepgram, avatar),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while not any(s.state == "started" for s in avatar.sessions.values()):
                assert proc.returncode is None and time.monotonic() < deadline, "no avatar session was started"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            proc.send_signal(signum)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 30)
            except TimeoutError:
                proc.kill()
                out, err = await proc.communicate()
                pytest.fail(f"voicekit did not end after the signal: {err.decode()[-3000:]}")
        assert proc.returncode == 128 + signum, (out.decode()[-2000:], err.decode()[-2000:])
        [session] = avatar.sessions.values()
        assert session.state == "stopped" and avatar.active() == []
        assert avatar.calls_to("/v1/sessions/stop")[0].body["reason"] == "USER_CLOSED"
    assert _ledger(tmp_path) == ([("heygen-ru", "interrupted")], [("liveavatar", session.session_id, "closed")])
