"""MCP servers as a source of tools, through the official ``mcp`` SDK (2.x).

A stdio server is a child process (``command``, ``args``, ``env``); a streamable HTTP
server is a URL (``headers``, ``${VAR}`` secrets). Each connection lives in a task of its
own, because the SDK's connections are anyio contexts that must be left by the task that
entered them: :meth:`MCPServer.start` starts that task and waits for the tool list;
:meth:`MCPServer.aclose` tells it to leave, which closes the session and — for stdio —
closes the child's stdin, waits, then terminates and kills its process group (the SDK's
shutdown, shielded from cancellation so that no exit path leaves a child behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from voicekit.roles import ToolSpec
from voicekit.sdk import import_sdk
from voicekit.tools.base import Tool, ToolError, ToolsError
from voicekit.tools.config import MCPServerConfig, expand_variables

if TYPE_CHECKING:
    from mcp import Client

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 10.0  # the SDK's own stdio shutdown takes at most ~6 s (stdin, SIGTERM, SIGKILL)


class MCPServer:
    """One MCP server of a profile, connected for the length of a conversation."""

    def __init__(self, config: MCPServerConfig) -> None:
        self.config = config
        self.label = config.label
        self.tools: list[MCPTool] = []
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._errlog: Any = None

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> list[MCPTool]:
        """Connect (start the process), list the tools; raise :class:`ToolsError` when it cannot."""
        import_sdk("mcp", package="mcp", extra="mcp", backend=f"mcp server {self.label}")
        self._stop = asyncio.Event()
        ready: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._serve(ready), name=f"mcp:{self.label}")
        try:
            listed = await asyncio.wait_for(asyncio.shield(ready), self.config.start_timeout_s)
        except TimeoutError:
            message = (
                f"tools: mcp server {self.label} did not start within {self.config.start_timeout_s:g} s"
                f"{self._stderr_tail()}"
            )
            await self.aclose()
            raise ToolsError(message) from None
        except BaseException:
            await self.aclose()
            raise
        self.tools = self._select(listed)
        return self.tools

    async def _serve(self, ready: asyncio.Future[list[Any]]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(self._client_for(stack))
                listed = await _list_all(client)
                self._client = client
                if not ready.done():
                    ready.set_result(listed)
                await self._stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to start(), or logged once running
            if not ready.done():
                ready.set_exception(self._start_error(exc))
            else:
                log.warning("mcp server %s stopped: %s", self.label, _one_line(exc))
        finally:
            self._client = None

    def _client_for(self, stack: contextlib.AsyncExitStack) -> Client:
        from mcp import Client, StdioServerParameters

        config = self.config
        where = f"tools: mcp server {self.label}"
        if config.command is not None:
            # the server's stderr, kept so that one that fails to start can say why; closed in aclose()
            self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            command = [expand_variables(part, where) for part in (*config.command, *config.args)]
            params = StdioServerParameters(
                command=command[0],
                args=command[1:],
                env={key: expand_variables(value, where) for key, value in config.env.items()} or None,
                cwd=expand_variables(config.cwd, where) if config.cwd else None,
            )
            from mcp.client.stdio import stdio_client

            return Client(stdio_client(params, errlog=self._errlog))
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        headers = {key: expand_variables(value, where) for key, value in config.headers.items()}
        http = create_mcp_http_client(headers=headers)
        stack.push_async_callback(http.aclose)
        assert config.url is not None
        return Client(streamable_http_client(expand_variables(config.url, where), http_client=http))

    def _select(self, listed: Sequence[Any]) -> list[MCPTool]:
        names = [tool.name for tool in listed]
        only = self.config.only
        if only is not None:
            missing = [name for name in only if name not in names]
            if missing:
                raise ToolsError(
                    f"tools: mcp server {self.label} has no tool {', '.join(repr(m) for m in missing)}; "
                    f"it offers: {', '.join(names) or 'none'}"
                )
        return [MCPTool(self, tool) for tool in listed if only is None or tool.name in only]

    async def aclose(self) -> None:
        """Disconnect and stop the server process; safe to call twice, shielded from cancellation."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()

        async def finish() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(task), _CLOSE_TIMEOUT_S)
            except TimeoutError:
                task.cancel()
                await asyncio.wait([task])
            except Exception:  # noqa: BLE001 - already logged by _serve
                pass

        closing = asyncio.ensure_future(finish())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await asyncio.wait([closing])
            raise
        finally:
            if self._errlog is not None and closing.done():
                self._errlog.close()

    # --- calls --------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        client = self._client
        if client is None:
            raise ToolError(f"the mcp server {self.label} is not running")
        try:
            result = await client.call_tool(name, arguments)
        except ToolError:
            raise
        except Exception as exc:  # the SDK's errors: the model hears them, the conversation goes on
            raise ToolError(f"mcp server {self.label}: {_one_line(exc)}") from exc
        text = _content_text(result)
        if result.is_error:
            raise ToolError(text or "the tool failed")
        return text

    # --- messages -----------------------------------------------------------------------

    def _start_error(self, exc: BaseException) -> ToolsError:
        inner = _innermost(exc)
        error = ToolsError(f"tools: mcp server {self.label} failed to start: {_one_line(inner)}{self._stderr_tail()}")
        error.__cause__ = exc
        return error

    def _stderr_tail(self) -> str:
        errlog = self._errlog
        if errlog is None or errlog.closed:
            return ""
        with contextlib.suppress(OSError, ValueError):
            errlog.seek(0)
            lines = [line.strip() for line in errlog.read().splitlines() if line.strip()]
            if lines:
                return f" (its last words: {lines[-1][:300]})"
        return ""


class MCPTool(Tool):
    """One tool of an MCP server."""

    def __init__(self, server: MCPServer, listed: Any) -> None:
        self.server = server
        schema = dict(listed.input_schema or {"type": "object", "properties": {}})
        schema.pop("title", None)
        description = listed.description or (listed.annotations.title if listed.annotations else None) or listed.name
        self.spec = ToolSpec(listed.name, description, schema)
        self.source = f"mcp {server.label}"
        annotations = listed.annotations
        self.destructive = bool(
            annotations is not None and annotations.destructive_hint and not annotations.read_only_hint
        )
        self.allowed = server.config.allow_destructive or not self.destructive
        self.max_result_chars = server.config.max_result_chars

    async def call(self, arguments: dict[str, Any]) -> str:
        return await self.server.call(self.spec.name, arguments)


async def _list_all(client: Client) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # a server that pages forever cannot hang the start
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _content_text(result: Any) -> str:
    parts = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        if text is not None:
            parts.append(text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')} omitted]")
    if not parts and result.structured_content is not None:
        import json

        return json.dumps(result.structured_content, ensure_ascii=False)
    return "\n".join(parts)


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _one_line(exc: BaseException) -> str:
    exc = _innermost(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["MCPServer", "MCPTool"]
