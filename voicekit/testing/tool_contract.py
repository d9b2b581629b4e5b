"""The tool-calling contract: what an LLM backend that declares ``Capabilities.tools`` must do.

Subclass :class:`ToolCallingContract` in your tests with a ``backend`` fixture yielding a
started LLM (for a cloud model: against a local fake of its service, or a real one)::

    class TestMyModelTools(ToolCallingContract):
        @pytest.fixture
        async def backend(self):
            async with MyLLM(MyLLM.Options(base_url=FAKE)) as llm:
                yield llm

Every test offers one tool (``tool``, a weather lookup) and checks the events the backend
yields: the calls it makes are ``ToolCall`` events with an id, an offered name and a JSON
object for arguments, before one ``LLMDone``; given the results in the history it answers
in text; given an error result it still answers; offered no tools it calls none.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterable, Sequence
from typing import Any, ClassVar

import pytest

from voicekit.clock import now
from voicekit.events import LLMDone, TextDelta, ToolCall, ToolResult
from voicekit.roles import LLM, Message, ToolSpec


async def _events(
    backend: LLM, history: Sequence[Message], text: str, tools: Sequence[ToolSpec], timeout: float
) -> list[Any]:
    collected: list[Any] = []

    async def collect(reply: AsyncIterable[Any]) -> None:
        async for event in reply:
            collected.append(event)

    reply = backend.respond(history, text, tools=tools)  # type: ignore[call-arg]
    try:
        await asyncio.wait_for(collect(reply), timeout)
    except TimeoutError:
        pytest.fail(f"respond() did not end within {timeout} s; got {[type(e).__name__ for e in collected]}")
    return collected


def _check_stream(events: Sequence[Any], since: float) -> None:
    assert events, "respond() yielded nothing"
    for event in events:
        assert isinstance(event, (TextDelta, ToolCall, LLMDone)), f"{event!r} is not a TextDelta, ToolCall or LLMDone"
    done = [e for e in events if isinstance(e, LLMDone)]
    assert len(done) == 1 and events[-1] is done[0], "exactly one LLMDone, and it comes last"
    assert done[0].text == "".join(e.text for e in events if isinstance(e, TextDelta)), (
        "LLMDone.text must be the deltas joined"
    )
    last = since
    for event in events:
        assert event.t >= last, f"timestamps go back in time at {event!r}"
        last = event.t
    assert last <= now(), "an event is stamped in the future: use voicekit.clock.now()"


class ToolCallingContract:
    """The contract of an LLM that takes tools; see the module docstring."""

    #: upper bound of every wait, in seconds
    timeout_s: ClassVar[float] = 30.0
    #: the tool offered in every test
    tool: ClassVar[ToolSpec] = ToolSpec(
        "get_weather",
        "The current weather in a city.",
        {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"],
        },
    )
    #: a request that the model answers with a call of ``tool``
    prompt: ClassVar[str] = "What is the weather in Paris right now? Use the get_weather tool."
    #: what the tool answers in the follow-up tests
    result: ClassVar[str] = "sunny, 21 degrees"

    @pytest.fixture
    def backend(self) -> Any:
        """Override in your subclass: an async fixture yielding a started backend."""
        pytest.fail(f"{type(self).__name__}: define a `backend` fixture that yields a started backend")

    async def _calls(self, backend: LLM) -> list[ToolCall]:
        start = now()
        events = await _events(backend, [], self.prompt, [self.tool], self.timeout_s)
        _check_stream(events, start)
        calls = [e for e in events if isinstance(e, ToolCall)]
        assert calls, f"no ToolCall: the model was asked to use {self.tool.name} (set `prompt` if yours needs more)"
        return calls

    @pytest.mark.asyncio
    async def test_declares_tool_support(self, backend: LLM) -> None:
        """``capabilities.tools`` is true and ``respond`` takes the keyword ``tools``."""
        assert backend.capabilities.tools, "capabilities.tools must be True for a backend under this contract"
        parameters = inspect.signature(backend.respond).parameters
        assert "tools" in parameters and parameters["tools"].kind is inspect.Parameter.KEYWORD_ONLY, (
            "respond(history, user_text, *, tools=()) must take tools as a keyword-only argument"
        )

    @pytest.mark.asyncio
    async def test_calls_the_offered_tool(self, backend: LLM) -> None:
        """Asked to use the tool, the model yields ``ToolCall`` events (an id, an offered name, a JSON
        object of arguments), then one ``LLMDone``."""
        calls = await self._calls(backend)
        ids = [call.id for call in calls]
        assert all(ids) and len(set(ids)) == len(ids), f"every call needs an id of its own, got {ids}"
        for call in calls:
            assert call.name == self.tool.name, f"{call.name!r} was not offered"
            try:
                arguments = json.loads(call.arguments)
            except json.JSONDecodeError as exc:
                pytest.fail(f"ToolCall.arguments must be JSON text, got {call.arguments!r}: {exc}")
            assert isinstance(arguments, dict), f"ToolCall.arguments must be a JSON object, got {call.arguments!r}"

    @pytest.mark.asyncio
    async def test_answers_from_the_result(self, backend: LLM) -> None:
        """Given its calls and their results in the history (``user_text=""``), the model answers in text."""
        calls = await self._calls(backend)
        results = tuple(ToolResult(call.id, call.name, self.result) for call in calls)
        history = [
            Message("user", self.prompt),
            Message("assistant", "", tool_calls=tuple(calls), tool_results=results),
        ]
        start = now()
        events = await _events(backend, history, "", [self.tool], self.timeout_s)
        _check_stream(events, start)
        assert any(isinstance(e, TextDelta) and e.text.strip() for e in events), "no text after the results"

    @pytest.mark.asyncio
    async def test_an_error_result_is_answered(self, backend: LLM) -> None:
        """A result with an error status is handed over like any other, and the model still answers."""
        calls = await self._calls(backend)
        results = tuple(ToolResult(call.id, call.name, "error: the weather service is down", "error") for call in calls)
        history = [
            Message("user", self.prompt),
            Message("assistant", "", tool_calls=tuple(calls), tool_results=results),
        ]
        start = now()
        events = await _events(backend, history, "", [self.tool], self.timeout_s)
        _check_stream(events, start)
        assert any(isinstance(e, TextDelta) for e in events), "no text after an error result"

    @pytest.mark.asyncio
    async def test_no_tools_offered_no_calls(self, backend: LLM) -> None:
        """With ``tools=()`` (the last round) the model answers in text and calls nothing."""
        start = now()
        events = await _events(backend, [], "Say hello in three words.", (), self.timeout_s)
        _check_stream(events, start)
        assert not any(isinstance(e, ToolCall) for e in events), "a ToolCall although no tool was offered"
        assert any(isinstance(e, TextDelta) for e in events), "no text"


__all__ = ["ToolCallingContract"]
