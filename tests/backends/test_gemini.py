"""Gemini text LLM: the real google-genai SDK against the local REST fake (tests/fakes/gemini_rest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tests.fakes.gemini_rest import DEFAULT_KEY, Fault, GeminiFake
from voicekit.engine import retry
from voicekit.errors import AuthError, BackendError, MissingSecretError
from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.options import RetryPolicy
from voicekit.plugins.llm.gemini import GeminiLLM
from voicekit.registry import load_registry
from voicekit.roles import Message
from voicekit.testing.contracts import LLMContract

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "gemini" / "stream_generate_content.sse"


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[GeminiFake]:
    async with GeminiFake(models=["gemini-3.8-flash", "gemini-2.5-flash-lite"]) as server:
        yield server


@pytest.fixture
async def make_llm(fake: GeminiFake) -> AsyncIterator[Callable[..., GeminiLLM]]:
    made: list[GeminiLLM] = []

    def make(**options: Any) -> GeminiLLM:
        options.setdefault("api_key", DEFAULT_KEY)
        llm = GeminiLLM(GeminiLLM.Options(base_url=fake.base_url, **options))
        llm.name = "gemini"
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


async def collect(llm: GeminiLLM, history: list[Message] | None = None, text: str = "Hello") -> list[Any]:
    return [event async for event in llm.respond(history or [], text)]


def policy(**fields: int) -> RetryPolicy:
    """A role's ``retry:`` policy, without waits unless asked (tests stay fast)."""
    return RetryPolicy.model_validate({"initial_ms": 0, "max_ms": 0, **fields})


async def collect_retried(llm: GeminiLLM, retry_policy: RetryPolicy, text: str = "Hello") -> list[LLMEvent]:
    """``respond`` as the core runs it: tried again per the policy until the first event."""
    return [event async for event in retry.stream(lambda: llm.respond([], text), retry_policy, label=llm.label)]


# --- the real vendor payload ------------------------------------------------------------


async def test_real_sse_capture_is_read_chunk_by_chunk(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    """The cookbook's captured SSE body, served byte for byte (CRLF as on the wire), gives its six texts."""
    body = SAMPLE.read_bytes()
    expected = [
        json.loads(line[len("data: ") :])["candidates"][0]["content"]["parts"][0]["text"]
        for line in body.decode().splitlines()
        if line.startswith("data: ")
    ]
    assert len(expected) == 6
    fake.raw_body = body.replace(b"\n\n", b"\r\n\r\n")
    events = await collect(make_llm(), text="Write a story about a magic backpack.")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == expected
    assert isinstance(events[-1], LLMDone) and events[-1].text == "".join(expected)
    assert "冒险伙伴" in events[-1].text  # UTF-8 survives the stream


# --- streaming and the request the service sees -------------------------------------------


async def test_streams_scripted_reply_and_sends_history_and_system(
    fake: GeminiFake, make_llm: Callable[..., GeminiLLM]
) -> None:
    fake.replies.append(["Hello", " there.", " How can I help?"])
    llm = make_llm(system="You are terse.", temperature=0.3, max_output_tokens=64, thinking_budget=0)
    history = [
        Message("user", "Hi, who are you?"),
        Message("assistant", "I am a voice assistant."),
        Message("user", "Tell me a story."),
        Message("assistant", "Once upon", interrupted=True),
    ]
    events = await collect(llm, history, "Never mind.")
    assert [type(e) for e in events] == [TextDelta, TextDelta, TextDelta, LLMDone]
    assert [e.text for e in events[:3]] == ["Hello", " there.", " How can I help?"]
    assert events[-1].text == "Hello there. How can I help?"
    assert [e.t for e in events] == sorted(e.t for e in events)

    (request,) = fake.requests
    assert request.version == "v1beta" and request.model == "gemini-3.8-flash"
    assert request.method == "streamGenerateContent" and request.query.get("alt") == "sse"
    assert request.headers["x-goog-api-key"] == DEFAULT_KEY
    assert request.turns == [
        ("user", "Hi, who are you?"),
        ("model", "I am a voice assistant."),
        ("user", "Tell me a story."),
        ("model", "Once upon"),
        ("user", "Never mind."),
    ]
    assert request.system_text == "You are terse."
    config = request.body["generationConfig"]
    assert config["temperature"] == 0.3 and config["maxOutputTokens"] == 64
    thinking = config["thinkingConfig"]  # the SDK passes this one through in snake_case; the API takes both
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0


async def test_gemini_3_thinking_level_is_sent(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    """Gemini 3 models take a thinking level (the shipped profiles ask for low) instead of a budget."""
    await collect(make_llm(thinking_level="low"), [], "Hi")
    thinking = fake.requests[0].body["generationConfig"]["thinkingConfig"]
    assert thinking.get("thinkingLevel", thinking.get("thinking_level")) == "LOW"
    assert "thinkingBudget" not in thinking and "thinking_budget" not in thinking


async def test_same_role_neighbours_are_merged_and_empty_skipped(
    fake: GeminiFake, make_llm: Callable[..., GeminiLLM]
) -> None:
    history = [Message("user", "one"), Message("user", "two"), Message("assistant", ""), Message("assistant", "ok")]
    await collect(make_llm(), history, "three")
    contents = fake.requests[0].contents
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert [p["text"] for p in contents[0]["parts"]] == ["one", "two"]


async def test_echo_and_api_version_option(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    events = await collect(make_llm(api_version="v1", model="gemini-2.5-flash-lite"), text="good morning")
    assert events[-1].text == "You said: good morning."
    assert fake.requests[0].version == "v1" and fake.requests[0].model == "gemini-2.5-flash-lite"


async def test_created_through_the_registry(fake: GeminiFake) -> None:
    llm = load_registry().create("llm", "gemini", {"api_key": DEFAULT_KEY, "base_url": fake.base_url})
    assert isinstance(llm, GeminiLLM)
    async with llm:
        events = await collect(llm)  # type: ignore[arg-type]
    assert events[-1].text == "You said: Hello."


# --- failures: the backend says what helps, the core's policy retries -----------------------


async def test_429_retry_after_is_surfaced(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.faults.append(Fault("status", 429, retry_after=0.4))
    with pytest.raises(BackendError) as caught:
        await collect(make_llm())
    assert caught.value.retryable and caught.value.retry_after == 0.4
    assert str(caught.value).startswith("llm:gemini: Gemini answered 429 RESOURCE_EXHAUSTED")
    assert len(fake.requests) == 1  # the backend itself never tries again


async def test_429_retry_info_delay_is_surfaced(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    """Gemini's own 429 carries google.rpc.RetryInfo.retryDelay in the error details."""
    fake.faults.append(Fault("status", 429, retry_delay_s=0.3))
    with pytest.raises(BackendError) as caught:
        await collect(make_llm())
    assert caught.value.retryable and caught.value.retry_after == 0.3
    assert len(fake.requests) == 1


async def test_429_retried_after_retry_after(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.faults.append(Fault("status", 429, retry_after=0.4))
    start = time.monotonic()
    events = await collect_retried(make_llm(), policy(attempts=3))
    assert time.monotonic() - start >= 0.4  # the policy alone would not have waited at all
    assert events[-1].text == "You said: Hello."
    assert len(fake.requests) == 2


async def test_500_retried_then_gives_up(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.faults.extend([Fault("status", 500), Fault("status", 503), Fault("status", 500)])
    with pytest.raises(BackendError) as caught:
        await collect_retried(make_llm(), policy(attempts=2))
    assert caught.value.retryable
    assert "503" in str(caught.value)
    assert len(fake.requests) == 2


async def test_long_retry_after_ends_the_retries(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    """A wait beyond the policy's budget is not waited for: the error goes on at once, its wait on it."""
    fake.faults.append(Fault("status", 429, retry_after=60))
    with pytest.raises(BackendError) as caught:
        await collect_retried(make_llm(), policy(attempts=5, budget_ms=15_000))
    assert caught.value.retryable and caught.value.retry_after == 60
    assert len(fake.requests) == 1


async def test_other_4xx_not_retried(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.faults.append(Fault("status", 400))
    with pytest.raises(BackendError) as caught:
        await collect_retried(make_llm(), policy(attempts=5))
    assert not caught.value.retryable
    assert len(fake.requests) == 1


async def test_drop_before_first_token_is_retried(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.faults.append(Fault("drop", after_chunks=0))
    events = await collect_retried(make_llm(), policy(attempts=3))
    assert events[-1].text == "You said: Hello."
    assert len(fake.requests) == 2


async def test_drops_in_a_row_give_up_after_the_policy_attempts(
    fake: GeminiFake, make_llm: Callable[..., GeminiLLM]
) -> None:
    fake.faults.extend([Fault("drop", after_chunks=0) for _ in range(5)])
    with pytest.raises(BackendError) as caught:
        await collect_retried(make_llm(), policy(attempts=3))
    message = str(caught.value)
    assert message.startswith("llm:gemini: connection to Gemini failed (")
    assert message.endswith("check the network and llm.base_url") and "\n" not in message
    assert caught.value.retryable
    assert len(fake.requests) == 3


async def test_drop_after_first_token_is_not_retried(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    """A retry after text went out would make the bot say it twice: the turn fails instead."""
    fake.replies.append(["One", " two", " three."])
    fake.faults.append(Fault("drop", after_chunks=1))
    llm = make_llm()
    seen: list[str] = []
    with pytest.raises(BackendError) as caught:
        async for event in retry.stream(lambda: llm.respond([], "count"), policy(attempts=5)):
            seen.append(event.text)
    assert seen == ["One"]
    assert caught.value.retryable
    assert len(fake.requests) == 1


async def test_first_token_timeout(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.first_chunk_delay_s = 1.0
    with pytest.raises(BackendError, match=r"llm\.timeout_s") as caught:
        await collect(make_llm(timeout_s=0.3))
    assert caught.value.retryable


def test_retired_retry_options_are_unknown_options() -> None:
    for retired in ("max_retries", "retry_max_delay_s"):
        with pytest.raises(pydantic.ValidationError, match=retired):  # retries follow the role's retry: policy
            GeminiLLM.Options(**{retired: 1})


# --- keys and models ---------------------------------------------------------------------------


async def test_bad_key_names_the_env_var(
    fake: GeminiFake, make_llm: Callable[..., GeminiLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "wrong-key")
    with pytest.raises(AuthError) as caught:
        await collect_retried(make_llm(api_key=None), policy(attempts=5))
    message = str(caught.value)
    assert "GEMINI_API_KEY" in message and "API key not valid" in message
    assert "\n" not in message
    assert len(fake.requests) == 1  # a bad key is never retried


async def test_401_is_an_auth_error(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    fake.faults.append(Fault("status", 401))
    with pytest.raises(AuthError, match="GEMINI_API_KEY"):
        await collect_retried(make_llm(), policy(attempts=5))
    assert len(fake.requests) == 1


async def test_google_api_key_is_the_fallback(
    fake: GeminiFake, make_llm: Callable[..., GeminiLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", DEFAULT_KEY)
    events = await collect(make_llm(api_key=None))
    assert events[-1].text == "You said: Hello."
    assert fake.requests[0].headers["x-goog-api-key"] == DEFAULT_KEY
    monkeypatch.setenv("GOOGLE_API_KEY", "wrong")
    with pytest.raises(AuthError, match="GOOGLE_API_KEY"):
        await collect(make_llm(api_key=None))


async def test_missing_key_names_both_vars(make_llm: Callable[..., GeminiLLM]) -> None:
    with pytest.raises(MissingSecretError) as caught:
        await make_llm(api_key=None).start()
    assert "GEMINI_API_KEY" in str(caught.value) and "GOOGLE_API_KEY" in str(caught.value)


async def test_unknown_model_names_the_option(fake: GeminiFake, make_llm: Callable[..., GeminiLLM]) -> None:
    with pytest.raises(BackendError) as caught:
        await collect(make_llm(model="gemini-9-ultra"))
    message = str(caught.value)
    assert "llm.model" in message and "gemini-9-ultra" in message
    assert "\n" not in message
    assert not caught.value.retryable
    assert len(fake.requests) == 1


def test_module_import_does_not_load_the_sdk() -> None:
    code = "import sys, voicekit.plugins.llm.gemini; print('google.genai' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- the LLM contract --------------------------------------------------------------------------


class TestGeminiContract(LLMContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self) -> AsyncIterator[GeminiLLM]:
        async with GeminiFake(chunk_delay_s=0.01) as server:
            llm = GeminiLLM(GeminiLLM.Options(api_key=DEFAULT_KEY, base_url=server.base_url))
            async with llm:
                yield llm
