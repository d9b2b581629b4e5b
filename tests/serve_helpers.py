"""Shared by the ``voicekit serve`` tests: a scripted profile, the server on a random
loopback port, and a websocket client that speaks the wire and logs what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from voicekit.audio.pcm import frame_bytes, tone
from voicekit.clock import now
from voicekit.serve.app import ConnectionHub
from voicekit.serve.config import ServeConfig
from voicekit.serve.server import VoiceServer, bind, build_server
from voicekit.serve.wire import AudioFrame, MessageFrame, decode, encode

SCRIPTED_PROFILE = """\
description: scripted voices for the serve tests
language: en
stt: {{use: scripted, transcripts: {transcripts}, min_silence_ms: 200, interim: true}}
llm: {{use: scripted, replies: {replies}, first_token_ms: 40}}
output: {{use: scripted, first_audio_ms: 20, ms_per_char: {ms_per_char}}}
audio: {{vad: none}}
"""


def write_profile(
    folder: Path,
    *,
    transcripts: list[str] | None = None,
    replies: list[str] | None = None,
    ms_per_char: float = 30,
) -> Path:
    path = folder / "scripted-serve.yaml"
    path.write_text(
        SCRIPTED_PROFILE.format(
            transcripts=json.dumps(transcripts or ["hello there", "and another thing"]),
            replies=json.dumps(replies or ["Hi. How are you today?"]),
            ms_per_char=ms_per_char,
        )
    )
    return path


def speech(ms: float, rate: int = 16000) -> bytes:
    """Loud enough for the scripted STT to call it speech."""
    return tone(ms, rate, hz=300, amplitude=0.3)


@dataclass
class Running:
    server: VoiceServer
    port: int

    @property
    def hub(self) -> ConnectionHub:
        return self.server.hub

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_server(config: ServeConfig) -> AsyncIterator[Running]:
    """The real server (uvicorn + the app) on 127.0.0.1 and a free port, in this event loop."""
    sock = bind("127.0.0.1", 0)
    server = build_server(config, sock)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), task.exception() if task.done() else ""
        await asyncio.sleep(0.01)
    try:
        yield Running(server, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


class Client:
    """A websocket client of the server: logs ``(time, kind, payload)`` for every message,
    where kind is ``"audio"`` (payload an AudioFrame) or the RTVI type (payload the message)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.log: list[tuple[float, str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._ids = 0

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                assert isinstance(data, bytes), "the server sent a text message"
                frame = decode(data)
                if isinstance(frame, AudioFrame):
                    self.log.append((now(), "audio", frame))
                elif isinstance(frame, MessageFrame):
                    msg = json.loads(frame.data)
                    assert msg["label"] == "rtvi-ai"
                    self.log.append((now(), msg["type"], msg))
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._changed.set()

    @property
    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.log]

    def messages(self, kind: str) -> list[dict[str, Any]]:
        return [payload for _, k, payload in self.log if k == kind]

    async def send_rtvi(self, kind: str, data: Any = None, id_: str | None = None) -> str:
        self._ids += 1
        msg = {"label": "rtvi-ai", "type": kind, "id": id_ or f"m{self._ids}"}
        if data is not None:
            msg["data"] = data
        await self.ws.send(encode(MessageFrame(json.dumps(msg))))
        return str(msg["id"])

    async def wait_for(self, kind: str, *, after: int = 0, timeout: float = 5.0) -> int:
        """Index in :attr:`log` of the first ``kind`` at or after index ``after``."""
        deadline = now() + timeout
        while True:
            for i in range(after, len(self.log)):
                if self.log[i][1] == kind:
                    return i
            if self._reader.done():
                raise AssertionError(f"connection closed before {kind!r}; got {self.kinds}")
            self._changed.clear()
            left = deadline - now()
            if left <= 0:
                raise AssertionError(f"no {kind!r} within {timeout} s; got {self.kinds}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def ready(self) -> dict[str, Any]:
        await self.send_rtvi("client-ready", {"version": "2.1.0", "about": {"library": "tests"}}, "ready-1")
        return self.log[await self.wait_for("bot-ready")][2]  # type: ignore[no-any-return]

    async def stream(self, pcm: bytes, *, rate: int = 16000, channels: int = 1, frame_ms: int = 20) -> None:
        """Send ``pcm`` in real time, ``frame_ms`` per message."""
        step = frame_bytes(rate, frame_ms) * channels
        start = now()
        for i, offset in enumerate(range(0, len(pcm), step)):
            delay = start + i * frame_ms / 1000 - now()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.ws.send(encode(AudioFrame(pcm[offset : offset + step], rate, channels)))

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str]:
        await asyncio.wait_for(self._reader, timeout)
        return self.ws.close_code, self.ws.close_reason or ""

    async def aclose(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)


@contextlib.asynccontextmanager
async def connect(url: str, **kwargs: Any) -> AsyncIterator[Client]:
    async with websockets.connect(url, open_timeout=5, max_size=None, **kwargs) as ws:
        client = Client(ws)
        try:
            yield client
        finally:
            await client.aclose()
