"""The tools package on its own: profile settings, typed functions as tools, the plugin
registry and the built-in clock."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Literal

import pluggy
import pytest
from pydantic import Field

from voicekit import hookspecs
from voicekit.hookspecs import RegisterTool, hookimpl
from voicekit.tools.base import ToolError, ToolsError
from voicekit.tools.builtin import clock
from voicekit.tools.config import ToolsConfig, tool_problems
from voicekit.tools.function import FunctionTool
from voicekit.tools.registry import load_tool_registry, unknown_tool_problems
from voicekit.tools.toolbox import Toolbox, cap


def test_the_profile_section_of_the_spec_parses() -> None:
    config = ToolsConfig.from_profile(
        {
            "tools": [
                {"use": "clock"},
                {"mcp": {"command": ["uvx", "mcp-server-fetch"]}},
                {"mcp": {"url": "http://localhost:8000/mcp", "headers": {"Authorization": "Bearer x"}, "only": ["s"]}},
                "clock",
            ],
            "tools_filler": "One moment.",
            "max_tool_rounds": 2,
            "language": "en",  # other keys of the profile are not ours
        }
    )
    first, fetch, remote, short = config.tools
    assert first.use == "clock" and short.use == "clock"  # type: ignore[union-attr]
    assert fetch.mcp.command == ["uvx", "mcp-server-fetch"] and fetch.mcp.label == "uvx mcp-server-fetch"  # type: ignore[union-attr]
    assert remote.mcp.only == ["s"] and not remote.mcp.allow_destructive  # type: ignore[union-attr]
    assert config.tools_filler is not None and config.tools_filler.text == "One moment."
    assert (config.max_tool_rounds, config.tools_timeout_s) == (2, 10.0)
    assert ToolsConfig.from_profile({"tools": [{"mcp": {"command": "uvx mcp-server-fetch --x 1"}}]}).tools[
        0
    ].mcp.command == ["uvx", "mcp-server-fetch", "--x", "1"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "path", "says"),
    [
        ({"tools": [{"mcp": {"comand": ["x"]}}]}, ("tools", 0, "mcp", "comand"), "did you mean 'command'"),
        ({"tools": [{"mcp": {}}]}, ("tools", 0, "mcp"), "either command"),
        ({"tools": [{"mcp": {"url": "localhost:8000"}}]}, ("tools", 0, "mcp"), "http://"),
        ({"tools": [{"mcp": {"command": ["x"], "headers": {"a": "b"}}}]}, ("tools", 0, "mcp"), "headers are for"),
        ({"tools": [{"fetch": 1}]}, ("tools", 0), "expected {use: NAME} or {mcp: {...}}"),
        ({"tools": [{"use": "clock", "onl": 1}]}, ("tools", 0, "onl"), "unknown key"),
        ({"max_tool_rounds": 0}, ("max_tool_rounds",), "greater than or equal to 1"),
        ({"tools_filler": {"txt": "x"}}, ("tools_filler", "txt"), "did you mean 'text'"),
    ],
)
def test_bad_settings_name_their_yaml_path(data: dict[str, object], path: tuple[object, ...], says: str) -> None:
    problems = tool_problems(data)
    assert any(where == path and says in message for where, message in problems), problems


def weather(city: str, unit: Literal["C", "F"] = "C", days: Annotated[int, Field(ge=1, le=7)] = 1) -> str:
    """The weather forecast for a city.

    Args:
        city: The city's name, e.g. "Paris".
        unit: Celsius or
            Fahrenheit.
    """
    return f"{days} days of sun in {city} ({unit})"


def test_signature_and_docstring_become_the_schema() -> None:
    tool = FunctionTool(weather)
    assert tool.spec.name == "weather" and tool.spec.description == "The weather forecast for a city."
    schema = tool.spec.parameters
    assert schema["type"] == "object" and schema["required"] == ["city"]
    props = schema["properties"]
    assert props["city"]["type"] == "string" and props["city"]["description"] == 'The city\'s name, e.g. "Paris".'
    assert props["unit"]["enum"] == ["C", "F"] and props["unit"]["description"] == "Celsius or Fahrenheit."
    assert (props["days"]["minimum"], props["days"]["maximum"]) == (1, 7)


async def test_arguments_are_validated_before_the_function_runs() -> None:
    tool = FunctionTool(weather)
    assert await tool.call({"city": "Oslo", "days": 3}) == "3 days of sun in Oslo (C)"
    with pytest.raises(ToolError, match=r"days: Input should be less than or equal to 7"):
        await tool.call({"city": "Oslo", "days": 30})
    with pytest.raises(ToolError, match=r"nonsense: Extra inputs are not permitted"):
        await tool.call({"city": "Oslo", "nonsense": 1})


async def test_async_functions_are_awaited_and_results_become_text() -> None:
    async def numbers(n: int) -> list[int]:
        """Counts.

        :param n: how far
        """
        await asyncio.sleep(0)
        return list(range(n))

    tool = FunctionTool(numbers)
    assert tool.spec.parameters["properties"]["n"]["description"] == "how far"
    assert await tool.call({"n": 3}) == "[0, 1, 2]"


def test_functions_that_cannot_be_described_are_refused_with_the_reason() -> None:
    def untyped(city):  # type: ignore[no-untyped-def]
        """No hints."""

    def star(*cities: str) -> str:
        """Varargs."""
        return ""

    with pytest.raises(ToolsError, match="argument 'city' has no type hint"):
        FunctionTool(untyped)
    with pytest.raises(ToolsError, match=r"\*args and \*\*kwargs"):
        FunctionTool(star)
    with pytest.raises(ToolsError, match="must be letters"):
        FunctionTool(weather, name="the weather")


async def test_the_clock_tells_the_time_in_a_timezone() -> None:
    tool = FunctionTool(clock)
    text = await tool.call({"timezone": "Asia/Tokyo"})
    assert re.fullmatch(r"\w+day \d\d \w+ 20\d\d, \d\d:\d\d in Asia/Tokyo \(UTC\+09:00\)", text), text
    assert "in UTC (UTC+00:00)" in await tool.call({})
    with pytest.raises(ToolError, match="unknown timezone 'Mars/Base'"):
        await tool.call({"timezone": "Mars/Base"})


class _Plugin:
    @hookimpl
    def register_tools(self, register: RegisterTool) -> None:
        register(weather)
        register("voicekit.tools.builtin:clock", name="time_now")


class _Broken:
    @hookimpl
    def register_tools(self, register: RegisterTool) -> None:
        raise RuntimeError("cannot register")


class _Clash:
    @hookimpl
    def register_tools(self, register: RegisterTool) -> None:
        register(weather)


def manager(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("voicekit")
    pm.add_hookspecs(hookspecs)
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"plugin{index}")
    return pm


def test_plugins_register_tools_and_the_clock_is_built_in() -> None:
    registry = load_tool_registry(manager(_Plugin(), _Broken()))
    assert {"clock", "weather", "time_now"} <= set(registry.tools)
    assert registry.tools["clock"].plugin == "voicekit"
    assert registry.entry("time_now").load().spec.description == "The current date and time in a timezone."
    assert "register_tools: RuntimeError: cannot register" in registry.broken["plugin1"]
    with pytest.raises(ToolsError, match=r"unknown tool 'wether' \(did you mean 'weather'\?\)"):
        registry.entry("wether")


def test_one_name_from_two_plugins_is_a_conflict() -> None:
    registry = load_tool_registry(manager(_Plugin(), _Clash()))
    with pytest.raises(ToolsError, match="registered twice: by plugin0 and by plugin1"):
        registry.entry("weather")


async def test_a_profile_toolbox_of_plugin_tools() -> None:
    config = ToolsConfig.from_profile({"tools": ["clock", {"use": "weather", "max_result_chars": 120}]})
    box = Toolbox(config, load_tool_registry(manager(_Plugin())))
    await box.start()
    assert [spec.name for spec in box.specs] == ["clock", "weather"]
    assert (await box.call("weather", '{"city": "Rome"}')).content == "1 days of sun in Rome (C)"
    with pytest.raises(ToolsError, match="unknown tool 'nope'"):
        Toolbox(ToolsConfig.from_profile({"tools": ["nope"]}), load_tool_registry(manager()))
    with pytest.raises(ToolsError, match="two tools are called 'clock'"):
        Toolbox(ToolsConfig.from_profile({"tools": ["clock", "clock"]}), load_tool_registry(manager()))


def test_results_are_capped_saying_how_much_was_cut() -> None:
    assert cap("short", 100) == "short"
    capped = cap("x" * 1000, 200)
    kept, note = capped.split("\n")
    assert len(capped) <= 200 and note == f"[… {1000 - len(kept)} more characters cut]" and len(kept) > 150


def test_validation_names_unknown_tools_by_their_path() -> None:
    registry = load_tool_registry(manager(_Plugin()))
    data = {"tools": ["clock", {"mcp": {"command": "x"}}, {"use": "wether"}]}
    assert unknown_tool_problems(data, registry) == [
        (("tools", 2, "use"), "unknown tool 'wether' (did you mean 'weather'?); known: clock, time_now, weather")
    ]
    assert unknown_tool_problems({"tools": [{"mcp": {"command": "x"}}]}) == []


def test_the_chat_display_shows_one_dim_line_per_call_and_result() -> None:
    from rich.console import Console

    from voicekit.display import ChatDisplay
    from voicekit.events import ToolCall, ToolResult

    console = Console(record=True, width=200, force_terminal=False)
    display = ChatDisplay(console)
    display(ToolCall("c1", "clock", '{"timezone": "Europe/Paris"}'))
    display(ToolResult("c1", "clock", "Friday 04 December 2026, 20:15 in Europe/Paris", duration_ms=3.4))
    display(ToolResult("c2", "wipe", "refused: not allowed " + "x" * 300, "refused"))
    display.close()
    lines = console.export_text().splitlines()
    assert lines[0] == '  ⚙ clock({"timezone": "Europe/Paris"})'
    assert lines[1] == "  ↳ clock: Friday 04 December 2026, 20:15 in Europe/Paris (3 ms)"
    assert lines[2].startswith("  ↳ wipe [refused]: refused: not allowed x") and lines[2].endswith("…")
    assert len(lines) == 3
