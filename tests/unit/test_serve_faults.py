"""Every way a ``voicekit serve`` connection can fail ends in the same cleanup.

The connection runs in-process over a scripted ASGI peer (the client side of the socket):
it connects, says client-ready, types a message, asks for its history and, once the bot
has answered, disconnects the bot. The sweep runs that exchange again and again, each
time throwing an exception into the connection at its next await point (every wait of a
task whose code is in :mod:`voicekit.serve` at that moment: the connection's own tasks,
the conversation's preparation, the socket sink inside the conversation), until a run
gets through without reaching the point. After every run: the endpoint returned, the hub
holds nothing, no task of the connection is left, and no ledger row is ``running``.
"""

from __future__ import annotations

import asyncio
import collections.abc
import functools
import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_helpers import write_profile
from voicekit.clock import now
from voicekit.ledger.ledger import SessionLedger
from voicekit.serve.app import ConnectionHub
from voicekit.serve.config import ServeConfig
from voicekit.serve.wire import AudioFrame, MessageFrame, decode, encode

pytestmark = pytest.mark.slow

MAX_POINTS = 3000


class InjectedFault(RuntimeError):
    pass


class Injector:
    """Counts the await points of serve code across every task, and faults the ``point``-th."""

    def __init__(self, point: int) -> None:
        self.point = point
        self.seen = 0
        self.where: str | None = None

    def due(self, coro: Any) -> bool:
        frames = _frames(coro)
        if not any(str(f.f_globals.get("__name__", "")).startswith("voicekit.serve") for f in frames):
            return False
        self.seen += 1
        if self.seen - 1 != self.point:
            return False
        inner = frames[-1]
        self.where = f"{inner.f_code.co_name}() at {Path(inner.f_code.co_filename).name}:{inner.f_lineno}"
        return True


def _frames(coro: Any) -> list[Any]:
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return frames


class Faulty(collections.abc.Coroutine[Any, Any, Any]):
    """A task's body: ``coro``, except that at the await point the injector picks it is resumed
    with :class:`InjectedFault` instead of what it waited for."""

    def __init__(self, coro: Any, injector: Injector) -> None:
        self.coro, self.injector = coro, injector

    def send(self, value: Any) -> Any:
        return self._step(lambda: self.coro.send(value))

    def throw(self, *args: Any) -> Any:  # type: ignore[override]
        return self._step(lambda: self.coro.throw(*args))

    def _step(self, resume: Any) -> Any:
        waiting_for = resume()
        while self.injector.due(self.coro):
            waiting_for = self.coro.throw(InjectedFault(f"injected at await point {self.injector.point}"))
        return waiting_for

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        raise TypeError("a task's body, not awaited")


class Peer:
    """The client side of one ASGI websocket: scripted messages in, everything sent recorded."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.kinds: list[str] = []
        self.closed: int | None = None

    @staticmethod
    def rtvi(kind: str, data: Any = None, id_: str = "1") -> dict[str, Any]:
        msg = {"label": "rtvi-ai", "type": kind, "id": id_, "data": data}
        return {"type": "websocket.receive", "bytes": encode(MessageFrame(json.dumps(msg)))}

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            for item in (
                self.rtvi("client-ready", {"version": "2.1.0"}),
                {"type": "websocket.receive", "bytes": encode(AudioFrame(bytes(640), 16000, 1))},
                self.rtvi("send-text", {"content": "hi there"}, "2"),
                self.rtvi("client-message", {"t": "history"}, "3"),
            ):
                self.inbox.put_nowait(item)
        elif kind == "websocket.send":
            frame = decode(message["bytes"])
            if isinstance(frame, MessageFrame):
                rtvi_kind = json.loads(frame.data)["type"]
                self.kinds.append(rtvi_kind)
                if rtvi_kind == "bot-stopped-speaking":
                    self.inbox.put_nowait(self.rtvi("disconnect-bot", {}, "4"))
        elif kind == "websocket.close":
            self.closed = message.get("code", 1000)
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": self.closed})


def scope() -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
    }


async def one_connection(config: ServeConfig, injector: Injector) -> tuple[ConnectionHub, Peer, set[asyncio.Task[Any]]]:
    from starlette.websockets import WebSocket

    hub = ConnectionHub(config)
    peer = Peer()
    loop = asyncio.get_running_loop()
    made: set[asyncio.Task[Any]] = set()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(Faulty(coro, injector), loop=loop, **kwargs)
        made.add(task)
        return task

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        ws = WebSocket(scope(), peer.receive, peer.send)
        endpoint = loop.create_task(hub.endpoint(ws), name="endpoint")
        await asyncio.wait_for(endpoint, 60)  # raises what the endpoint raised: it must raise nothing
    finally:
        loop.set_task_factory(None)
    return hub, peer, made


def all_done(tasks: set[asyncio.Task[Any]]) -> bool:
    return all(task.done() for task in tasks)


async def settled(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, what
        await asyncio.sleep(0.01)


async def test_a_fault_at_any_await_point_ends_the_connection_through_the_one_cleanup(tmp_path: Path) -> None:
    profile = write_profile(tmp_path, replies=["Hi. Fine, thanks."], ms_per_char=10)
    ledger = SessionLedger(tmp_path / "ledger.sqlite3")
    config = ServeConfig(profile=str(profile), ledger=ledger, idle_timeout_s=20, chunk_ms=20)
    points = 0
    while True:
        assert points < MAX_POINTS, f"more than {MAX_POINTS} await points: is the exchange looping?"
        injector = Injector(points)
        hub, peer, tasks = await one_connection(config, injector)
        at = f"with a fault at await point {points} ({injector.where})"
        assert not hub.connections and not hub._tasks, f"the hub still counts the connection {at}"
        await settled(functools.partial(all_done, tasks), f"tasks left running {at}")
        await settled(
            lambda: all(row.status != "running" for row in ledger.conversations(1000)),
            f"a ledger row left running {at}",
        )
        if injector.where is None:  # the exchange ended before reaching this point: every point was tried
            assert peer.closed == 1000 and "bot-ready" in peer.kinds and "server-response" in peer.kinds
            break
        points += 1
    rows = ledger.conversations(10_000)
    assert points >= 15, f"only {points} await points: the exchange did not run"
    assert {row.status for row in rows} <= {"ended", "failed", "interrupted"}
    assert sum(row.status == "failed" for row in rows) >= points // 2, "most faults end as a failed conversation"
