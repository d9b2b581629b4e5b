"""The realtime path (a speech-to-speech model, Gemini Live's SDK against its fake) ends every
failure like the cascade does: one line naming the backend and the fix, the exit code, and the
reason in the ledger row and the recording — in ``voicekit chat`` and ``voicekit serve``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_failures import Failure, check_ledger
from tests.fakes.gemini_live import DEFAULT_KEY, FakeGeminiLive
from tests.plugin_site import FIXTURES, install
from tests.serve_helpers import connect, running_server
from voicekit.audio.pcm import silence
from voicekit.ledger import SessionLedger
from voicekit.serve.config import ServeConfig
from voicekit.testing.speech import synthesize

ROOT = Path(__file__).resolve().parents[2]
RETRY = ("llm.retry.attempts=2", "llm.retry.initial_ms=10", "llm.retry.max_ms=20")


@dataclass(frozen=True)
class LiveFailure:
    failure: Failure
    typed: bool = False  # the user types (a stalled reply only times out for a turn it waits on)
    plugin: bool = False  # a third-party realtime model instead of Gemini Live


FAILURES = {
    "auth_at_start": LiveFailure(Failure(3, ("llm:gemini_live", "rejected the API key"))),
    "auth_later": LiveFailure(Failure(3, ("llm:gemini_live", "rejected the API key"), turn=2)),
    "server_error": LiveFailure(Failure(1, ("llm:gemini_live", "503"))),
    "dropped_socket": LiveFailure(Failure(1, ("llm:gemini_live", "503"), turn=2)),
    "timeout": LiveFailure(Failure(1, ("llm:gemini_live", "no reply")), typed=True),
    "plugin_bug": LiveFailure(Failure(1, ("llm:faulty_live failed: RuntimeError", "not subscriptable")), plugin=True),
}


def arm(fake: FakeGeminiLive, failure: str) -> Callable[[], None] | None:
    """Set the fake's faults; returns what to do once the first turn was answered, if anything."""
    if failure == "auth_at_start":
        fake.api_keys = ("another-key",)
    elif failure == "server_error":
        for _ in range(3):
            fake.refuse_next(503)
    elif failure == "timeout":
        for _ in range(3):  # on every try
            fake.break_next_turn("stall")
    elif failure in ("auth_later", "dropped_socket"):
        status = 403 if failure == "auth_later" else 503

        def after_first_turn() -> None:
            fake.break_next_turn("drop")
            for _ in range(3):
                fake.refuse_next(
                    status,
                    {"error": {"code": status, "message": "API key not valid" if status == 403 else "unavailable"}},
                )

        return after_first_turn
    return None


def overrides(fake: FakeGeminiLive, failure: str) -> tuple[str, ...]:
    if FAILURES[failure].plugin:
        return ("llm.use=faulty_live",)
    return (f"llm.base_url={fake.base_url}", f"llm.ca_file={fake.cert_file}", "llm.reply_timeout_s=1", *RETRY)


async def when_answered(fake: FakeGeminiLive, then: Callable[[], None] | None) -> None:
    if then is None:
        return
    while not fake.replies:
        await asyncio.sleep(0.01)
    then()


@pytest.fixture
async def fake() -> AsyncIterator[FakeGeminiLive]:
    server = FakeGeminiLive(reply_ms=300)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def speech() -> bytes:
    pcm = silence(300, 16000)
    for text in ("hello there", "how are you"):
        pcm += synthesize(text, "en") + silence(2500, 16000)
    return pcm


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    install(FIXTURES / "faulty-plugin", site)
    return site


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_chat(failure: str, fake: FakeGeminiLive, speech: bytes, plugin_site: Path, tmp_path: Path) -> None:
    case = FAILURES[failure]
    then = arm(fake, failure)
    ledger = tmp_path / "ledger.sqlite3"
    args = ["chat", "--profile", "gemini-live", "--record", str(tmp_path / "rec")]
    for item in overrides(fake, failure):
        args += ["--set", item]
    if case.typed:
        args += ["--text"]
    else:
        wav = tmp_path / "in.wav"
        with wave.open(str(wav), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(speech)
        args += ["--input", str(wav), "--output", str(tmp_path / "out.wav")]
    env = {
        **os.environ, "GEMINI_API_KEY": DEFAULT_KEY, "VOICEKIT_LEDGER": str(ledger), "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)]),
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from voicekit.cli import main; main()", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    watcher = asyncio.create_task(when_answered(fake, then))
    typed = b"what time is it\n" if case.typed else b""
    out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(typed), 120)
    watcher.cancel()
    stdout, stderr = out_bytes.decode(), err_bytes.decode()
    expected = case.failure
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
    answered = [x for x in transcript if x["type"] == "BotTurn" and not x["interrupted"]]
    assert len(answered) == expected.turn - 1, transcript


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_serve(
    failure: str, fake: FakeGeminiLive, speech: bytes, plugin_site: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    case = FAILURES[failure]
    then = arm(fake, failure)
    monkeypatch.setenv("GEMINI_API_KEY", DEFAULT_KEY)
    monkeypatch.syspath_prepend(str(plugin_site))
    ledger_path = tmp_path / "ledger.sqlite3"
    config = ServeConfig(profile="gemini-live", ledger=SessionLedger(ledger_path), overrides=overrides(fake, failure))
    async with running_server(config) as server, connect(server.ws_url) as client:
        await client.send_rtvi("client-ready", {"version": "2.1.0", "about": {"library": "tests"}})
        watcher = asyncio.create_task(when_answered(fake, then))
        if case.typed:
            await client.send_rtvi("send-text", {"content": "what time is it"})
            sender = None
        else:
            sender = asyncio.create_task(client.stream(speech))
        try:
            code, _ = await client.closed(timeout=60)
        finally:
            watcher.cancel()
            if sender is not None:
                sender.cancel()
        errors = client.messages("error")
        assert errors, client.kinds
        told = errors[-1]["data"]["error"]
        assert errors[-1]["data"]["fatal"] is True and code == 1011
        assert all(part in told for part in case.failure.says), told
    assert check_ledger(ledger_path, case.failure) in told
    assert server.hub.connections == set()
