"""Function calling in the Gemini text LLM: the real google-genai SDK against the REST fake, with
the JSON the SDK sent as the fake received it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.gemini_rest import DEFAULT_KEY, MISSING_SIGNATURE, GeminiFake
from tests.fakes.gemini_tools import ScriptedCall, ToolPlan
from tests.fakes.profile_backends import isolate, write
from voicekit.engine.runner import ChatRequest, prepare, run_prepared
from voicekit.errors import BackendError
from voicekit.events import BotTurn, Event, LLMDone, TextDelta, ToolCall, ToolResult
from voicekit.plugins.llm.gemini import GeminiLLM
from voicekit.profiles import check_profile, load_profile
from voicekit.registry import load_registry
from voicekit.roles import Message, ToolSpec
from voicekit.testing.tool_contract import ToolCallingContract
from voicekit.tools.config import ToolsConfig, tool_problems

WEATHER = ToolSpec(
    "get_weather",
    "The current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PARIS = ToolPlan("weather in paris", (ScriptedCall("get_weather", {"city": "Paris"}),), say="Let me look.")
TWO_CITIES = ToolPlan(
    "paris and rome", (ScriptedCall("get_weather", {"city": "Paris"}), ScriptedCall("get_weather", {"city": "Rome"}))
)


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[GeminiFake]:
    async with GeminiFake(tool_plans=[TWO_CITIES, PARIS]) as server:
        yield server


@pytest.fixture
async def make_llm(fake: GeminiFake) -> AsyncIterator[Callable[[], GeminiLLM]]:
    made: list[GeminiLLM] = []

    def make() -> GeminiLLM:
        llm = GeminiLLM(GeminiLLM.Options(api_key=DEFAULT_KEY, base_url=fake.base_url))
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


async def collect(llm: GeminiLLM, history: list[Message], text: str, tools: tuple[ToolSpec, ...]) -> list[Any]:
    return [event async for event in llm.respond(history, text, tools=tools)]


def round_of(prompt: str, calls: list[ToolCall], *results: ToolResult) -> list[Message]:
    """The history of a later round: the user's words, then the round's calls with their results."""
    return [Message("user", prompt), Message("assistant", "", tool_calls=tuple(calls), tool_results=results)]


# --- the contract ---------------------------------------------------------------------------


class TestGeminiToolContract(ToolCallingContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self) -> AsyncIterator[GeminiLLM]:
        async with GeminiFake() as server:
            async with GeminiLLM(GeminiLLM.Options(api_key=DEFAULT_KEY, base_url=server.base_url)) as llm:
                yield llm


# --- the wire -------------------------------------------------------------------------------


async def test_function_call_and_response_round_trip(fake: GeminiFake, make_llm: Callable[[], GeminiLLM]) -> None:
    """Declarations go with their whole JSON schema; the call part goes back as it came (its thought
    signature too), followed by a functionResponse; the model answers from it."""
    llm = make_llm()
    prompt = "What is the weather in Paris?"
    first = await collect(llm, [], prompt, (WEATHER,))
    assert [type(e) for e in first] == [TextDelta, TextDelta, TextDelta, ToolCall, LLMDone]
    call = first[3]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.id and first[-1].text == "Let me look."
    body = fake.requests[0].body
    # the SDK writes a declaration's own fields in snake_case (the API takes either spelling)
    declaration = {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters_json_schema": dict(WEATHER.parameters),
    }
    assert body["tools"] == [{"functionDeclarations": [declaration]}]
    assert "toolConfig" not in body
    (issued,) = fake.issued_signatures.values()
    signature = base64.urlsafe_b64encode(base64.b64decode(issued)).decode()  # the SDK writes bytes URL-safe

    result = ToolResult(call.id, "get_weather", "sunny, 21 degrees")
    second = await collect(llm, round_of(prompt, [call], result), "", (WEATHER,))
    assert second[-1].text == "The tool said: sunny, 21 degrees."
    assert not any(isinstance(e, ToolCall) for e in second)
    assert fake.requests[1].body["contents"] == [
        {"role": "user", "parts": [{"text": prompt}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": signature}
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny, 21 degrees"}}}],
        },
    ]


async def test_what_was_said_before_the_calls_stays_in_the_model_turn(
    fake: GeminiFake, make_llm: Callable[[], GeminiLLM]
) -> None:
    llm = make_llm()
    prompt = "What is the weather in Paris?"
    first = await collect(llm, [], prompt, (WEATHER,))
    call = first[3]
    history = [
        Message("user", prompt),
        Message(
            "assistant", "Let me look.", tool_calls=(call,), tool_results=(ToolResult(call.id, call.name, "rain"),)
        ),
    ]
    await collect(llm, history, "", (WEATHER,))
    model_turn = fake.requests[1].body["contents"][1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0] == {"text": "Let me look."}
    assert model_turn["parts"][1]["functionCall"]["name"] == "get_weather"


@pytest.mark.parametrize("call_events", ["together", "apart"])
async def test_parallel_calls(fake: GeminiFake, make_llm: Callable[[], GeminiLLM], call_events: str) -> None:
    """Two calls in one response (in one event, or an event each) are two ToolCalls; their
    responses go back in the calls' order, with the ids the service gave."""
    fake.call_events = call_events
    fake.call_ids = True
    llm = make_llm()
    prompt = "Weather in Paris and Rome, please"
    events = await collect(llm, [], prompt, (WEATHER,))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("fc-") for c in calls), "the service's own ids"
    results = (ToolResult(calls[1].id, "get_weather", "rain"), ToolResult(calls[0].id, "get_weather", "sun"))
    answer = await collect(llm, round_of(prompt, calls, *results), "", (WEATHER,))
    assert answer[-1].text == "The tool said: sun and rain."
    contents = fake.requests[1].body["contents"]
    sent_calls = [p["functionCall"] for p in contents[1]["parts"]]
    assert [c["id"] for c in sent_calls] == [c.id for c in calls]
    assert "thoughtSignature" in contents[1]["parts"][0] and "thoughtSignature" not in contents[1]["parts"][1]
    responses = [p["functionResponse"] for p in contents[2]["parts"]]
    assert responses == [
        {"id": calls[0].id, "name": "get_weather", "response": {"output": "sun"}},
        {"id": calls[1].id, "name": "get_weather", "response": {"output": "rain"}},
    ]


async def test_the_last_round_keeps_the_declarations_with_mode_none(
    fake: GeminiFake, make_llm: Callable[[], GeminiLLM]
) -> None:
    llm = make_llm()
    prompt = "What is the weather in Paris?"
    call = next(e for e in await collect(llm, [], prompt, (WEATHER,)) if isinstance(e, ToolCall))
    history = round_of(prompt, [call], ToolResult(call.id, call.name, "fog"))
    events = await collect(llm, history, "", ())
    assert events[-1].text == "The tool said: fog."
    body = fake.requests[1].body
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert body["tools"] == fake.requests[0].body["tools"]


async def test_a_history_of_unknown_tools_declares_their_names(
    fake: GeminiFake, make_llm: Callable[[], GeminiLLM]
) -> None:
    """A backend that never got the tools (it took over from another) names the called functions."""
    fake.thought_signatures = False
    call = ToolCall("call_abc", "lookup", '{"q": "x"}')
    history = [
        *round_of("look it up", [call], ToolResult("call_abc", "lookup", "found")),
        Message("assistant", "Found."),
    ]
    events = await collect(make_llm(), history, "thanks", ())
    assert events[-1].text == "You said: thanks."
    body = fake.requests[0].body
    assert body["tools"] == [{"functionDeclarations": [{"name": "lookup"}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "lookup", "args": {"q": "x"}}}]
    assert body["contents"][2]["parts"] == [{"functionResponse": {"name": "lookup", "response": {"output": "found"}}}]


async def test_no_tools_and_no_calls_sends_no_tool_fields(fake: GeminiFake, make_llm: Callable[[], GeminiLLM]) -> None:
    events = await collect(make_llm(), [], "What is the weather in Paris?", ())
    assert events[-1].text == "You said: What is the weather in Paris?."
    assert "tools" not in fake.requests[0].body and "toolConfig" not in fake.requests[0].body


async def test_an_error_result_goes_as_error(fake: GeminiFake, make_llm: Callable[[], GeminiLLM]) -> None:
    llm = make_llm()
    prompt = "What is the weather in Paris?"
    call = next(e for e in await collect(llm, [], prompt, (WEATHER,)) if isinstance(e, ToolCall))
    failed = ToolResult(call.id, call.name, "error: the tool did not answer within 10 s", "timeout")
    events = await collect(llm, round_of(prompt, [call], failed), "", (WEATHER,))
    assert events[-1].text == "The tool failed: error: the tool did not answer within 10 s."
    (part,) = fake.requests[1].body["contents"][2]["parts"]
    assert part["functionResponse"]["response"] == {"error": "error: the tool did not answer within 10 s"}


async def test_a_call_without_a_result_is_answered_as_cancelled(
    fake: GeminiFake, make_llm: Callable[[], GeminiLLM]
) -> None:
    """Every call gets its response (the service refuses fewer), even one whose result never came."""
    llm = make_llm()
    prompt = "Weather in Paris and Rome, please"
    calls = [e for e in await collect(llm, [], prompt, (WEATHER,)) if isinstance(e, ToolCall)]
    await collect(llm, round_of(prompt, calls, ToolResult(calls[0].id, calls[0].name, "sun")), "", (WEATHER,))
    responses = [p["functionResponse"]["response"] for p in fake.requests[1].body["contents"][2]["parts"]]
    assert responses == [{"output": "sun"}, {"error": "cancelled: no result"}]


async def test_the_fake_refuses_a_call_sent_back_without_its_signature(
    fake: GeminiFake, make_llm: Callable[[], GeminiLLM]
) -> None:
    """The fake checks thought signatures as Gemini 3 does: a backend that did not make the call
    (it lost it, or took over the turn) cannot send its signature, and the service says so."""
    prompt = "What is the weather in Paris?"
    call = next(e for e in await collect(make_llm(), [], prompt, (WEATHER,)) if isinstance(e, ToolCall))
    with pytest.raises(BackendError) as caught:
        await collect(make_llm(), round_of(prompt, [call], ToolResult(call.id, call.name, "hail")), "", (WEATHER,))
    assert MISSING_SIGNATURE.split(".")[0] in str(caught.value) and not caught.value.retryable


async def test_the_next_turn_keeps_the_round(fake: GeminiFake, make_llm: Callable[[], GeminiLLM]) -> None:
    llm = make_llm()
    prompt = "What is the weather in Paris?"
    call = next(e for e in await collect(llm, [], prompt, (WEATHER,)) if isinstance(e, ToolCall))
    history = [*round_of(prompt, [call], ToolResult(call.id, call.name, "sun")), Message("assistant", "Sunny.")]
    events = await collect(llm, history, "thanks", (WEATHER,))
    assert events[-1].text == "You said: thanks."
    roles = [(c["role"], [key for p in c["parts"] for key in p]) for c in fake.requests[1].body["contents"]]
    assert roles == [
        ("user", ["text"]),
        ("model", ["functionCall", "thoughtSignature"]),
        ("user", ["functionResponse"]),
        ("model", ["text"]),
        ("user", ["text"]),
    ]


# --- in a conversation ----------------------------------------------------------------------

CLOCK_SAYS = r"\w+day \d\d \w+ 20\d\d, \d\d:\d\d in UTC \(UTC\+00:00\)"


async def test_a_typed_conversation_where_gemini_calls_the_clock(fake: GeminiFake, tmp_path: Path) -> None:
    fake.tool_plans = [ToolPlan("time", (ScriptedCall("clock", {}),))]
    profile = tmp_path / "gemini-tools.yaml"
    profile.write_text(
        "description: gemini with tools\nlanguage: en\n"
        f"llm: {{use: gemini, base_url: '{fake.base_url}', api_key: {DEFAULT_KEY}, retry: {{attempts: 1}}}}\n"
        "output: {use: silent}\ntools: [clock]\n"
    )

    async def lines() -> AsyncIterator[str]:
        for line in ("what time is it", "thanks"):
            yield line

    events: list[Event] = []
    conversation, finish = await prepare(
        ChatRequest(profile=str(profile), text=True, text_lines=lines(), observers=[events.append])
    )
    await run_prepared(conversation, finish)
    first, second = [e for e in events if isinstance(e, BotTurn)]
    assert re.fullmatch(rf"The tool said: {CLOCK_SAYS}\.", first.text), first.text
    assert second.text == "You said: thanks."
    (result,) = [e for e in events if isinstance(e, ToolResult)]
    assert (result.name, result.status) == ("clock", "ok")
    assert fake.requests[0].function_names == ["clock"]
    follow_up = fake.requests[1].body["contents"]
    assert follow_up[-1]["parts"][0]["functionResponse"]["name"] == "clock"
    next_turn = [c["role"] for c in fake.requests[2].body["contents"]]
    assert next_turn == ["user", "model", "user", "model", "user"], "the next turn remembers the tool round"


# --- the README's example -------------------------------------------------------------------


def test_the_readme_gemini_profile_with_tools_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    part = readme.split("### `llm: gemini` ", 1)[1].split("\n### ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", part, flags=re.S)
    dirs = isolate(tmp_path, monkeypatch)
    write(dirs["project"], "gemini-tools.yaml", block)
    assert check_profile("gemini-tools", load_registry()) == []
    profile = load_profile("gemini-tools")
    assert profile.llm.use == "gemini"
    data = yaml.safe_load(block)
    assert tool_problems(data) == []
    config = ToolsConfig.from_profile(data)
    assert len(config.tools) == 2 and config.max_tool_rounds == 2
