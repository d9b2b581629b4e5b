"""The tools of one conversation, from every source a profile names, by name."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voicekit.events import ToolStatus
from voicekit.roles import ToolSpec
from voicekit.tools.base import Tool, ToolError, ToolsError
from voicekit.tools.config import MCPToolEntry, PluginToolEntry, ToolsConfig
from voicekit.tools.mcp import MCPServer
from voicekit.tools.registry import ToolRegistry, load_tool_registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolOutcome:
    """What a call gave: the text for the model and how it ended."""

    content: str
    status: ToolStatus = "ok"


class Toolbox:
    """The tools a profile gives the model: plugin tools (loaded when the toolbox is made, so
    an unknown name fails at once) and the tools of its MCP servers (connected by
    :meth:`start`, disconnected — child processes stopped — by :meth:`aclose`).

    :meth:`call` never raises for what a tool does wrong: a bad argument, a tool that
    fails, a destructive tool the profile does not allow all come back as an outcome the
    model reads. Timeouts and cancellation are the engine's (``voicekit.engine.tools``).
    """

    def __init__(self, config: ToolsConfig, registry: ToolRegistry | None = None) -> None:
        self.config = config
        self.tools: dict[str, Tool] = {}
        self.servers: list[MCPServer] = []
        self.started = False
        plugin_entries = [entry for entry in config.tools if isinstance(entry, PluginToolEntry)]
        if plugin_entries:
            registry = registry or load_tool_registry()
            for entry in plugin_entries:
                tool = registry.entry(entry.use).load()
                tool.max_result_chars = entry.max_result_chars
                self._add(tool)
        self.servers = [MCPServer(entry.mcp) for entry in config.tools if isinstance(entry, MCPToolEntry)]
        if not self.servers:
            self.started = True

    @classmethod
    def of(cls, tools: Sequence[Tool | Any]) -> Toolbox:
        """A toolbox of ready tools: :class:`Tool` objects or typed Python functions."""
        from voicekit.tools.function import FunctionTool

        box = cls(ToolsConfig.model_validate({}))
        for tool in tools:
            box._add(tool if isinstance(tool, Tool) else FunctionTool(tool, source="python"))
        return box

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """What the model is told, in the profile's order."""
        return tuple(tool.spec for tool in self.tools.values())

    def _add(self, tool: Tool) -> None:
        existing = self.tools.get(tool.name)
        if existing is not None:
            raise ToolsError(
                f"tools: two tools are called '{tool.name}' ({existing.source} and {tool.source}); "
                "leave one out with only: [...]"
            )
        self.tools[tool.name] = tool

    async def start(self) -> None:
        """Connect every MCP server (in parallel) and add its tools; on any failure close
        what started and raise one :class:`ToolsError`."""
        if self.started:
            return
        plugin_tools = dict(self.tools)
        results = await asyncio.gather(*(server.start() for server in self.servers), return_exceptions=True)
        errors = [result for result in results if isinstance(result, BaseException)]
        try:
            if errors:
                raise next((e for e in errors if not isinstance(e, asyncio.CancelledError)), errors[0])
            for tools in results:
                assert not isinstance(tools, BaseException)
                for tool in tools:
                    self._add(tool)
        except BaseException:
            self.tools = plugin_tools
            await self.aclose()
            raise
        self.started = True

    async def aclose(self) -> None:
        """Disconnect every MCP server and stop its process; safe to call twice."""
        servers = list(self.servers)
        await asyncio.gather(*(server.aclose() for server in servers), return_exceptions=True)

    async def call(self, name: str, arguments: str) -> ToolOutcome:
        """Run tool ``name`` with ``arguments`` (the model's JSON text)."""
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(self.tools) or "none"
            return ToolOutcome(f"error: there is no tool called '{name}'; the tools are: {known}", "error")
        try:
            parsed: Any = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return ToolOutcome(f"error: the arguments are not valid JSON ({exc.msg}); send a JSON object", "error")
        if not isinstance(parsed, dict):
            return ToolOutcome("error: the arguments must be a JSON object", "error")
        if not tool.allowed:
            return ToolOutcome(
                f"refused: '{name}' changes or deletes data, and this assistant is not allowed to run it; "
                "tell the user it was not done",
                "refused",
            )
        try:
            text = await tool.call(parsed)
        except ToolError as exc:
            return ToolOutcome(f"error: {exc}", "error")
        except Exception as exc:  # a failing tool is news for the model, not the end of the conversation
            log.debug("tool %s failed", name, exc_info=True)
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return ToolOutcome(f"error: {detail}", "error")
        return ToolOutcome(cap(text, tool.max_result_chars))


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    kept = limit
    for _ in range(3):  # the note's own length depends on the number it states
        note = f"\n[… {len(text) - kept} more characters cut]"
        kept = max(0, limit - len(note))
    return text[:kept] + f"\n[… {len(text) - kept} more characters cut]"


def describe(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """Name, source, description and schema of each tool, for ``voicekit tools list``."""
    return [
        {
            "name": tool.name,
            "source": tool.source,
            "description": tool.spec.description,
            "destructive": tool.destructive,
            "allowed": tool.allowed,
            "parameters": dict(tool.spec.parameters),
        }
        for tool in tools
    ]


__all__ = ["ToolOutcome", "Toolbox", "cap", "describe"]
