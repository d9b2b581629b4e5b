"""A local ElevenLabs text-to-speech server for tests and benchmarks (HTTP + websockets).

- ``POST /v1/text-to-speech/{voice}/stream?output_format=pcm_N``: raw PCM, key in ``xi-api-key``.
- ``/v1/text-to-speech/{voice}/stream-input`` and ``/multi-stream-input`` websockets, checking
  the key (header, or ``xi_api_key`` in the first message), message order (first message
  ``{"text": " ", "voice_settings": ...}``), that text ends with a space; answering base64
  PCM with alignment, then ``isFinal``. Audio is a tone ``ms_per_char`` long per character.
- Faults: a bad key (error message then close 1008, or HTTP 401 at the handshake), the
  inactivity timeout (``input_timeout_exceeded`` then close 1008), a connection dropped
  after N audio messages or before the first audio (the next N connections), statuses
  for the next handshakes or HTTP requests (429 and 503 with ``Retry-After``), latency
  before the first chunk and between chunks.
- Like the real service, closing a context that was already flushed does not stop its
  audio: it still arrives (counted in ``audio_after_close``), and the client must drop it.

Standalone: ``python -m tests.fakes.elevenlabs --port 8082 --api-key test-key``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from tests.fakes.aiohttp_service import AiohttpService

DEFAULT_KEY = "test-elevenlabs-key"
VOICES_SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "elevenlabs" / "voices.json"
TIMEOUT_MESSAGE = (
    "Have not received a new text input within the timeout of {t:.1f} seconds. Streaming input terminated. "
    "Please make sure to either feed the input in the timely manner, or to send the end of input text "
    '(empty string "") when done.'
)


def tone(n_samples: int, freq: float, sample_rate: int, phase: int = 0) -> bytes:
    """A quiet sine as 16-bit little-endian PCM."""
    t = np.arange(phase, phase + n_samples, dtype=np.float64)
    return (6000 * np.sin(2 * math.pi * freq * t / sample_rate)).astype("<i2").tobytes()


@dataclass
class Connection:
    """What one websocket connection received and sent."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    audio_bytes: dict[str | None, int] = field(default_factory=dict)
    audio_after_close: dict[str | None, int] = field(default_factory=dict)
    close_code: int | None = None
    dropped: bool = False

    def sent(self, **match: Any) -> list[dict[str, Any]]:
        """Messages the client sent that contain every ``key: value`` of ``match``."""
        return [m for _, m in self.messages if all(m.get(k) == v for k, v in match.items())]


@dataclass
class ElevenLabsFake(AiohttpService):
    """The fake service: its behaviour knobs and what it recorded."""

    api_key: str = DEFAULT_KEY
    idle_timeout_s: float = 20.0
    ms_per_char: float = 40.0
    chars_per_chunk: int = 12
    first_audio_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    final_key: str = "isFinal"  # the docs' examples also show "is_final"
    durations_key: str = "charDurationsMs"  # the docs' asyncapi says "charsDurationsMs"
    alignment: bool = True
    auth_at_handshake: bool = False
    drop_after_chunks: int | None = None  # abort the next connection after this many audio messages
    drop_before_audio: int = 0  # abort the next this many connections when they are first asked to speak
    handshake_statuses: list[int] = field(default_factory=list)  # answer the next websocket handshakes so
    http_statuses: list[int] = field(default_factory=list)  # answer the next HTTP requests so
    retry_after: float | None = None  # Retry-After of those answers
    handshakes: list[int] = field(default_factory=list)  # status of every websocket handshake (101: accepted)
    max_contexts: int = 5
    voices: dict[str, str] = field(  # voice id -> name, what GET /v1/voices lists
        default_factory=lambda: {"JBFqnCBsd6RMkjVDRZzb": "George", "pNInz6obpgDQGcFmaJgB": "Adam"}
    )
    connections: list[Connection] = field(default_factory=list)
    http_requests: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice}/stream", self._http_stream)
        app.router.add_get("/v1/voices", self._voices)
        app.router.add_get("/v1/text-to-speech/{voice}/stream-input", self._websocket)
        app.router.add_get("/v1/text-to-speech/{voice}/multi-stream-input", self._websocket)
        return app

    # --- HTTP ------------------------------------------------------------------------

    async def _voices(self, request: web.Request) -> web.Response:
        """``GET /v1/voices``: every voice of ``voices``, in the shape of ``samples/elevenlabs/voices.json``."""
        self.http_requests.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        )
        if request.headers.get("xi-api-key") != self.api_key:
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status=401
            )
        template = json.loads(VOICES_SAMPLE.read_text())["voices"][0]
        voices = [{**template, "voice_id": voice_id, "name": name} for voice_id, name in self.voices.items()]
        return web.json_response({"voices": voices})

    async def _http_stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.http_requests.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers), "body": body}
        )
        if request.headers.get("xi-api-key") != self.api_key:
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status=401
            )
        if self.http_statuses:
            return self._refusal(self.http_statuses.pop(0))
        fmt = request.query.get("output_format", "mp3_44100_128")
        if not fmt.startswith("pcm_"):
            self.violations.append(f"HTTP output_format {fmt} is not PCM")
            fmt = "pcm_16000"
        rate = int(fmt.split("_")[1])
        text = str(body.get("text", ""))
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        await asyncio.sleep(self.first_audio_delay_s)
        pcm = tone(round(len(text) * self.ms_per_char * rate / 1000), 220.0, rate)
        for i in range(0, len(pcm), 4096):
            await response.write(pcm[i : i + 4096])
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
        await response.write_eof()
        return response

    # --- websockets ------------------------------------------------------------------

    def _refusal(self, status: int) -> web.Response:
        """An injected refusal, worded like the service's own."""
        code, message = {
            429: ("too_many_concurrent_requests", "Too many concurrent requests for your subscription."),
            503: ("system_busy", "We are experiencing heavy traffic, please try again later."),
        }.get(status, ("error", "Injected failure."))
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else None
        return web.json_response({"detail": {"status": code, "message": message}}, status=status, headers=headers)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        header_key = request.headers.get("xi-api-key")
        if self.handshake_statuses:
            status = self.handshake_statuses.pop(0)
            self.handshakes.append(status)
            return self._refusal(status)
        if self.auth_at_handshake and header_key is not None and header_key != self.api_key:
            self.handshakes.append(401)
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status=401
            )
        self.handshakes.append(101)
        conn = Connection(request.path, dict(request.query), dict(request.headers))
        self.connections.append(conn)
        transport = request.transport
        ws = web.WebSocketResponse(max_msg_size=2**24)
        await ws.prepare(request)
        session = _Session(
            self,
            ws,
            conn,
            multi=request.path.endswith("multi-stream-input"),
            header_key=header_key,
            transport=transport,
        )
        try:
            await session.run()
        finally:
            await session.stop()
            conn.close_code = ws.close_code
        return ws


@dataclass
class _Context:
    buffer: str = ""
    closed: bool = False
    schedule: list[int] = field(default_factory=lambda: [120, 160, 250, 290])
    generated: int = 0
    phase: int = 0


class _Session:
    """One websocket connection: reads client messages, generates audio in order."""

    def __init__(
        self,
        fake: ElevenLabsFake,
        ws: web.WebSocketResponse,
        conn: Connection,
        *,
        multi: bool,
        header_key: str | None,
        transport: Any,
    ) -> None:
        self.fake, self.ws, self.conn, self.multi = fake, ws, conn, multi
        self.header_key = header_key
        self.transport = transport
        fmt = conn.query.get("output_format", "mp3_44100_128")
        if not fmt.startswith("pcm_"):
            fake.violations.append(f"websocket output_format {fmt} is not PCM")
            fmt = "pcm_16000"
        self.rate = int(fmt.split("_")[1])
        self.contexts: dict[str | None, _Context] = {}
        self.jobs: asyncio.Queue[tuple[str, str | None, str]] = asyncio.Queue()
        self.audio_messages = 0
        self.drop_after = fake.drop_after_chunks
        fake.drop_after_chunks = None  # one connection only
        self.drop_at_once = fake.drop_before_audio > 0
        fake.drop_before_audio = max(0, fake.drop_before_audio - 1)
        self.worker = asyncio.create_task(self._generate())

    async def stop(self) -> None:
        self.worker.cancel()
        try:
            await self.worker
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the peer may be gone already
            pass

    async def run(self) -> None:
        first = True
        last = time.monotonic()
        while not self.ws.closed:
            remaining = self.fake.idle_timeout_s - (time.monotonic() - last)
            try:
                msg = await self.ws.receive(timeout=max(remaining, 0.001))
            except TimeoutError:
                await self._error("input_timeout_exceeded", TIMEOUT_MESSAGE.format(t=self.fake.idle_timeout_s))
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if msg.type != WSMsgType.TEXT:
                self.fake.violations.append(f"non-text frame {msg.type}")
                continue
            last = time.monotonic()
            data = json.loads(msg.data)
            self.conn.messages.append((last, data))
            if first:
                first = False
                key = self.header_key or data.get("xi_api_key")
                if key != self.fake.api_key:
                    await self._error("invalid_api_key", "Invalid API key")
                    return
                if data.get("text") != " " or "voice_settings" not in data:
                    self.fake.violations.append(f"first message is not the initial one: {data}")
            if not await self._handle(data):
                return

    async def _handle(self, data: dict[str, Any]) -> bool:
        """Apply one client message; False ends the connection."""
        if self.multi and data.get("close_socket"):
            for ctx_id, ctx in list(self.contexts.items()):
                if not ctx.closed:
                    await self.jobs.put(("final", ctx_id, ""))
            await self.jobs.put(("close", None, ""))
            await self.jobs.join()
            return False
        ctx_id = data.get("context_id") if self.multi else None
        if self.multi and ctx_id is None:
            ctx_id = "default"
        text = data.get("text")
        if self.multi and data.get("close_context"):
            ctx = self.contexts.get(ctx_id)
            if ctx is None or ctx.closed:
                self.fake.violations.append(f"close_context for unknown context {ctx_id}")
                return True
            ctx.closed, ctx.buffer = True, ""  # unflushed text is dropped; flushed audio still comes
            await self.jobs.put(("final", ctx_id, ""))
            return True
        if text == "" and not self.multi:  # end of input
            ctx = self.contexts.setdefault(None, _Context())
            if ctx.buffer.strip():
                await self.jobs.put(("speak", None, ctx.buffer))
            await self.jobs.put(("final", None, ""))
            await self.jobs.put(("close", None, ""))
            return True
        ctx = self.contexts.get(ctx_id)
        if ctx is None or ctx.closed:
            if text is None or text == "":
                self.fake.violations.append(f"message for unknown context {ctx_id}: {data}")
                return True
            if sum(1 for c in self.contexts.values() if not c.closed) >= self.fake.max_contexts:
                await self._error(
                    "max_active_conversations",
                    f"Maximum simultaneous contexts per WebSocket connection exceeded ({self.fake.max_contexts}). "
                    "Please close an existing context before opening a new one.",
                )
                return False
            ctx = self.contexts[ctx_id] = _Context()
        schedule = (data.get("generation_config") or {}).get("chunk_length_schedule")
        if schedule:
            ctx.schedule = list(schedule)
        if text:
            if text != " " and not text.endswith(" "):
                self.fake.violations.append(f"text does not end with a space: {text!r}")
            if text.strip():
                ctx.buffer += text
        threshold = ctx.schedule[min(ctx.generated, len(ctx.schedule) - 1)]
        if ctx.buffer.strip() and (data.get("flush") or len(ctx.buffer) >= threshold):
            await self.jobs.put(("speak", ctx_id, ctx.buffer))
            ctx.buffer = ""
            ctx.generated += 1
        return True

    async def _error(self, code: str, message: str) -> None:
        await self.ws.send_json({"message": message, "error": code, "code": 1008})
        await self.ws.close(code=1008, message=message[:120].encode())

    async def _generate(self) -> None:
        while True:
            kind, ctx_id, text = await self.jobs.get()
            try:
                if kind == "speak":
                    await self._speak(ctx_id, text)
                elif kind == "final":
                    final: dict[str, Any] = {self.fake.final_key: True}
                    if self.multi:
                        final["contextId"] = ctx_id
                    else:
                        final["audio"] = None
                    await self.ws.send_json(final)
                    if self.multi:
                        self.contexts.pop(ctx_id, None)
                elif kind == "close":
                    await self.ws.close(code=1000)
            finally:
                self.jobs.task_done()

    async def _speak(self, ctx_id: str | None, text: str) -> None:
        fake = self.fake
        if self.drop_at_once:
            await self._drop()
            return
        ctx = self.contexts.get(ctx_id) or _Context()
        freq = 180.0 + 40 * (sum(map(ord, ctx_id or "")) % 6)
        await asyncio.sleep(fake.first_audio_delay_s)
        for i in range(0, len(text), fake.chars_per_chunk):
            if i:
                await asyncio.sleep(fake.chunk_delay_s)
            piece = text[i : i + fake.chars_per_chunk]
            n = round(len(piece) * fake.ms_per_char * self.rate / 1000)
            pcm = tone(n, freq, self.rate, ctx.phase)
            ctx.phase += n
            message: dict[str, Any] = {"audio": base64.b64encode(pcm).decode(), fake.final_key: False}
            if fake.alignment:
                align = {
                    "chars": list(piece),
                    "charStartTimesMs": [round(j * fake.ms_per_char) for j in range(len(piece))],
                    fake.durations_key: [round(fake.ms_per_char)] * len(piece),
                }
                message["normalizedAlignment"] = align
                message["alignment"] = align
            if self.multi:
                message["contextId"] = ctx_id
            await self.ws.send_json(message)
            self.conn.audio_bytes[ctx_id] = self.conn.audio_bytes.get(ctx_id, 0) + len(pcm)
            if ctx.closed:
                self.conn.audio_after_close[ctx_id] = self.conn.audio_after_close.get(ctx_id, 0) + len(pcm)
            self.audio_messages += 1
            if self.drop_after is not None and self.audio_messages >= self.drop_after:
                await self._drop()
                return

    async def _drop(self) -> None:
        """The injected fault: the connection is cut without a close frame."""
        self.conn.dropped = True
        if self.transport is not None:
            self.transport.abort()
        await self.ws.close()


# --- standalone -------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = ElevenLabsFake(
        api_key=args.api_key,
        idle_timeout_s=args.idle_timeout_s,
        first_audio_delay_s=args.first_audio_ms / 1000,
        chunk_delay_s=args.chunk_ms / 1000,
    )
    url = await fake.start(args.host, args.port)
    print(f"ElevenLabs fake listening on {url} (key {args.api_key!r})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--idle-timeout-s", type=float, default=20.0)
    parser.add_argument("--first-audio-ms", type=float, default=0.0, help="latency to the first audio of a flush")
    parser.add_argument("--chunk-ms", type=float, default=0.0, help="latency between audio chunks")
    try:
        asyncio.run(_serve(parser.parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
