"""Gemini Live: errors, TLS trust, the fake itself, and the CLI end to end."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import subprocess
import sys
import wave
from pathlib import Path

import pytest
import websockets

from tests.backends.test_gemini_live import FRAME, ROOT, eventually, fake, make_llm, policy, until
from tests.backends.test_gemini_live_text import collect
from tests.fakes.gemini_live import DEFAULT_KEY, QUOTA_REASON, FakeGeminiLive
from voicekit.errors import AuthError, BackendError, MissingSecretError
from voicekit.events import LLMDone
from voicekit.plugins.llm.gemini_live.backend import GeminiLiveLLM

__all__ = ["fake"]  # the fixture, shared with tests/test_gemini_live.py


# --- errors ---------------------------------------------------------------------------------


async def test_bad_key_names_env_var(fake: FakeGeminiLive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key")
    llm = make_llm(fake, api_key=None, retry=policy(attempts=5))
    await llm.start()
    with pytest.raises(AuthError) as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    message = str(caught.value)
    assert "GEMINI_API_KEY" in message and "API key not valid" in message and "\n" not in message
    assert caught.value.retryable is False
    assert fake.connections[0].closed == (1007, "API key not valid. Please pass a valid API key.")
    assert len(fake.connections) == 1, "a rejected key is tried once, whatever the retry policy"


async def test_key_refused_at_the_handshake(fake: FakeGeminiLive) -> None:
    body = {
        "error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}
    }
    fake.refuse_next(403, body)
    llm = make_llm(fake, retry=policy(attempts=5))
    await llm.start()
    with pytest.raises(AuthError) as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    message = str(caught.value)
    assert "rejected the API key" in message and "unregistered callers" in message and "\n" not in message
    assert "llm.api_key" in message, "names where the key came from"
    assert (caught.value.retryable, fake.refused, fake.connections) == (False, [403], [])


async def test_fallback_key_env(fake: FakeGeminiLive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "wrong-key")
    llm = make_llm(fake, api_key=None, mode="text")
    with pytest.raises(AuthError, match="GOOGLE_API_KEY"):
        await llm.start()
    await llm.aclose()


def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(MissingSecretError, match="GEMINI_API_KEY"):
        GeminiLiveLLM().realtime()


async def test_unknown_model_is_one_line(fake: FakeGeminiLive) -> None:
    llm = make_llm(fake, model="gemini-9-nope-live", retry=policy(attempts=5))
    await llm.start()
    with pytest.raises(BackendError) as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    message = str(caught.value)
    assert "llm.model" in message and "gemini-9-nope-live" in message and "\n" not in message
    assert (caught.value.retryable, caught.value.retry_after) == (False, None)
    assert len(fake.connections) == 1, "an unknown model is not retried"
    code, reason = fake.connections[0].closed  # type: ignore[misc]
    assert code == 1008 and len(reason.encode()) <= 123


QUOTA_BODY = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
    }
}


@pytest.mark.parametrize(
    ("body", "headers", "retry_after"),
    [
        (QUOTA_BODY, None, 7.0),  # Google's retryDelay in the error body
        ({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota."}}, {"Retry-After": "3"}, 3.0),
        ({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota."}}, None, None),
    ],
)
async def test_quota_at_the_handshake(
    fake: FakeGeminiLive, body: dict[str, object], headers: dict[str, str] | None, retry_after: float | None
) -> None:
    fake.refuse_next(429, body, headers)
    llm = make_llm(fake, retry=policy(attempts=1))
    await llm.start()
    with pytest.raises(BackendError, match="quota or rate limit") as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    assert (caught.value.retryable, caught.value.retry_after) == (True, retry_after)
    assert "\n" not in str(caught.value) and "RESOURCE_EXHAUSTED" in str(caught.value)
    assert fake.refused == [429]


async def test_quota_close_is_retryable_without_a_delay(fake: FakeGeminiLive) -> None:
    fake.fail_next(1011, QUOTA_REASON)
    llm = make_llm(fake, retry=policy(attempts=1))
    await llm.start()
    with pytest.raises(BackendError, match="quota") as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    assert (caught.value.retryable, caught.value.retry_after) == (True, None)
    assert len(fake.connections) == 1


async def test_quota_is_retried_by_the_policy(fake: FakeGeminiLive) -> None:
    body = {"error": {**QUOTA_BODY["error"], "details": [{"retryDelay": "0.05s"}]}}
    fake.refuse_next(429, body)
    fake.fail_next(1011, QUOTA_REASON)
    llm = make_llm(fake, retry=policy(attempts=3))
    await llm.start()
    async with llm.realtime() as stream:
        await stream.send_text("Hi")
        done = await until(aiter(stream), LLMDone, [])
    await llm.aclose()
    assert done.text == "Hi! This is reply 1."
    assert fake.refused == [429] and len(fake.connections) == 2, "two failed tries, then a live session"


async def test_a_wait_past_the_budget_is_not_waited(fake: FakeGeminiLive) -> None:
    fake.refuse_next(429, {"error": {**QUOTA_BODY["error"], "details": [{"retryDelay": "60s"}]}})
    llm = make_llm(fake, retry=policy(attempts=5, budget_ms=15_000))
    await llm.start()
    with pytest.raises(BackendError, match="wait 60 s") as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    assert (caught.value.retryable, caught.value.retry_after) == (True, 60.0)
    assert fake.refused == [429] and fake.connections == [], "the policy gave up at once"


async def test_a_failed_resume_keeps_the_handle(fake: FakeGeminiLive) -> None:
    """A drop, then a 503 on the first try to resume: the policy retries, with the same handle."""
    llm = make_llm(fake, retry=policy(attempts=3))
    await llm.start()
    async with llm.realtime() as stream:
        events = aiter(stream)
        await stream.send_text("One")
        await until(events, LLMDone, [])
        handle = fake.connections[0].handles[-1]
        await eventually(lambda: stream.info["handle"] == handle)
        fake.refuse_next(503, {"error": {"code": 503, "message": "The service is currently unavailable."}})
        await fake.drop()
        await stream.send_text("Two")
        second = await until(events, LLMDone, [])
    await llm.aclose()
    assert second.text == "Hi! This is reply 2.", "the conversation kept its context"
    assert fake.refused == [503] and len(fake.connections) == 2
    assert fake.connections[1].resumed_from == handle


async def test_unreachable_service_gives_up(fake: FakeGeminiLive) -> None:
    await fake.stop()
    llm = make_llm(fake, retry=policy(attempts=2))
    await llm.start()
    with pytest.raises(BackendError, match=r"llm\.base_url") as caught:
        async with llm.realtime():
            pass
    await llm.aclose()
    assert caught.value.retryable


def test_max_retries_is_deprecated_for_the_retry_policy(fake: FakeGeminiLive) -> None:
    with pytest.warns(DeprecationWarning, match=r"retry: \{attempts: 3\}"):
        llm = make_llm(fake, max_retries=2)
    assert llm.retry_policy.attempts == 3
    assert make_llm(fake, retry=policy(attempts=4)).retry_policy.attempts == 4


@pytest.mark.parametrize(
    ("section", "attempts"),
    [("  retry: {attempts: 5}\n  reply_timeout_s: 10\n", 5), ("  max_retries: 1\n  reply_timeout_s: 10\n", 2)],
)
def test_profile_sets_the_retry_policy(tmp_path: Path, section: str, attempts: int) -> None:
    """What the README says: the llm section's retry: (or the old max_retries) and reply_timeout_s."""
    from voicekit.profiles import build_backend, load_profile
    from voicekit.registry import load_registry

    path = tmp_path / "live.yaml"
    path.write_text(f"extends: {ROOT / 'profiles' / 'gemini-live.yaml'}\nllm:\n{section}")
    llm = build_backend(load_profile(path, env={"GEMINI_API_KEY": DEFAULT_KEY}), "llm", load_registry())
    assert isinstance(llm, GeminiLiveLLM)
    assert (llm.retry_policy.attempts, llm.options.reply_timeout_s) == (attempts, 10.0)


async def test_untrusted_certificate(fake: FakeGeminiLive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    llm = make_llm(fake, ca_file=None)
    await llm.start()
    with pytest.raises(BackendError, match="SSL_CERT_FILE"):
        async with llm.realtime():
            pass
    await llm.aclose()


async def test_ssl_cert_file_is_honoured(fake: FakeGeminiLive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(fake.cert_file))
    llm = make_llm(fake, ca_file=None, mode="text")
    await llm.start()
    events = await collect(llm, [], "Hi")
    await llm.aclose()
    assert events[-1].text == "Hi! This is reply 1."


async def test_audio_backlog_is_bounded() -> None:
    from voicekit.plugins.llm.gemini_live.link import LiveLink

    link = LiveLink(connect=None, translate=None, types=None, label="t", max_buffer_s=0.1)  # type: ignore[arg-type]
    for i in range(10):
        link.push_audio(bytes([i]) * FRAME)  # 200 ms, never sent: the oldest goes
    assert sum(len(p) for _, p in link._out) <= 3200 and link._out[-1][1][0] == 9
    await link.aclose()


# --- the fake itself, and the import rule ------------------------------------------------------


async def test_fake_accepts_standard_base64_and_camel_case(fake: FakeGeminiLive) -> None:
    pcm = bytes(range(256)) * 4  # both alphabets differ on these bytes
    context = ssl.create_default_context(cafile=str(fake.cert_file))
    url = f"wss://127.0.0.1:{fake.port}/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
    async with websockets.connect(url, ssl=context, additional_headers={"x-goog-api-key": DEFAULT_KEY}) as ws:
        await ws.send(json.dumps({"setup": {"model": "models/gemini-3.1-flash-live-preview"}}))
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        blob = {"mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(pcm).decode()}
        await ws.send(json.dumps({"realtimeInput": {"mediaChunks": [blob]}}))
        blob = {"mime_type": "audio/pcm;rate=16000", "data": base64.urlsafe_b64encode(pcm).decode()}
        await ws.send(json.dumps({"realtime_input": {"audio": blob}}))
    await asyncio.sleep(0.05)
    assert bytes(fake.audio) == pcm + pcm and fake.errors == []


def test_module_imports_no_sdk() -> None:
    code = (
        "import sys, voicekit.plugins.llm.gemini_live.backend as m;"
        "bad = [n for n in sys.modules if n.startswith(('google', 'websockets'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- end to end: the CLI with the gemini-live profile -------------------------------------------


async def test_cli_chat_with_gemini_live_profile(fake: FakeGeminiLive, tmp_path: Path) -> None:
    from voicekit.testing.speech import silence as quiet
    from voicekit.testing.speech import synthesize, write_wav

    speech = write_wav(tmp_path / "speech.wav", synthesize("hello there") + quiet(1500))
    reply, record = tmp_path / "reply.wav", tmp_path / "rec"
    env = {**os.environ, "SSL_CERT_FILE": str(fake.cert_file), "GEMINI_API_KEY": DEFAULT_KEY}
    args = ["chat", "--profile", "gemini-live", "--input", str(speech), "--output", str(reply), "--fast"]
    args += ["--record", str(record), "--set", f"llm.base_url={fake.base_url}", "--set", "language=ru"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voicekit", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, (out.decode()[-2000:], err.decode()[-2000:])
    with wave.open(str(reply)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (24000, 1)  # the sink's rate: the model's 24 kHz
        assert wav.getnframes() == fake.reply_ms * 24
    lines = [json.loads(line) for line in (record / "transcript.jsonl").read_text().splitlines()]
    said = {(line.get("type"), line.get("text")) for line in lines}
    assert {("UserTurn", "hello there"), ("BotTurn", "Hi! This is reply 1.")} <= said, lines
    shown = out.decode()
    assert "hello there" in shown and "Hi! This is reply 1." in shown, shown
    setup = fake.connections[0].setup
    assert setup["generationConfig"]["speechConfig"]["language_code"] == "ru-RU"


async def test_vertex_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
    options = GeminiLiveLLM.Options(vertexai=True, project="p", model="gemini-live-2.5-flash-native-audio")
    llm = GeminiLiveLLM(options)
    await llm.start()
    with pytest.raises(AuthError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        async with llm.realtime():
            pass
    await llm.aclose()
