"""``llm: openai`` through the unchanged ``openai`` SDK against a local fake of the chat
completions wire: streaming, the request it sends, tool calls streamed in pieces, and every
failure mapped onto voicekit's errors (the SDK's own retries off)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.fakes.openai_compat import DEFAULT_KEY, Fault, OpenAIFake, Reply, ScriptedCall
from voicekit.errors import AuthError, BackendError, MissingSecretError
from voicekit.events import LLMDone, TextDelta, ToolCall, ToolResult
from voicekit.plugins.llm.openai import OpenAILLM, OpenAIOptions, is_local
from voicekit.roles import Message, ToolSpec
from voicekit.testing.contracts import LLMContract

CLOCK = ToolSpec("clock", "The time.", {"type": "object", "properties": {"timezone": {"type": "string"}}})
WEATHER = ToolSpec(
    "weather", "The weather.", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    async with OpenAIFake() as service:
        yield service


def backend(fake: OpenAIFake, **options: object) -> OpenAILLM:
    llm = OpenAILLM(OpenAIOptions.model_validate({"base_url": fake.url, "api_key": DEFAULT_KEY, **options}))
    llm.name = "openai"
    return llm


async def collect(llm: OpenAILLM, history: list[Message], text: str, tools: tuple[ToolSpec, ...] = ()) -> list[object]:
    return [event async for event in llm.respond(history, text, tools=tools)]


class TestOpenAIContract(LLMContract):
    @pytest.fixture
    async def backend(self, fake: OpenAIFake) -> AsyncIterator[OpenAILLM]:
        async with backend(fake) as llm:
            yield llm


async def test_streams_text_and_sends_the_history_as_chat_messages(fake: OpenAIFake) -> None:
    async with backend(fake, model="gpt-test", system="Be brief.", temperature=0.3, max_tokens=50,
                       extra_body={"top_k": 20}) as llm:  # fmt: skip
        history = [Message("user", "hi"), Message("assistant", "Hello th…", interrupted=True), Message("user", " ")]
        events = await collect(llm, history, "how are you")
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and isinstance(events[-1], LLMDone)
    assert events[-1].text == "".join(d.text for d in deltas) == "You said: how are you."
    body = fake.requests[0].body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello th…"},
        {"role": "user", "content": "how are you"},
    ]
    assert (body["model"], body["stream"], body["temperature"], body["top_k"]) == ("gpt-test", True, 0.3, 20)
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body, "a compatible server gets max_tokens"
    assert body["stream_options"] == {"include_usage": True} and "tools" not in body
    assert fake.requests[0].headers["Authorization"] == f"Bearer {DEFAULT_KEY}"
    assert llm.last_usage is not None and llm.last_usage.total_tokens == 26


async def test_openai_itself_gets_max_completion_tokens() -> None:
    llm = OpenAILLM(OpenAIOptions(max_tokens=50))
    request = llm.request([], "hi", ())
    assert request["max_completion_tokens"] == 50 and "max_tokens" not in request
    assert request["model"] == "gpt-5.4-mini"


async def test_tool_calls_streamed_in_pieces_become_tool_call_events(fake: OpenAIFake) -> None:
    fake.replies = [
        Reply(
            text="Let me check.",
            calls=[ScriptedCall("weather", {"city": "São Paulo"}, id="call_a"), ScriptedCall("clock", {}, id="call_b")],
        )
    ]
    async with backend(fake) as llm:
        events = await collect(llm, [], "weather and time?", (CLOCK, WEATHER))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_a", "weather", {"city": "São Paulo"}),
        ("call_b", "clock", {}),
    ]
    assert isinstance(events[-1], LLMDone) and events[-1].text == "Let me check."
    assert [t["function"]["name"] for t in fake.requests[0].body["tools"]] == ["clock", "weather"]
    assert fake.requests[0].body["tools"][1]["function"]["parameters"]["required"] == ["city"]


async def test_the_follow_up_carries_the_calls_and_their_results(fake: OpenAIFake) -> None:
    async with backend(fake) as llm:
        first = await collect(llm, [], "what does the clock say", (CLOCK,))
        (call,) = [e for e in first if isinstance(e, ToolCall)]
        result = ToolResult(call.id, call.name, "noon")
        exchange = [
            Message("user", "what does the clock say"),
            Message("assistant", "", tool_calls=(call,), tool_results=(result,)),
        ]
        second = await collect(llm, exchange, "", (CLOCK,))
    assert isinstance(second[-1], LLMDone) and second[-1].text == "The tool said: noon."
    messages = fake.requests[1].messages
    assert messages[-2]["tool_calls"] == [
        {"id": call.id, "type": "function", "function": {"name": "clock", "arguments": "{}"}}
    ]
    assert messages[-2]["content"] is None
    assert messages[-1] == {"role": "tool", "tool_call_id": call.id, "content": "noon"}


@pytest.mark.parametrize(
    ("fault", "kind", "retryable", "says"),
    [
        (Fault("bad_key"), AuthError, False, ("rejected the API key", "OPENAI_API_KEY", "Incorrect API key")),
        (Fault("status", 429, retry_after="2"), BackendError, True, ("429", "Rate limit reached")),
        (Fault("status", 500), BackendError, True, ("500", "The server had an error")),
        (Fault("status", 503), BackendError, True, ("503",)),
        (Fault("drop", after_chunks=3), BackendError, True, ("broke off mid-reply",)),
        (Fault("quota"), BackendError, False, ("quota", "billing")),
    ],
)
async def test_failures_map_onto_voicekit_errors_and_the_sdk_does_not_retry(
    fake: OpenAIFake, fault: Fault, kind: type[Exception], retryable: bool, says: tuple[str, ...]
) -> None:
    fake.faults = [fault]
    async with backend(fake) as llm:
        with pytest.raises(kind) as caught:
            await collect(llm, [], "hello there friend")
        assert len(fake.requests) == 1, "the SDK's own retries are off: the engine retries"
        error = caught.value
        assert bool(getattr(error, "retryable", False)) == retryable
        assert all(part in str(error) for part in says), str(error)
        assert str(error).startswith("llm:openai: ")
        if fault.retry_after is not None:
            assert getattr(error, "retry_after", None) == 2.0
        after = await collect(llm, [], "again")
        assert isinstance(after[-1], LLMDone) and after[-1].text == "You said: again.", "the next reply works"


async def test_a_rejected_key_exits_with_the_auth_code(fake: OpenAIFake) -> None:
    fake.faults = [Fault("bad_key")]
    async with backend(fake) as llm:
        with pytest.raises(AuthError) as caught:
            await collect(llm, [], "hi")
    assert caught.value.exit_code == 3


async def test_an_unknown_model_names_the_option(fake: OpenAIFake) -> None:
    fake.models = ["gpt-real"]
    async with backend(fake, model="gpt-typo") as llm:
        with pytest.raises(BackendError, match=r"model 'gpt-typo' was not found .*set llm.model") as caught:
            await collect(llm, [], "hi")
    assert not caught.value.retryable


async def test_a_stream_that_ends_without_finishing_is_a_retryable_failure(fake: OpenAIFake) -> None:
    fake.faults = [Fault("stall", after_chunks=2)]
    async with backend(fake, timeout_s=0.5) as llm:
        with pytest.raises(BackendError, match=r"no answer from the service between two chunks within 0.5 s") as caught:
            await collect(llm, [], "hello there friend")
    assert caught.value.retryable


async def test_a_local_server_needs_no_key(fake: OpenAIFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake.api_key = None  # like Ollama: any key, or none
    async with OpenAILLM(OpenAIOptions(base_url=fake.url)) as llm:
        events = await collect(llm, [], "hi")
    assert isinstance(events[-1], LLMDone)
    with pytest.raises(MissingSecretError, match="OPENAI_API_KEY"):
        await OpenAILLM(OpenAIOptions(base_url="https://api.groq.com/openai/v1")).start()
    with pytest.raises(MissingSecretError, match="OPENAI_API_KEY"):
        await OpenAILLM(OpenAIOptions()).start()


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:11434/v1", True),
        ("http://127.0.0.1:8000/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://192.168.1.20:8000/v1", True),
        ("http://ollama:11434/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://openrouter.ai/api/v1", False),
        ("http://8.8.8.8/v1", False),
    ],
)
def test_which_servers_are_local(url: str, local: bool) -> None:
    assert is_local(url) is local
