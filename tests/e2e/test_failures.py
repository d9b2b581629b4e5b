"""Every failure ends the same way, whatever the backends: one line naming the backend and
the fix, the documented exit code, and the recording, transcript and ledger row closed with
that reason — in ``voicekit chat`` and in ``voicekit serve``, whose client is told the reason.

The matrix: each STT (pocketsphinx for real, the scripted one, Deepgram's SDK against its
fake) × each failure (the key rejected on the first or a later turn, a 5xx on every try, a
stream cut on every try, no answer in time, a bug in a third-party plugin) × chat and serve.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.gemini_rest import Fault, GeminiFake
from tests.plugin_site import FIXTURES, install
from tests.serve_helpers import connect, running_server
from voicekit.audio.pcm import silence
from voicekit.ledger import SessionLedger
from voicekit.serve.config import ServeConfig
from voicekit.testing.speech import synthesize

ROOT = Path(__file__).resolve().parents[2]
GEMINI_KEY = "test-gemini-key"
DEEPGRAM_KEY = "test-key"
STTS = ("pocketsphinx", "scripted", "deepgram")
UTTERANCES = ("hello there", "how are you")


@dataclass(frozen=True)
class Failure:
    exit_code: int
    says: tuple[str, ...]  # what the one line must contain
    turn: int = 1  # the user turn on which it happens


FAILURES = {
    "auth_first_turn": Failure(3, ("llm:gemini", "rejected the API key", "GEMINI_API_KEY")),
    "auth_later_turn": Failure(3, ("llm:gemini", "rejected the API key", "GEMINI_API_KEY"), turn=2),
    "server_error": Failure(1, ("llm:gemini", "500")),
    "dropped_stream": Failure(1, ("llm:gemini", "connection to Gemini failed")),
    "timeout": Failure(1, ("llm:gemini", "within 0.5 s", "llm.timeout_s")),
    "plugin_bug": Failure(1, ("llm:faulty failed: RuntimeError", "list index out of range")),
}


def fake_for(failure: str) -> GeminiFake:
    fake = GeminiFake(api_key=GEMINI_KEY)
    if failure == "auth_first_turn":
        fake.faults = [Fault("bad_key")]
    elif failure == "auth_later_turn":
        fake.faults = [Fault("none"), Fault("bad_key")]
    elif failure == "server_error":
        fake.faults = [Fault("status", 500), Fault("status", 500)]
    elif failure == "dropped_stream":
        fake.faults = [Fault("drop", after_chunks=1), Fault("drop", after_chunks=1)]
    elif failure == "timeout":
        fake.first_chunk_delay_s = 3.0
    return fake


def profile_for(stt: str, failure: str, gemini_url: str, deepgram_url: str) -> str:
    stts = {
        "pocketsphinx": "{use: pocketsphinx}",
        "scripted": f"{{use: scripted, transcripts: {json.dumps(list(UTTERANCES))}}}",
        "deepgram": f"{{use: deepgram, base_url: '{deepgram_url}'}}",
    }
    if failure == "plugin_bug":
        llm = "{use: faulty, fail: turn, on_turn: 1, error: crash}"
    else:
        llm = (
            f"{{use: gemini, base_url: '{gemini_url}', model: gemini-test, timeout_s: 0.5, "
            "retry: {attempts: 2, initial_ms: 10, max_ms: 20}}"
        )
    return (
        f"description: failure test ({stt}, {failure})\nlanguage: en\nstt: {stts[stt]}\nllm: {llm}\n"
        "output: {use: scripted, ms_per_char: 5, sample_rate: 16000}\n"
    )


@pytest.fixture(scope="module")
def speech() -> bytes:
    """Two utterances with silence around them, 16 kHz."""
    pcm = silence(300, 16000)
    for text in UTTERANCES:
        pcm += synthesize(text, "en") + silence(1500, 16000)
    return pcm


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install(FIXTURES / "faulty-plugin", site)
    return site


@pytest.fixture
async def services(request: pytest.FixtureRequest) -> AsyncIterator[tuple[GeminiFake, FakeDeepgram]]:
    failure = request.node.callspec.params["failure"]
    gemini = fake_for(failure)
    await gemini.start()
    async with FakeDeepgram(script=list(UTTERANCES), api_key=DEEPGRAM_KEY) as deepgram:
        try:
            yield gemini, deepgram
        finally:
            await gemini.stop()


def setting_up(tmp_path: Path, stt: str, failure: str, services: tuple[GeminiFake, FakeDeepgram]) -> Path:
    gemini, deepgram = services
    profile = tmp_path / f"{stt}-{failure}.yaml"
    profile.write_text(profile_for(stt, failure, gemini.base_url, deepgram.url))
    return profile


def check_ledger(ledger_path: Path, failure: Failure) -> str:
    rows = SessionLedger(ledger_path).conversations()
    assert len(rows) == 1, rows
    row = rows[0]
    assert row.status == "failed", row
    assert row.reason and all(part in row.reason for part in failure.says), row.reason
    return row.reason


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("stt", STTS)
async def test_chat(
    stt: str,
    failure: str,
    services: tuple[GeminiFake, FakeDeepgram],
    speech: bytes,
    plugin_site: Path,
    tmp_path: Path,
) -> None:
    profile = setting_up(tmp_path, stt, failure, services)
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(speech)
    ledger = tmp_path / "ledger.sqlite3"
    env = {
        **os.environ,
        "GEMINI_API_KEY": GEMINI_KEY,
        "DEEPGRAM_API_KEY": DEEPGRAM_KEY,
        "VOICEKIT_LEDGER": str(ledger),
        "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)]),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from voicekit.cli import main; main()",
        "chat",
        "--profile",
        str(profile),
        "--input",
        str(wav),
        "--output",
        str(tmp_path / "out.wav"),
        "--record",
        str(tmp_path / "rec"),
        "--fast",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 120)
    stdout, stderr = out_bytes.decode(), err_bytes.decode()
    expected = FAILURES[failure]
    assert proc.returncode == expected.exit_code, stdout + stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    line = errors[0].removeprefix("error: ")
    assert all(part in line for part in expected.says), line
    assert check_ledger(ledger, expected) == line
    metrics = json.loads((tmp_path / "rec" / "metrics.json").read_text())
    assert (metrics["status"], metrics["reason"]) == ("failed", line)
    transcript = [json.loads(x) for x in (tmp_path / "rec" / "transcript.jsonl").read_text().splitlines()]
    assert transcript[-1]["type"] == "ErrorEvent" and transcript[-1]["message"] == line
    answered = [x for x in transcript if x["type"] == "BotTurn"]
    assert len(answered) == expected.turn - 1, "the turns before the failure were answered"


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("stt", STTS)
async def test_serve(
    stt: str,
    failure: str,
    services: tuple[GeminiFake, FakeDeepgram],
    speech: bytes,
    plugin_site: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = setting_up(tmp_path, stt, failure, services)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("DEEPGRAM_API_KEY", DEEPGRAM_KEY)
    monkeypatch.syspath_prepend(str(plugin_site))
    ledger_path = tmp_path / "ledger.sqlite3"
    expected = FAILURES[failure]
    config = ServeConfig(profile=str(profile), ledger=SessionLedger(ledger_path), duplex="profile")
    async with running_server(config) as server, connect(server.ws_url) as client:
        await client.ready()
        sender = asyncio.create_task(client.stream(speech))
        try:
            code, reason = await client.closed(timeout=60)
        finally:
            sender.cancel()
        errors = client.messages("error")
        assert errors, client.kinds
        told = errors[-1]["data"]["error"]
        assert errors[-1]["data"]["fatal"] is True
        assert all(part in told for part in expected.says), told
        assert code == 1011, (code, reason)
        answered = client.messages("bot-stopped-speaking")
        assert len(answered) >= expected.turn - 1
    assert check_ledger(ledger_path, expected) in told
    assert server.hub.connections == set()


def test_the_matrix_covers_every_stt_and_failure() -> None:
    """Guard against the matrix shrinking silently."""
    assert len(STTS) * len(FAILURES) == 18
    assert {f.exit_code for f in FAILURES.values()} == {1, 3}


@pytest.mark.parametrize("failure", ["auth_first_turn", "plugin_bug"])
async def test_bench(
    failure: str, services: tuple[GeminiFake, FakeDeepgram], speech: bytes, plugin_site: Path, tmp_path: Path
) -> None:
    """``voicekit bench`` ends a failure the way chat does: one line, the exit code, the ledger row."""
    profile = setting_up(tmp_path, "scripted", failure, services)
    wav = tmp_path / "in.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(synthesize(UTTERANCES[0], "en") + silence(300, 16000))
    ledger = tmp_path / "ledger.sqlite3"
    env = {
        **os.environ, "GEMINI_API_KEY": GEMINI_KEY, "VOICEKIT_LEDGER": str(ledger),
        "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)]), "COLUMNS": "200",
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from voicekit.cli import main; main()", "bench", "--profile", str(profile),
        "--input", str(wav), "--turns", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 120)
    stderr = err_bytes.decode()
    expected = FAILURES[failure]
    assert proc.returncode == expected.exit_code, out_bytes.decode() + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert all(part in errors[0] for part in expected.says), errors[0]
    assert check_ledger(ledger, expected) == errors[0].removeprefix("error: ")
