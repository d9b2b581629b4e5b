"""A local stand-in for Deepgram's live transcription websocket (``/v1/listen``).

It speaks the real wire protocol, shaped like the captured samples in
``tests/samples/deepgram/``: it checks ``Authorization: Token KEY`` and the query
parameters at the handshake (401 / 400 otherwise), takes binary linear16 audio and
the JSON control messages ``KeepAlive``, ``Finalize`` and ``CloseStream``, and closes
with 1011 after ``idle_timeout_s`` without audio or KeepAlive.

Transcripts are driven by the audio: speech is found by energy in 20 ms frames, and
each stretch of speech is answered with the next scripted transcript (interims while
it lasts, a final with ``speech_final`` after ``endpointing`` ms of silence, then
``UtteranceEnd``). The script position survives reconnects, so audio that is sent
twice, or not at all, shows up as wrong words. Faults: handshake statuses
(401/429/5xx, with Retry-After), connections dropped after N bytes of audio (one, or
several in a row), idle timeout, delays.

Standalone: ``python -m tests.fakes.deepgram --port 8765 --script "hello world"``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

MODELS: dict[str, frozenset[str] | None] = {  # model -> the languages it takes (None: any), a subset
    "nova-3": frozenset({"en", "en-US", "en-GB", "ru", "de", "es", "fr", "multi"}),
    "nova-3-general": frozenset({"en", "en-US", "ru", "multi"}),
    "nova-2": frozenset({"en", "en-US", "ru", "de", "es", "fr", "multi"}),
    "nova-2-general": frozenset({"en", "en-US", "ru", "multi"}),
    "nova": frozenset({"en", "en-US"}),
    "base": None,
    "enhanced": None,
}
PROJECT_ID = "3c5a6f4e-0f51-4b2b-9d3e-5f0a7f1d2c11"
MODELS_SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "deepgram" / "manage" / "models.docs.json"
IDLE_REASON = (
    "Deepgram did not receive audio data or a text message within the timeout window. See https://dpgr.am/net0001"
)
FRAME_S = 0.02
WORD_S = 0.3  # interims reveal one more word per this much speech


@dataclass
class ConnectionLog:
    """Everything one accepted connection received and sent."""

    index: int
    params: dict[str, str]
    headers: dict[str, str]
    audio: bytearray = field(default_factory=bytearray)
    received: list[str] = field(default_factory=list)  # "audio" or the control message type, in order
    sent: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    @property
    def controls(self) -> list[str]:
        """The control messages in order (runs of audio collapsed away)."""
        return [r for r in self.received if r != "audio"]

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == kind]


@dataclass
class FakeDeepgram:
    """The fake service; ``async with FakeDeepgram(script=[...]) as fake: fake.url``."""

    script: list[str] = field(default_factory=lambda: ["hello world"])  # one transcript per utterance
    api_key: str = "test-key"  # clients must send "Authorization: Token <api_key>"
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, set by start()
    idle_timeout_s: float = 10.0  # close 1011 (NET-0001) after this long without audio or KeepAlive
    handshake_statuses: list[int] = field(default_factory=list)  # answer the next handshakes with these
    retry_after: float | None = None  # Retry-After on injected 429 / 503
    drop_after_bytes: int | None = None  # drop connection number drop_connection after this much audio
    drop_connection: int = 0
    drop_count: int = 1  # and as many connections after it as this says, in all
    drop_code: int | None = 1011  # None: abort the TCP connection without a close frame
    final_delay_ms: float = 0.0  # latency of final results after the audio that ends them
    interim_delay_ms: float = 0.0
    handshake_delay_ms: float = 0.0
    energy_threshold: float = 300.0  # RMS of a 20 ms frame above which it is speech
    interim_every_s: float = 0.25
    split_final_every_s: float | None = None  # also finalize long speech in pieces (is_final, not speech_final)
    silence_final_s: float = 1.0  # empty final results over stretches of silence
    handshakes: list[tuple[int, dict[str, str]]] = field(default_factory=list, init=False)  # (status, query)
    rest_requests: list[str] = field(default_factory=list, init=False)  # paths of the REST calls
    connections: list[ConnectionLog] = field(default_factory=list, init=False)
    # Script position as delivered: which transcript comes next and how many of its
    # words a final already carried. A final lost in flight does not advance it.
    item: int = field(default=0, init=False)
    word: int = field(default=0, init=False)
    _server: Server | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The REST-style base URL a client is given (``stt.base_url``)."""
        return f"http://{self.host}:{self.port}"

    def finals(self) -> list[str]:
        """Transcripts of every non-empty final result sent, over all connections."""
        return [
            m["channel"]["alternatives"][0]["transcript"]
            for c in self.connections
            for m in c.sent_of("Results")
            if m["is_final"] and m["channel"]["alternatives"][0]["transcript"]
        ]

    async def start(self) -> FakeDeepgram:
        self._server = await serve(
            self._handle, self.host, self.port, process_request=self._check_handshake, ping_interval=None
        )
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self.port
        return self

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 10)
            except TimeoutError:  # a connection that will not finish closing: cut it
                for connection in list(server.connections):
                    connection.transport.abort()

    async def __aenter__(self) -> FakeDeepgram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handshake ------------------------------------------------------------------

    async def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.handshake_delay_ms:
            await asyncio.sleep(self.handshake_delay_ms / 1000)
        parts = urlsplit(request.path)
        if not parts.path.rstrip("/").endswith("/listen"):
            return self._rest(connection, parts.path.rstrip("/"), request.headers)
        query = dict(parse_qsl(parts.query))
        status, error = self._verdict(parts.path, request.headers, query)
        self.handshakes.append((status, query))
        if status == 101:
            return None
        body = json.dumps({"err_code": HTTPStatus(status).phrase, "err_msg": error, "request_id": str(uuid.uuid4())})
        response = connection.respond(HTTPStatus(status), body + "\n")
        response.headers["Content-Type"] = "application/json"
        response.headers["dg-error"] = error
        if status in (429, 503) and self.retry_after is not None:
            response.headers["Retry-After"] = f"{self.retry_after:g}"
        return response

    # --- the management REST endpoints (GET only) ------------------------------------

    def _rest(self, connection: ServerConnection, path: str, headers: Headers) -> Response:
        """``/v1/models`` (public), ``/v1/projects`` and ``/v1/projects/{id}/models`` (the key's)."""
        self.rest_requests.append(path)
        if path == "/v1/models":
            return _json(connection, HTTPStatus.OK, self.model_list())
        if headers.get("Authorization") != f"Token {self.api_key}":
            return _json(
                connection, HTTPStatus.UNAUTHORIZED, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
            )
        if path == "/v1/projects":
            return _json(
                connection, HTTPStatus.OK, {"projects": [{"project_id": PROJECT_ID, "name": "voicekit tests"}]}
            )
        if path == f"/v1/projects/{PROJECT_ID}/models":
            return _json(connection, HTTPStatus.OK, self.model_list())
        return _json(
            connection, HTTPStatus.NOT_FOUND, {"err_code": "NOT_FOUND", "err_msg": f"no such endpoint: {path}"}
        )

    def model_list(self) -> dict[str, Any]:
        """The models this fake takes, in the documented ``/v1/models`` shape (one per name in ``MODELS``)."""
        sample = json.loads(MODELS_SAMPLE.read_text())
        template = sample["stt"][0]
        stt = []
        for name in MODELS:
            if name.endswith("-general"):
                continue  # listed under its architecture's entry
            canonical = f"{name}-general" if f"{name}-general" in MODELS else name
            stt.append(
                {
                    **template,
                    "name": name.removeprefix("nova-") + ("-general" if canonical != name else ""),
                    "canonical_name": canonical,
                    "architecture": name,
                    "languages": sorted(MODELS[name] or ["en"]),
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, canonical)),
                }
            )
        return {"stt": stt, "tts": sample["tts"]}

    def _verdict(self, path: str, headers: Headers, query: dict[str, str]) -> tuple[int, str]:
        if path.rstrip("/") != "/v1/listen":
            return 404, f"no such endpoint: {path}"
        if self.handshake_statuses:
            return self.handshake_statuses.pop(0), "injected failure"
        if headers.get("Authorization") != f"Token {self.api_key}":
            return 401, "Invalid credentials."
        model = query.get("model", "base")
        if model not in MODELS:
            return 400, f"No such model: {model}"
        language = query.get("language", "en")
        allowed = MODELS[model]
        if allowed is not None and language not in allowed:
            return 400, f"No such model/language combination: {model}/{language}"
        if query.get("encoding") != "linear16":
            return 400, f"this fake only decodes linear16, got encoding={query.get('encoding')}"
        if not query.get("sample_rate", "").isdigit():
            return 400, "sample_rate is required with encoding=linear16"
        for key in ("interim_results", "vad_events", "smart_format", "punctuate"):
            if query.get(key, "false") not in ("true", "false"):
                return 400, f"{key} must be true or false"
        return 101, ""

    # --- connection ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = dict(parse_qsl(urlsplit(ws.request.path).query))
        log = ConnectionLog(len(self.connections), query, dict(ws.request.headers.raw_items()))
        self.connections.append(log)
        await _Session(self, ws, log).run()


class _Session:
    """One connection: detects speech in the audio and answers like the service."""

    def __init__(self, fake: FakeDeepgram, ws: ServerConnection, log: ConnectionLog) -> None:
        self.fake, self.ws, self.log = fake, ws, log
        q = log.params
        self.rate = int(q.get("sample_rate", "16000"))
        self.frame_bytes = int(self.rate * FRAME_S) * 2
        self.interims = q.get("interim_results") == "true"
        self.vad_events = q.get("vad_events") == "true"
        endpointing = q.get("endpointing", "10")
        self.speech_final = endpointing != "false"
        self.endpoint_s = (int(endpointing) if self.speech_final else 300) / 1000
        self.utterance_end_s = int(q["utterance_end_ms"]) / 1000 if "utterance_end_ms" in q and self.interims else None
        self.model = q.get("model", "base")
        self.request_id = str(uuid.uuid4())
        self.pending = b""
        self.t = 0.0  # stream time processed, seconds
        self.finalized = 0.0  # stream time covered by final results
        self.in_speech = False
        self.piece_start = 0.0  # start of the speech not yet in a final
        self.last_voice = self.last_interim = 0.0
        self.last_word_end: float | None = None
        self.utterance_end_due: float | None = None
        self.item, self.word = fake.item, fake.word  # this connection's planned position
        self.closing = False
        self.gone = False  # the injected drop happened: whatever still arrives is lost
        self.tasks: list[asyncio.Task[None]] = []
        self.sender: asyncio.Task[None] | None = None
        self.holding = False  # the sender waits out a delay before its next message
        self.last_activity = asyncio.get_running_loop().time()
        self.outbox: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

    async def run(self) -> None:
        self.sender = sender = asyncio.create_task(self._sender())
        watchdog = asyncio.create_task(self._watchdog())
        try:
            # Reading goes on while a close is under way: a server that stops reading
            # leaves the client's close frame stuck behind unread audio.
            async for message in self.ws:
                if self.gone:
                    continue
                if self.closing:
                    what = "audio" if isinstance(message, bytes) else message[:40]
                    self.log.violations.append(f"{what} after CloseStream")
                elif isinstance(message, bytes):
                    await self._audio(message)
                else:
                    self._control(message)
                await asyncio.sleep(0)  # answer while reading, as the service does
        except ConnectionClosed:
            pass
        finally:
            if self.tasks:  # a close still under way; a client that vanished may never finish it
                _, stuck = await asyncio.wait(self.tasks, timeout=5)
                for task in stuck:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
            watchdog.cancel()
            sender.cancel()
            await asyncio.gather(watchdog, sender, return_exceptions=True)
            if self.ws.close_code is not None and self.log.close_code is None:
                self.log.close_code, self.log.close_reason = self.ws.close_code, self.ws.close_reason or ""

    async def _audio(self, data: bytes) -> None:
        self.last_activity = asyncio.get_running_loop().time()
        self.log.received.append("audio")
        before = len(self.log.audio)
        self.log.audio += data
        fake = self.fake
        dropping = fake.drop_connection <= self.log.index < fake.drop_connection + fake.drop_count
        limit = fake.drop_after_bytes if dropping else None
        if limit is not None and len(self.log.audio) >= limit:
            self._process(data[: max(0, limit - before)])
            await self._drop()
            return
        self._process(data)

    def _control(self, text: str) -> None:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            self.log.violations.append(f"not a JSON object: {text[:80]!r}")
            return
        self.log.received.append(str(kind))
        if kind == "KeepAlive":
            self.last_activity = asyncio.get_running_loop().time()
        elif kind == "Finalize":
            self._finish(from_finalize=True)
        elif kind == "CloseStream":
            self.closing = True
            self._finish(from_finalize=False)
            self._queue(0, self._metadata())
            self.tasks.append(asyncio.create_task(self._close_when_sent()))
        else:
            self.log.violations.append(f"unknown control message {kind!r}")

    # --- speech detection ------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        self.pending += data
        n = len(self.pending) - len(self.pending) % self.frame_bytes
        if n == 0:
            return
        frames = np.frombuffer(self.pending[:n], dtype="<i2").astype(np.float64).reshape(-1, self.frame_bytes // 2)
        self.pending = self.pending[n:]
        for rms in np.sqrt((frames**2).mean(axis=1)):
            self._frame(bool(rms > self.fake.energy_threshold))

    def _frame(self, voiced: bool) -> None:
        t0, t1 = self.t, self.t + FRAME_S
        self.t = t1
        if voiced:
            self.last_voice = t1
            self.utterance_end_due = None
            if not self.in_speech:
                self.in_speech = True
                self.piece_start = self.last_interim = t0
                if self.vad_events:
                    self._queue(0, {"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(t0, 3)})
            split = self.fake.split_final_every_s
            if split is not None and t1 - self.piece_start >= split:
                self._final(self._revealed(t1), self.piece_start, t1, speech_final=False)
                self.piece_start = self.last_interim = t1
            elif self.interims and t1 - self.last_interim >= self.fake.interim_every_s:
                self.last_interim = t1
                words = self._revealed(t1)
                self._queue(self.fake.interim_delay_ms, self._results(words, self.piece_start, t1, is_final=False))
        elif self.in_speech:
            if t1 - self.last_voice >= self.endpoint_s:
                self._end_segment(t1, speech_final=self.speech_final, from_finalize=False)
        else:
            if self.utterance_end_due is not None and t1 >= self.utterance_end_due:
                self.utterance_end_due = None
                msg = {"channel": [0, 1], "last_word_end": round(self.last_word_end or 0.0, 3), "type": "UtteranceEnd"}
                self._queue(0, msg)
            if t1 - self.finalized >= self.fake.silence_final_s:
                self._final([], self.finalized, t1, speech_final=self.speech_final)

    def _remaining(self) -> list[str]:
        script = self.fake.script
        return script[self.item % len(script)].split()[self.word :] if script else []

    def _revealed(self, t: float) -> list[str]:
        remaining = self._remaining()
        return remaining[: min(len(remaining), 1 + int((t - self.piece_start) / WORD_S))]

    def _end_segment(self, t: float, *, speech_final: bool, from_finalize: bool) -> None:
        self._final(self._remaining(), self.piece_start, self.last_voice, t, speech_final, from_finalize, True)
        self.in_speech = False
        if self.utterance_end_s is not None:
            self.utterance_end_due = (self.last_word_end or t) + self.utterance_end_s

    def _final(
        self,
        words: list[str],
        speech_from: float,
        speech_to: float,
        cover_to: float | None = None,
        speech_final: bool = True,
        from_finalize: bool = False,
        ends_item: bool = False,
    ) -> None:
        msg = self._results(words, speech_from, speech_to, is_final=True, speech_final=speech_final)
        msg["from_finalize"] = from_finalize
        cover_to = speech_to if cover_to is None else cover_to
        msg["start"], msg["duration"] = round(self.finalized, 3), round(cover_to - self.finalized, 3)
        self.finalized = cover_to
        self.word += len(words)
        if ends_item:
            self.item, self.word = self.item + 1, 0
        msg["_cursor"] = (self.item, self.word)  # where the script stands once this is delivered
        if words:
            self.last_word_end = msg["channel"]["alternatives"][0]["words"][-1]["end"]
        self._queue(self.fake.final_delay_ms, msg)

    def _finish(self, *, from_finalize: bool) -> None:
        """Finalize / CloseStream: flush what was heard."""
        if self.in_speech:
            self._end_segment(self.t, speech_final=False, from_finalize=from_finalize)
        elif from_finalize and self.t > self.finalized:
            self._final([], self.finalized, self.t, speech_final=False, from_finalize=True)

    # --- messages --------------------------------------------------------------------

    def _results(
        self, words: list[str], t0: float, t1: float, *, is_final: bool, speech_final: bool = False
    ) -> dict[str, Any]:
        step = (t1 - t0) / max(len(words), 1)
        timed = [
            {
                "word": w.lower().strip(".,!?"),
                "start": round(t0 + i * step, 3),
                "end": round(t0 + (i + 1) * step, 3),
                "confidence": 0.98,
                "punctuated_word": w,
            }
            for i, w in enumerate(words)
        ]
        return {
            "channel": {
                "alternatives": [{"transcript": " ".join(words), "confidence": 0.98 if words else 0.0, "words": timed}]
            },
            "metadata": {
                "model_info": {"name": "2-general-nova", "version": "2024-01-18.26916", "arch": self.model},
                "request_id": self.request_id,
                "model_uuid": "c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c",
            },
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(t1 - t0, 3),
            "start": round(t0, 3),
            "is_final": is_final,
            "from_finalize": False,
            "speech_final": speech_final,
        }

    def _metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": hashlib.sha256(self.log.audio).hexdigest(),
            "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration": round(len(self.log.audio) / 2 / self.rate, 3),
            "channels": 1,
            "models": ["c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c"],
            "model_info": {"c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c": {"name": "2-general-nova", "arch": self.model}},
        }

    def _queue(self, delay_ms: float, msg: dict[str, Any]) -> None:
        self.outbox.put_nowait((asyncio.get_running_loop().time() + delay_ms / 1000, msg))

    async def _send(self, msg: dict[str, Any]) -> None:
        cursor = msg.pop("_cursor", None)
        await self.ws.send(json.dumps(msg))
        self.log.sent.append(msg)
        if cursor is not None:
            self.fake.item, self.fake.word = cursor

    async def _sender(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, msg = await self.outbox.get()
            if due > loop.time():
                self.holding = True
                await asyncio.sleep(due - loop.time())
                self.holding = False
            try:
                await self._send(msg)
            except ConnectionClosed:
                # the client went away: nothing more can be sent, so release whoever waits on the outbox
                self.outbox.task_done()
                while not self.outbox.empty():
                    self.outbox.get_nowait()
                    self.outbox.task_done()
                return
            self.outbox.task_done()

    async def _close_when_sent(self) -> None:
        """After CloseStream: the last results and Metadata go out (delays included), then 1000."""
        await self.outbox.join()
        self.log.close_code = 1000
        await self.ws.close(1000, "")

    async def _drop(self) -> None:
        """The injected fault: results already due go out in order, the rest is lost, the socket goes."""
        loop = asyncio.get_running_loop()
        assert self.sender is not None
        self.sender.cancel()
        await asyncio.gather(self.sender, return_exceptions=True)
        while not self.holding and not self.outbox.empty():
            due, msg = self.outbox.get_nowait()
            if due > loop.time():
                break
            await self._send(msg)
        self.gone = True
        self.log.close_code = self.fake.drop_code or 1006
        if self.fake.drop_code is None:
            self.ws.transport.abort()
        else:
            self.tasks.append(
                asyncio.create_task(self.ws.close(self.fake.drop_code, "NET-0000: injected network error"))
            )

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            left = self.last_activity + self.fake.idle_timeout_s - loop.time()
            if left <= 0 and not self.closing:
                self.log.close_code, self.log.close_reason = 1011, IDLE_REASON
                await self.ws.close(1011, IDLE_REASON[:120])
                return
            await asyncio.sleep(max(left, 0.01))


async def _serve_forever(fake: FakeDeepgram) -> None:
    await fake.start()
    print(f"fake deepgram listening on {fake.url}", flush=True)  # a benchmark waits for this line
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """Every init field of :class:`FakeDeepgram` is an option: ``--idle-timeout-s 5 --script "hi" --script "bye"``."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.deepgram", description=__doc__.splitlines()[0])
    for f in fields(FakeDeepgram):
        if f.init:
            kind = str if "str" in str(f.type) else int if "int" in str(f.type) else float
            many = str(f.type).startswith("list")
            parser.add_argument("--" + f.name.replace("_", "-"), type=kind, action="append" if many else "store")
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    asyncio.run(_serve_forever(FakeDeepgram(**given)))


def _json(connection: ServerConnection, status: HTTPStatus, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body))
    response.headers["Content-Type"] = "application/json"
    return response


if __name__ == "__main__":
    main()
