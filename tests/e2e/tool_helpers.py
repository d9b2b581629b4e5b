"""Shared by the tool tests: the demo MCP server, and whether a process is still alive."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tests" / "fakes" / "mcp_servers" / "demo.py"


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stdio_entry(pidfile: Path | None = None, **options: object) -> dict[str, object]:
    """A profile's ``mcp:`` entry that runs the demo server over stdio."""
    entry: dict[str, object] = {"command": [sys.executable, str(DEMO)], "name": "demo", **options}
    if pidfile is not None:
        entry["env"] = {"DEMO_MCP_PIDFILE": str(pidfile)}
    return entry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_demo(token: str | None = None) -> Iterator[str]:
    """The demo server over streamable HTTP; yields its URL."""
    port = free_port()
    args = [sys.executable, str(DEMO), "--http", str(port), *(["--token", token] if token else [])]
    process = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the demo MCP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)
