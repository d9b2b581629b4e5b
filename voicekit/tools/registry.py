"""The tools plugins register through ``register_tools`` (voicekit's own ``clock`` included).

Like backends, a tool may be registered by a lazy ``"module:function"`` path, imported only
when a profile uses it; a plugin whose hook raises is listed under ``broken``, and one name
registered by two plugins is a conflict that makes the name unusable.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from voicekit.tools.base import ToolsError
from voicekit.tools.function import FunctionTool

log = logging.getLogger(__name__)

BUILTIN_TOOLS = "voicekit.tools.builtin"


@dataclass(frozen=True)
class RegisteredTool:
    """One tool a plugin registered: its name, the function (or its path), and the plugin."""

    name: str
    target: Any
    plugin: str

    def load(self) -> FunctionTool:
        """The tool, with its schema (a lazily registered module is imported now)."""
        function = self.target
        if isinstance(function, str):
            module_name, _, attr = function.partition(":")
            try:
                function = getattr(importlib.import_module(module_name), attr)
            except Exception as exc:
                raise ToolsError(
                    f"tool '{self.name}' from plugin {self.plugin} failed to load: {type(exc).__name__}: {exc}"
                ) from exc
        return FunctionTool(function, name=self.name, source=f"plugin {self.plugin}")


@dataclass
class ToolRegistry:
    """Every registered tool, and the plugins that failed to register theirs."""

    tools: dict[str, RegisteredTool] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, str] = field(default_factory=dict)

    def entry(self, name: str) -> RegisteredTool:
        if name in self.conflicts:
            raise ToolsError(self.conflicts[name])
        try:
            return self.tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.tools), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(sorted(self.tools)) or "none"
            raise ToolsError(f"unknown tool '{name}'{hint}; known: {known}") from None


def unknown_tool_problems(data: Any, registry: ToolRegistry | None = None) -> list[tuple[tuple[str | int, ...], str]]:
    """Each ``tools: [{use: NAME}]`` entry of a profile document that names no registered
    tool, with its YAML path (``profiles validate`` asks this; MCP servers are not started)."""
    from voicekit.tools.config import PluginToolEntry, ToolsConfig

    config = ToolsConfig.from_profile(data)
    if not any(isinstance(entry, PluginToolEntry) for entry in config.tools):
        return []
    registry = registry or load_tool_registry()
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for index, entry in enumerate(config.tools):
        if isinstance(entry, PluginToolEntry):
            try:
                registry.entry(entry.use)
            except ToolsError as exc:
                problems.append((("tools", index, "use"), str(exc)))
    return problems


def load_tool_registry(pm: pluggy.PluginManager | None = None) -> ToolRegistry:
    """Ask every plugin (and voicekit's built-in tools) to register its tools."""
    from voicekit.registry import get_plugin_manager, plugin_label

    pm = pm or get_plugin_manager()
    if not pm.has_plugin(BUILTIN_TOOLS):
        pm.register(importlib.import_module(BUILTIN_TOOLS), name=BUILTIN_TOOLS)
    registry = ToolRegistry(broken=dict(getattr(pm, "voicekit_broken", {})))
    for impl in pm.hook.register_tools.get_hookimpls():
        label = "voicekit" if impl.plugin_name == BUILTIN_TOOLS else plugin_label(pm, impl.plugin)
        try:
            impl.function(*([_register(label, registry)] if impl.argnames else []))
        except Exception as exc:  # a broken plugin is reported, the others work
            registry.broken[label] = f"register_tools: {type(exc).__name__}: {exc}"
            log.debug("plugin %s failed to register its tools", label, exc_info=True)
    return registry


def _register(plugin: str, registry: ToolRegistry) -> Callable[..., None]:
    def register(function: Any, name: str | None = None) -> None:
        if name is None:
            name = function.rpartition(":")[2] if isinstance(function, str) else getattr(function, "__name__", "")
        if not name:
            raise ToolsError(f"plugin {plugin} registered a tool without a name")
        existing = registry.tools.get(name)
        if existing is not None and existing.plugin != plugin:
            registry.conflicts[name] = (
                f"tool '{name}' is registered twice: by {existing.plugin} and by {plugin}; uninstall one of them"
            )
            return
        registry.tools[name] = RegisteredTool(name, function, plugin)

    return register


__all__ = ["BUILTIN_TOOLS", "RegisteredTool", "ToolRegistry", "load_tool_registry", "unknown_tool_problems"]
