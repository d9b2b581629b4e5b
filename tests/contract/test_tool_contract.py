"""The tool-calling contract: the ``openai`` backend passes it (through its SDK against the
local fake), and it fails tool-calling LLMs that break it, each in the test meant for it."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator

import pytest

from tests.fakes.openai_compat import DEFAULT_KEY, OpenAIFake
from voicekit.plugins.llm.openai import OpenAILLM, OpenAIOptions
from voicekit.testing.tool_contract import ToolCallingContract

pytest_plugins = ["pytester"]


class TestOpenAITools(ToolCallingContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[OpenAILLM]:
        async with OpenAIFake() as fake, OpenAILLM(OpenAIOptions(base_url=fake.url, api_key=DEFAULT_KEY)) as llm:
            yield llm


BROKEN = """
import pytest
from voicekit.events import LLMDone, TextDelta, ToolCall
from voicekit.options import BackendOptions
from voicekit.roles import LLM, Capabilities
from voicekit.testing.tool_contract import ToolCallingContract


class Broken(LLM):
    Options = BackendOptions
    capabilities = Capabilities(tools=True)
    kind = ""

    async def respond(self, history, user_text, *, tools=()):
        if history:  # the follow-up with the results
            if self.kind == "silent_after_results":
                yield LLMDone("")
                return
            yield TextDelta("Sunny.")
            yield LLMDone("Sunny.")
            return
        if tools or self.kind == "calls_unoffered":
            arguments = "{city: Paris" if self.kind == "bad_json" else '{"city": "Paris"}'
            yield ToolCall("c1", "get_weather", arguments)
            yield LLMDone("")
            return
        yield TextDelta("Hello there, friend.")
        yield LLMDone("Hello there, friend.")


class NoKeyword(Broken):
    async def respond(self, history, user_text, tools=()):
        async for event in Broken.respond(self, history, user_text, tools=tools):
            yield event


def make(kind, base=Broken):
    return type(kind, (base,), {"kind": kind})


@pytest.mark.parametrize("kind", ["bad_json", "calls_unoffered", "silent_after_results", "no_keyword"])
class TestBroken(ToolCallingContract):
    @pytest.fixture
    async def backend(self, kind):
        return make(kind, NoKeyword if kind == "no_keyword" else Broken)()
"""

EXPECTED_FAILURES = {
    "bad_json": {"test_calls_the_offered_tool"},
    "calls_unoffered": {"test_no_tools_offered_no_calls"},
    "silent_after_results": {"test_answers_from_the_result", "test_an_error_result_is_answered"},
    "no_keyword": {"test_declares_tool_support"},
}


def test_the_contract_fails_each_broken_backend_where_it_breaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken=textwrap.dedent(BROKEN))
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-rf")
    failed: dict[str, set[str]] = {kind: set() for kind in EXPECTED_FAILURES}
    for line in result.outlines:
        if line.startswith("FAILED"):
            test = line.split("::")[2].split("[")[0]
            kind = line.split("[")[1].split("]")[0]
            failed[kind].add(test)
    assert failed == EXPECTED_FAILURES, "\n".join(result.outlines[-30:])
