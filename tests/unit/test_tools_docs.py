"""The tool snippets of README.md and docs/plugins.md run as written."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from voicekit.audio.sinks import NullSink
from voicekit.engine.conversation import Conversation
from voicekit.engine.tools import ToolLoop
from voicekit.events import BotTurn, Event
from voicekit.plugins.llm.openai import OpenAIOptions
from voicekit.testing.scripted import NullOutput
from voicekit.tools import ToolError
from voicekit.tools.config import ToolsConfig, tool_problems
from voicekit.tools.function import FunctionTool
from voicekit.tools.toolbox import Toolbox

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PLUGINS = (ROOT / "docs" / "plugins.md").read_text()


def blocks(text: str, section: str, language: str) -> list[str]:
    part = text.split(section, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", part, flags=re.S)


def test_the_readme_profile_with_tools_is_valid() -> None:
    (block,) = blocks(README, "## Tools", "yaml")
    data = yaml.safe_load(block)
    assert tool_problems(data) == []
    config = ToolsConfig.from_profile(data)
    assert len(config.tools) == 3 and config.tools_filler is not None and data["extends"] == "openai"


def test_the_readme_openai_servers_are_valid_options() -> None:
    (block,) = blocks(README, "### `llm: openai`", "yaml")
    for line in block.strip().splitlines():
        section = dict(yaml.safe_load(line)["llm"])
        assert section.pop("use") == "openai"
        assert OpenAIOptions.model_validate(section).base_url, line


def plugin_module() -> dict[str, Any]:
    code = blocks(PLUGINS, "## Writing tools", "python")[0]
    namespace: dict[str, Any] = {"__name__": "voicekit_weather"}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    return namespace


async def test_the_writing_tools_example_registers_a_working_tool() -> None:
    module = plugin_module()
    registered: list[tuple[Any, str | None]] = []
    module["register_tools"](lambda function, name=None: registered.append((function, name)))
    assert registered == [(module["weather"], None), ("voicekit_weather.slow:forecast", "long_forecast")]
    tool = FunctionTool(module["weather"])
    assert tool.spec.description == "The weather forecast for a city."
    assert tool.spec.parameters["properties"]["days"]["description"] == "How many days ahead"
    assert await tool.call({"city": "Paris", "unit": "F"}) == "Paris: sunny, 70 °F, for the next 1 day(s)"
    with pytest.raises(ToolError, match="no forecast for 'Atlantis'"):
        await tool.call({"city": "Atlantis"})


async def test_the_llm_example_calls_the_tool_in_a_conversation() -> None:
    weather = plugin_module()["weather"]
    code = blocks(PLUGINS, "## Writing tools", "python")[1]
    namespace: dict[str, Any] = {"__name__": "parrot"}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)

    async def lines() -> AsyncIterator[str]:
        yield "Weather?"

    events: list[Event] = []
    conversation = Conversation(
        llm=namespace["ParrotLLM"](),
        output=NullOutput(),
        sink=NullSink(24000, realtime=False),
        text_input=lines(),
        observers=[events.append],
    )
    loop = ToolLoop(Toolbox.of([weather]), emit=conversation.emit, history=conversation.history)
    assert conversation.replier is not None
    conversation.replier.tools = loop
    await conversation.run()
    (turn,) = [e for e in events if isinstance(e, BotTurn)]
    assert turn.text == "error: invalid arguments: city: Field required", "the model called weather without a city"


def test_the_hook_reference_example_registers() -> None:
    section = PLUGINS.split("### `register_tools`", 1)[1]
    example = re.findall(r"```python\n(.*?)```", section, flags=re.S)[1]
    from voicekit.hookspecs import RegisterTool, hookimpl

    namespace: dict[str, Any] = {"hookimpl": hookimpl, "RegisterTool": RegisterTool, "weather": print}
    exec(compile(example, "docs/plugins.md", "exec"), namespace)
    registered: list[Any] = []
    namespace["register_tools"](lambda function, name=None: registered.append(name or function))
    assert registered == [print, "long_forecast"]
