"""Tools a language model may call: plugin functions (``register_tools``) and MCP servers.

- :mod:`.config`: the ``tools:`` part of a profile (:class:`ToolsConfig`);
- :mod:`.function`: typed Python functions as tools (the schema from the signature);
- :mod:`.registry`: the tools plugins register; :mod:`.builtin`: the ``clock`` tool;
- :mod:`.mcp`: MCP servers over stdio and streamable HTTP, through the ``mcp`` SDK;
- :mod:`.toolbox`: one conversation's tools by name, started and stopped with it.

The engine runs the calls (:mod:`voicekit.engine.tools`: timeouts, parallel calls,
cancellation); LLM backends only declare the tools to their service and yield the calls.
"""

from voicekit.tools.base import Tool, ToolError, ToolsError

__all__ = ["Tool", "ToolError", "ToolsError"]
