"""A local stand-in for Deepgram Flux, the turn-taking speech recognizer (``/v2/listen``).

It speaks the wire protocol the SDK's types describe (``deepgram.listen.v2.types``):
``Authorization: Token KEY`` and the query (``model`` flux-general-en / flux-general-multi,
``encoding=linear16``, ``sample_rate``, optional ``eot_threshold``, ``eager_eot_threshold``,
``eot_timeout_ms``, ``keyterm``) are checked at the handshake (401 / 400 otherwise); it
answers ``Connected``, then ``TurnInfo`` messages whose ``event`` is ``StartOfTurn``,
``Update``, ``EagerEndOfTurn`` (only with ``eager_eot_threshold``), ``TurnResumed`` or
``EndOfTurn`` — each with ``turn_index``, ``audio_window_start/end``, ``transcript``,
``words[{word, confidence, start, end}]``, ``end_of_turn_confidence`` and the increasing
``sequence_id`` every server message carries; ``Error {code, description}`` on a fault.

Turns are driven by the audio: speech is found by energy in 20 ms frames; a turn starts
``start_of_turn_ms`` into speech, gets an ``Update`` every ``update_every_s`` (one more word
of the turn's scripted transcript per ``WORD_S`` of speech), an ``EagerEndOfTurn``
``eager_ms`` into a silence, ``TurnResumed`` if speech comes back, and ``EndOfTurn`` with the
whole transcript ``end_of_turn_ms`` into a silence. ``ForceEndTurn`` and ``CloseStream`` end
an open turn at once (``trigger: manual``). Faults: handshake statuses (with Retry-After),
a connection dropped after N bytes of audio, an ``Error`` message after N bytes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

MODELS = ("flux-general-en", "flux-general-multi")
FRAME_S = 0.02
WORD_S = 0.3


@dataclass
class FluxConnection:
    """What one accepted connection received and sent."""

    index: int
    params: dict[str, list[str]]
    headers: dict[str, str]
    audio: bytearray = field(default_factory=bytearray)
    controls: list[str] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[str]:
        return [m["event"] for m in self.sent if m.get("type") == "TurnInfo"]


@dataclass
class FakeFlux:
    """The fake service; ``async with FakeFlux(script=[...]) as fake: fake.url``."""

    script: list[str] = field(default_factory=lambda: ["hello world"])  # one transcript per turn
    api_key: str = "test-key"
    host: str = "127.0.0.1"
    port: int = 0
    energy_threshold: float = 300.0
    start_of_turn_ms: float = 250.0
    update_every_s: float = 0.25
    eager_ms: float = 200.0
    end_of_turn_ms: float = 400.0
    handshake_statuses: list[int] = field(default_factory=list)
    retry_after: float | None = None
    drop_after_bytes: int | None = None  # drop the first connection after this much audio
    error_after_bytes: int | None = None  # send Error and close 1011 after this much audio
    handshakes: list[tuple[int, dict[str, list[str]]]] = field(default_factory=list, init=False)
    connections: list[FluxConnection] = field(default_factory=list, init=False)
    turns_done: int = field(default=0, init=False)  # script position, kept across reconnects
    _server: Server | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def end_of_turns(self) -> list[str]:
        return [m["transcript"] for c in self.connections for m in c.sent if m.get("event") == "EndOfTurn"]

    async def __aenter__(self) -> FakeFlux:
        self._server = await serve(self._handle, self.host, self.port, process_request=self._check, ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        status, error = self._verdict(parts.path, request.headers.get("Authorization"), query)
        self.handshakes.append((status, query))
        if status == 101:
            return None
        response = connection.respond(
            HTTPStatus(status), json.dumps({"err_code": HTTPStatus(status).phrase, "err_msg": error}) + "\n"
        )
        response.headers["dg-error"] = error
        if status in (429, 503) and self.retry_after is not None:
            response.headers["Retry-After"] = f"{self.retry_after:g}"
        return response

    def _verdict(self, path: str, auth: str | None, query: dict[str, list[str]]) -> tuple[int, str]:
        if path.rstrip("/") != "/v2/listen":
            return 404, f"no such endpoint: {path}"
        if self.handshake_statuses:
            return self.handshake_statuses.pop(0), "injected failure"
        if auth != f"Token {self.api_key}":
            return 401, "Invalid credentials."
        one = {k: v[-1] for k, v in query.items()}
        if one.get("model") not in MODELS:
            return 400, f"No such model: {one.get('model')}"
        if one.get("encoding") != "linear16" or not one.get("sample_rate", "").isdigit():
            return 400, "linear16 audio with a sample_rate is required"
        for key, low, high in (("eot_threshold", 0.5, 0.9), ("eager_eot_threshold", 0.3, 0.9)):
            if key in one and not low <= float(one[key]) <= high:
                return 400, f"{key} must be between {low} and {high}"
        if "eot_timeout_ms" in one and not 500 <= int(one["eot_timeout_ms"]) <= 10000:
            return 400, "eot_timeout_ms must be between 500 and 10000"
        return 101, ""

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        log = FluxConnection(
            len(self.connections), parse_qs(urlsplit(ws.request.path).query), dict(ws.request.headers.raw_items())
        )
        self.connections.append(log)
        await _FluxSession(self, ws, log).run()


class _FluxSession:
    def __init__(self, fake: FakeFlux, ws: ServerConnection, log: FluxConnection) -> None:
        self.fake, self.ws, self.log = fake, ws, log
        self.rate = int(log.params["sample_rate"][-1])
        self.eager = "eager_eot_threshold" in log.params
        self.frame_bytes = int(self.rate * FRAME_S) * 2
        self.request_id = str(uuid.uuid4())
        self.sequence = 0
        self.pending = b""
        self.t = 0.0
        self.voiced_s = 0.0  # speech heard in the open turn
        self.run_s = 0.0  # the current stretch of speech
        self.quiet_s = 0.0
        self.turn_open = False
        self.turn_start = 0.0
        self.eager_sent = False
        self.last_update = 0.0
        self.closing = False

    async def run(self) -> None:
        await self._send({"type": "Connected", "request_id": self.request_id})
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    if await self._audio(message):
                        return
                else:
                    await self._control(message)
        except ConnectionClosed:
            pass

    async def _send(self, message: dict[str, Any]) -> None:
        message["sequence_id"] = self.sequence
        self.sequence += 1
        self.log.sent.append(message)
        await self.ws.send(json.dumps(message))

    async def _audio(self, data: bytes) -> bool:
        fake, log = self.fake, self.log
        log.audio += data
        if fake.error_after_bytes is not None and log.index == 0 and len(log.audio) >= fake.error_after_bytes:
            await self._send({"type": "Error", "code": "INTERNAL_SERVER_ERROR", "description": "injected failure"})
            await self.ws.close(1011, "injected failure")
            return True
        if fake.drop_after_bytes is not None and log.index == 0 and len(log.audio) >= fake.drop_after_bytes:
            self.ws.transport.abort()
            return True
        self.pending += data
        n = len(self.pending) - len(self.pending) % self.frame_bytes
        frames = np.frombuffer(self.pending[:n], dtype="<i2").astype(np.float64).reshape(-1, self.frame_bytes // 2)
        self.pending = self.pending[n:]
        for rms in np.sqrt((frames**2).mean(axis=1)):
            await self._frame(bool(rms > fake.energy_threshold))
        return False

    def _words(self, everything: bool = False) -> list[str]:
        script = self.fake.script
        words = script[self.fake.turns_done % len(script)].split()
        return words if everything else words[: min(len(words), int(self.voiced_s / WORD_S) + 1)]

    async def _turn_info(self, event: str, *, everything: bool = False, **extra: Any) -> None:
        words = self._words(everything)
        step = (self.t - self.turn_start) / max(1, len(words))
        await self._send(
            {
                "type": "TurnInfo",
                "request_id": self.request_id,
                "event": event,
                "turn_index": self.fake.turns_done,
                "audio_window_start": round(self.turn_start, 3),
                "audio_window_end": round(self.t, 3),
                "transcript": " ".join(words),
                "words": [
                    {
                        "word": w,
                        "confidence": 0.97,
                        "start": round(self.turn_start + i * step, 3),
                        "end": round(self.turn_start + (i + 1) * step, 3),
                    }
                    for i, w in enumerate(words)
                ],
                "end_of_turn_confidence": 0.9 if event == "EndOfTurn" else 0.6 if event == "EagerEndOfTurn" else 0.1,
                **extra,
            }
        )

    async def _frame(self, voiced: bool) -> None:
        fake = self.fake
        self.t += FRAME_S
        if voiced:
            self.quiet_s = 0.0
            self.run_s += FRAME_S
            self.voiced_s += FRAME_S
            if not self.turn_open and self.run_s * 1000 >= fake.start_of_turn_ms - 1e-6:
                self.turn_open, self.turn_start, self.last_update = True, self.t - self.run_s, self.t
                await self._turn_info("StartOfTurn")
            elif self.turn_open and self.eager_sent:
                self.eager_sent = False
                await self._turn_info("TurnResumed")
            elif self.turn_open and self.t - self.last_update >= fake.update_every_s - 1e-6:
                self.last_update = self.t
                await self._turn_info("Update")
            return
        self.run_s = 0.0
        if not self.turn_open:
            self.voiced_s = 0.0
            return
        self.quiet_s += FRAME_S
        if self.eager and not self.eager_sent and self.quiet_s * 1000 >= fake.eager_ms - 1e-6:
            self.eager_sent = True
            await self._turn_info("EagerEndOfTurn", everything=True)
        if self.quiet_s * 1000 >= fake.end_of_turn_ms - 1e-6:
            await self._end_turn("model")

    async def _end_turn(self, trigger: str) -> None:
        await self._turn_info("EndOfTurn", everything=True, trigger=trigger)
        self.fake.turns_done += 1
        self.turn_open = self.eager_sent = False
        self.voiced_s = self.quiet_s = 0.0

    async def _control(self, text: str) -> None:
        kind = json.loads(text).get("type")
        self.log.controls.append(str(kind))
        if kind in ("ForceEndTurn", "CloseStream") and self.turn_open:
            await self._end_turn("manual")
        if kind == "CloseStream":
            await self.ws.close(1000, "")
