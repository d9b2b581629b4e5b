"""MCP servers as tools, through the ``mcp`` SDK against a real server written with it
(``tests/fakes/mcp_servers/demo.py``), over stdio as a child process and over streamable
HTTP: tools that succeed, fail, take too long and are marked destructive; results capped;
the child process gone when the toolbox closes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.e2e.tool_helpers import alive, http_demo, stdio_entry, wait_gone
from voicekit.engine.tools import ToolLoop
from voicekit.events import ToolCall
from voicekit.tools.base import ToolsError
from voicekit.tools.config import ToolsConfig
from voicekit.tools.toolbox import Toolbox


def toolbox(*entries: dict[str, object]) -> Toolbox:
    return Toolbox(ToolsConfig.from_profile({"tools": [{"mcp": entry} for entry in entries]}))


async def test_a_stdio_server_lists_and_runs_its_tools_and_stops_with_the_toolbox(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    box = toolbox(stdio_entry(pidfile))
    await box.start()
    try:
        pid = int(pidfile.read_text())
        assert alive(pid)
        assert [spec.name for spec in box.specs] == ["add", "lookup", "slow", "wipe", "essay"]
        add = box.tools["add"]
        assert add.source == "mcp demo" and add.spec.description == "Add two whole numbers."
        assert add.spec.parameters["required"] == ["a", "b"]
        assert (await box.call("add", json.dumps({"a": 2, "b": 40}))).content == "42"
        failed = await box.call("lookup", '{"city": "Atlantis"}')
        assert failed.status == "error" and "no city called 'Atlantis' in the atlas" in failed.content
        bad = await box.call("add", '{"a": "two"}')
        assert bad.status == "error" and "a" in bad.content
    finally:
        await box.aclose()
    assert wait_gone(pid), "the server process is stopped when the toolbox closes"
    await box.aclose()  # twice is harmless


async def test_destructive_tools_run_only_when_allowed() -> None:
    refused = toolbox(stdio_entry())
    allowed = toolbox(stdio_entry(allow_destructive=True))
    await asyncio.gather(refused.start(), allowed.start())
    try:
        assert refused.tools["wipe"].destructive and not refused.tools["wipe"].allowed
        assert not refused.tools["essay"].destructive, "read-only tools are never refused"
        outcome = await refused.call("wipe", '{"path": "/home"}')
        assert outcome.status == "refused" and "not allowed" in outcome.content
        ran = await allowed.call("wipe", '{"path": "/tmp/x"}')
        assert (ran.status, ran.content) == ("ok", "wiped /tmp/x")
    finally:
        await asyncio.gather(refused.aclose(), allowed.aclose())


async def test_only_and_the_result_cap() -> None:
    box = toolbox(stdio_entry(only=["essay", "add"], max_result_chars=500))
    await box.start()
    try:
        assert [spec.name for spec in box.specs] == ["add", "essay"]
        essay = await box.call("essay", '{"words": 5000}')
        assert essay.status == "ok" and len(essay.content) <= 500 and "more characters cut]" in essay.content
    finally:
        await box.aclose()
    with pytest.raises(ToolsError, match=r"has no tool 'search'; it offers: add, lookup, slow, wipe, essay"):
        await toolbox(stdio_entry(only=["search"])).start()


async def test_a_slow_call_times_out_a_cancelled_one_stops_and_the_server_goes_on() -> None:
    box = toolbox(stdio_entry())
    events: list[object] = []
    loop = ToolLoop(box, timeout_s=0.5, emit=events.append)
    await loop.start()
    try:
        (timed_out,) = await loop.run([ToolCall("c1", "slow", '{"seconds": 30}')])
        assert timed_out.status == "timeout"
        running = asyncio.ensure_future(
            ToolLoop(box, timeout_s=60, emit=events.append).run([ToolCall("c2", "slow", '{"seconds": 30}')])
        )
        await asyncio.sleep(0.3)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert [getattr(e, "status", None) for e in events] == ["timeout", "cancelled"]
        (after,) = await loop.run([ToolCall("c3", "add", '{"a": 1, "b": 1}')])
        assert (after.status, after.content) == ("ok", "2"), "the server answers after a timeout and a cancel"
    finally:
        await loop.aclose()


async def test_a_server_that_cannot_start_says_why() -> None:
    crash = {"command": ["python3", "-c", "import sys; sys.stderr.write('config file missing\\n'); sys.exit(2)"]}
    with pytest.raises(ToolsError, match=r"failed to start: .*\(its last words: config file missing\)"):
        await toolbox(crash).start()
    with pytest.raises(ToolsError, match=r"mcp server /no/such/server failed to start: FileNotFoundError"):
        await toolbox({"command": ["/no/such/server"]}).start()


async def test_an_http_server_with_a_bearer_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TOKEN", "s3cret")
    with http_demo(token="s3cret") as url:
        box = toolbox({"url": url, "headers": {"Authorization": "Bearer ${MCP_TOKEN}"}, "only": ["lookup"]})
        await box.start()
        try:
            assert [spec.name for spec in box.specs] == ["lookup"]
            assert (await box.call("lookup", '{"city": "Oslo"}')).content == "Oslo has 0.7 million people"
        finally:
            await box.aclose()
        with pytest.raises(ToolsError, match=rf"mcp server {url} failed to start"):
            await toolbox({"url": url, "headers": {"Authorization": "Bearer wrong"}}).start()
    monkeypatch.delenv("MCP_TOKEN")
    with pytest.raises(Exception, match="MCP_TOKEN is not set"):
        await toolbox({"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer ${MCP_TOKEN}"}}).start()
