"""A real MCP server (``mcp`` SDK 2.x, ``MCPServer``) with tools that succeed, fail, take
long, change things (marked destructive) and answer at length.

stdio (the default): ``python tests/fakes/mcp_servers/demo.py``; streamable HTTP:
``python tests/fakes/mcp_servers/demo.py --http PORT [--token TOKEN]`` (with a token, a
request without ``Authorization: Bearer TOKEN`` gets 401). ``DEMO_MCP_PIDFILE`` names a
file to write the server's process id to, so that tests can check it is gone afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

server = MCPServer("voicekit-demo")
wiped: list[str] = []


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def lookup(city: str) -> str:
    """The population of a city."""
    known = {"paris": "2.1 million", "oslo": "0.7 million"}
    if city.lower() not in known:
        raise ToolError(f"no city called {city!r} in the atlas")
    return f"{city} has {known[city.lower()]} people"


@server.tool()
async def slow(seconds: float) -> str:
    """Waits, then answers."""
    await asyncio.sleep(seconds)
    return f"waited {seconds} s"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def wipe(path: str) -> str:
    """Deletes everything under a path."""
    wiped.append(path)
    return f"wiped {path}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def essay(words: int) -> str:
    """A very long answer."""
    return " ".join(["lorem"] * words)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on this port instead of stdio")
    parser.add_argument("--token", help="require this bearer token (HTTP)")
    args = parser.parse_args()
    pidfile = os.environ.get("DEMO_MCP_PIDFILE")
    if pidfile:
        with open(pidfile, "w") as out:
            out.write(str(os.getpid()))
    print("demo mcp server starting", file=sys.stderr, flush=True)
    if args.http is None:
        server.run()
        return
    import uvicorn
    from starlette.responses import JSONResponse

    app = server.streamable_http_app()
    token = args.token

    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        if token and scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode() != f"Bearer {token}":
                await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=args.http, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
