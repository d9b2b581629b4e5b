"""Real MCP servers written with the ``mcp`` SDK, run by the tests as child processes."""
