"""A local Gemini Live service: a TLS websocket that speaks ``BidiGenerateContent``.

The SDK always connects with ``wss://``, so the fake serves TLS with a self-signed
certificate made at start (:func:`tests.fakes.tls.make_certificate`); clients
trust it through ``SSL_CERT_FILE`` or an ``ssl`` context.

What it does, on ``/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent``:

* ``setup`` → ``setupComplete`` (JSON in binary frames, as the real service sends it),
  then a ``sessionResumptionUpdate`` when resumption is on; a ``setup`` with a handle
  it never issued is closed with 1007 (invalid argument). Resumed sessions keep their
  conversation (turn counter, history).
* ``realtime_input`` audio (base64 in either alphabet, keys in snake_case or camelCase)
  is recorded; an energy detector finds the user's speech in it (or ``activityStart`` /
  ``activityEnd`` when automatic detection is off). During and after the speech it
  sends the scripted ``inputTranscription``, then the model's turn: 24 kHz tone chunks
  in ``modelTurn.parts[].inlineData`` with ``outputTranscription`` pieces (or text parts
  for a TEXT session), ``generationComplete``, ``turnComplete`` and a new handle.
* User speech (or text) while the model is speaking cuts its turn: ``interrupted``
  (then ``turnComplete``), and no more audio of that turn.
* A resumption handle stands for the conversation as it was when the handle was sent
  (the service's documented meaning): a connection resumed with it knows the turns
  finished before it, and nothing the client sent after it.
* Function calling (``setup.tools[].functionDeclarations``): on user words that a
  :class:`~tests.fakes.gemini_tools.ToolPlan` fits (or that name a declared function), the
  model says the plan's words, then sends ``toolCall {functionCalls: [{id, name, args}]}``
  and waits (its turn stays open; ``turn_complete_after_tool_call`` closes it instead). A
  ``tool_response {functionResponses: [{id, name, response}]}`` (either casing) for the open
  calls makes it answer "The tool said: ..." in the same turn; a response to a call that is
  not open is a client error (``errors``). New user speech or text while calls are open
  withdraws them: ``toolCallCancellation {ids}``, then ``interrupted`` (the turn ends). A
  handle sent right after the ``toolCall`` (``handle_after_tool_call``) stands for a
  conversation whose calls are open: a connection resumed with it takes their responses.
* Faults: a bad key (1007 "API key not valid..."), an unknown model (1008 "... is not
  found for API version ..."), :meth:`FakeGeminiLive.fail_next` (e.g. 1011 quota),
  :meth:`FakeGeminiLive.refuse_next` (an HTTP refusal of the handshake, e.g. 429 with a
  ``retryDelay``), :meth:`FakeGeminiLive.go_away`, :meth:`FakeGeminiLive.drop`, and
  :meth:`FakeGeminiLive.break_next_turn` (``goAway`` and close, a drop, or silence right
  after the user's turn, or after a few chunks of the reply). Close reasons are cut to
  123 bytes like the real ones. Latency of each step is set by :class:`Latency`.

Standalone: ``python -m tests.fakes.gemini_live --port 8443 --cert-dir /tmp/fake-cert``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import ssl
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import numpy as np
import websockets
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.fakes.gemini_models import list_page, model_resource
from tests.fakes.gemini_tools import ToolPlan, answer_for, declared_functions, plan_for
from tests.fakes.tls import make_certificate

DEFAULT_KEY = "test-live-key"
MODELS = (
    "gemini-3.8-live",
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-3.1-flash-live-preview",
    "gemini-live-2.5-flash-preview",
)
LIST_PATH = re.compile(r"^/v\w+/models$")
PATH = re.compile(r"^/ws/google\.ai\.generativelanguage\.(v\w+)\.GenerativeService\.BidiGenerateContent$")
BAD_KEY_REASON = "API key not valid. Please pass a valid API key."
BAD_ARGUMENT_REASON = "Request contains an invalid argument."
QUOTA_REASON = "You exceeded your current quota, please check your plan and billing details."
DEADLINE_REASON = "Deadline expired before operation could complete."


@dataclass(frozen=True)
class Exchange:
    """One scripted turn: what the fake hears the user say, and what the model answers.

    ``reply`` may contain ``{turn}``: the number of the turn in the conversation, which
    proves that a resumed session kept its context.
    """

    user: str
    reply: str


@dataclass
class Latency:
    """Seconds the fake waits at each step."""

    setup_s: float = 0.0
    transcript_s: float = 0.0  # before each input transcription piece after the speech
    first_reply_s: float = 0.02  # end of the user's turn → first model chunk
    chunk_s: float = 0.005  # between model chunks


@dataclass
class Conversation:
    """What a session remembers; a handle keeps a copy, and a resumed connection starts from it."""

    turns: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)
    open_calls: dict[str, str] = field(default_factory=dict)  # calls the model waits on: id → name
    responses: list[dict[str, Any]] = field(default_factory=list)  # responses to them so far
    turn_open: bool = False  # the model's turn waits for tool responses (no turnComplete yet)
    spoke_first: bool = False  # the model said something before its calls

    def copy(self) -> Conversation:
        return Conversation(
            self.turns,
            list(self.history),
            dict(self.open_calls),
            list(self.responses),
            self.turn_open,
            self.spoke_first,
        )


@dataclass(frozen=True)
class TurnFault:
    """What goes wrong with the next user turn (see :meth:`FakeGeminiLive.break_next_turn`)."""

    action: Literal["go_away", "drop", "stall"]
    after_chunks: int = 0  # pieces of the reply sent before it happens (0: before any)
    time_left_s: float = 1.0  # go_away: when the service closes the connection


@dataclass
class Reply:
    """One model turn the fake started: on which connection, to what, and how far it got."""

    connection: int
    heard: str
    text: str
    chunks: int = 0
    completed: bool = False


@dataclass
class Connection:
    """One websocket connection as the fake saw it."""

    index: int
    path: str
    version: str
    headers: dict[str, str]
    setup: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    handles: list[str] = field(default_factory=list)
    audio_at_handle: list[int] = field(default_factory=list)  # len(audio) when each handle was sent
    interrupted: int = 0
    closed: tuple[int, str] | None = None
    ws: ServerConnection | None = field(default=None, repr=False)


class FakeGeminiLive:
    """The fake service; ``await start()``, point ``base_url`` at it, inspect what it got."""

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = (DEFAULT_KEY,),
        models: tuple[str, ...] = MODELS,
        script: tuple[Exchange, ...] = (Exchange("hello there", "Hi! This is reply {turn}."),),
        latency: Latency | None = None,
        reply_ms: int = 600,
        chunk_ms: int = 40,
        energy_threshold: float = 500.0,
        speech_start_ms: int = 60,
        silence_ms: int = 300,
        word_every_ms: int = 300,
        voice_activity: bool = False,
        turn_complete_after_interrupt: bool = True,
        tool_plans: tuple[ToolPlan, ...] = (),
        turn_complete_after_tool_call: bool = False,
        handle_after_tool_call: bool = True,
    ) -> None:
        self.api_keys, self.models, self.script = api_keys, models, script
        self.latency = latency or Latency()
        self.reply_ms, self.chunk_ms = reply_ms, chunk_ms
        self.energy_threshold = energy_threshold
        self.speech_start_ms, self.silence_ms, self.word_every_ms = speech_start_ms, silence_ms, word_every_ms
        self.voice_activity = voice_activity
        self.turn_complete_after_interrupt = turn_complete_after_interrupt
        self.tool_plans = tool_plans
        self.turn_complete_after_tool_call = turn_complete_after_tool_call
        self.handle_after_tool_call = handle_after_tool_call
        self.tool_calls: list[tuple[int, dict[str, Any]]] = []  # (connection, functionCall) of every call made
        self.tool_responses: list[tuple[int, dict[str, Any]]] = []  # (connection, functionResponse) received
        self.cancellations: list[tuple[int, list[str]]] = []  # (connection, ids) of toolCallCancellation sent
        self.connections: list[Connection] = []
        self.audio = bytearray()  # every audio byte received, in order, over all connections
        self.errors: list[str] = []  # protocol mistakes of the client
        self.handles: dict[str, Conversation] = {}
        self.replies: list[Reply] = []  # every model turn started, over all connections
        self.refused: list[int] = []  # HTTP statuses of refused handshakes
        self._fail_next: list[tuple[int, str]] = []
        self._refuse_next: list[Response] = []
        self._turn_faults: list[TurnFault] = []
        self._server: Any = None
        self.cert_file: Path | None = None
        self.port = 0

    # --- control --------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, cert_dir: str | Path | None = None) -> None:
        cert_dir = Path(cert_dir or tempfile.mkdtemp(prefix="fake-gemini-live-"))
        self.cert_file, key_file = make_certificate(cert_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, key_file)
        self._server = await websockets.serve(
            self._handle, host, port, ssl=context, process_request=self._check_path, max_size=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def fail_next(self, code: int = 1011, reason: str = QUOTA_REASON) -> None:
        """Close the next connection with ``code`` right after its ``setup``."""
        self._fail_next.append((code, reason))

    def refuse_next(self, status: int = 429, body: Any = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next handshake with an HTTP ``status`` (``body``: JSON when not bytes)."""
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        all_headers = Headers({"Content-Type": "application/json", **(headers or {})})
        self._refuse_next.append(Response(status, "Refused", all_headers, data))

    def break_next_turn(
        self, action: Literal["go_away", "drop", "stall"], *, after_chunks: int = 0, time_left_s: float = 1.0
    ) -> None:
        """Break the next user turn (typed text, or speech once it ends) on its connection.

        ``go_away``: send ``goAway`` and close the connection ``time_left_s`` later;
        ``drop``: cut the connection; ``stall``: say nothing more on it. With
        ``after_chunks=0`` this happens before any of the reply (the turn was heard and
        never answered); else after that many pieces of it. Faults queue up, one per turn.
        """
        self._turn_faults.append(TurnFault(action, after_chunks, time_left_s))

    async def go_away(self, time_left_s: float = 2.0) -> None:
        """Send ``goAway`` on every open connection and close each when its time is up."""
        for conn in self._open():
            await self._go_away(conn, time_left_s)

    async def _go_away(self, conn: Connection, time_left_s: float) -> None:
        await self._send(conn, {"goAway": {"timeLeft": f"{time_left_s:g}s"}})
        asyncio.get_running_loop().call_later(
            time_left_s, lambda: asyncio.ensure_future(self._close(conn, 1011, DEADLINE_REASON))
        )

    async def drop(self) -> None:
        """Cut every open connection without a close frame (the client sees 1006)."""
        for conn in self._open():
            self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        assert conn.ws is not None
        conn.closed = (1006, "dropped")
        conn.ws.transport.abort()

    async def _break(self, conn: Connection, fault: TurnFault) -> None:
        if fault.action == "go_away":
            await self._go_away(conn, fault.time_left_s)
        elif fault.action == "drop":
            self._drop(conn)

    def _open(self) -> list[Connection]:
        return [c for c in self.connections if c.ws is not None and c.closed is None]

    # --- protocol -------------------------------------------------------------------------

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if LIST_PATH.match(path):
            return self._list_models(request, dict(parse_qsl(query)))
        if PATH.match(path) is None:
            return Response(404, "Not Found", Headers({"Content-Type": "text/plain"}), b"Not Found")
        if self._refuse_next:
            response = self._refuse_next.pop(0)
            self.refused.append(response.status_code)
            return response
        return None

    def _list_models(self, request: Request, query: dict[str, str]) -> Response:
        """``models.list`` over plain HTTPS on the same port, as the service answers it."""
        headers = Headers({"Content-Type": "application/json"})
        if request.headers.get("x-goog-api-key") not in self.api_keys:
            error = {"error": {"code": 400, "message": BAD_KEY_REASON, "status": "INVALID_ARGUMENT"}}
            return Response(400, "Bad Request", headers, json.dumps(error).encode())
        catalog = [model_resource(m, ("bidiGenerateContent",)) for m in self.models]
        catalog.append(model_resource("gemini-3.8-flash", ("generateContent", "countTokens")))
        return Response(200, "OK", headers, json.dumps(list_page(catalog, query)).encode())

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        path = request.path
        conn = Connection(
            index=len(self.connections),
            path=path,
            version=PATH.match(path.split("?")[0]).group(1),  # type: ignore[union-attr]
            headers={k.lower(): v for k, v in request.headers.raw_items()},
            ws=ws,
        )
        self.connections.append(conn)
        session = _Session(self, conn)
        try:
            await session.run()
        except websockets.ConnectionClosed:
            pass
        finally:
            session.cancel_reply()
            if conn.closed is None:
                conn.closed = (ws.close_code or 1006, ws.close_reason or "")

    async def _send(self, conn: Connection, message: dict[str, Any]) -> None:
        assert conn.ws is not None
        await conn.ws.send(json.dumps(message).encode())

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        if conn.ws is None or conn.closed is not None:
            return
        reason = reason.encode()[:123].decode("utf-8", "ignore")  # the protocol's limit; the service cuts too
        conn.closed = (code, reason)
        await conn.ws.close(code, reason)


class _Session:
    """The state of one connection: speech detection and the model's turn."""

    def __init__(self, fake: FakeGeminiLive, conn: Connection) -> None:
        self.fake, self.conn = fake, conn
        self.conversation = Conversation()
        self.client_activity = False
        self.text_replies = False
        self.initial_history = False
        self.resumption = False
        self.declared: dict[str, Any] = {}
        self._pending = b""
        self._loud = 0
        self._quiet = 0
        self._speaking = False
        self._speech_frames = 0
        self._words_sent = 0
        self._reply: asyncio.Task[None] | None = None

    async def run(self) -> None:
        fake, conn = self.fake, self.conn
        setup = json.loads(await conn.ws.recv())  # type: ignore[union-attr]
        conn.messages.append(setup)
        if fake.latency.setup_s:
            await asyncio.sleep(fake.latency.setup_s)
        if await self._refuse(setup.get("setup")):
            return
        await fake._send(conn, {"setupComplete": {}})
        if self.resumption:
            await self._new_handle()
        async for raw in conn.ws:  # type: ignore[union-attr]
            message = json.loads(raw)
            conn.messages.append(message)
            await self._on_message(message)

    async def _refuse(self, setup: dict[str, Any] | None) -> bool:
        fake, conn = self.fake, self.conn
        conn.setup = setup if isinstance(setup, dict) else {}
        if not isinstance(setup, dict):
            await fake._close(conn, 1007, "Invalid JSON payload received. Expected a setup message.")
            return True
        query_key = re.search(r"[?&]key=([^&]+)", conn.path)
        key = conn.headers.get("x-goog-api-key") or (query_key.group(1) if query_key else None)
        if key not in fake.api_keys:
            await fake._close(conn, 1007, BAD_KEY_REASON)
            return True
        if fake._fail_next:
            await fake._close(conn, *fake._fail_next.pop(0))
            return True
        model = str(setup.get("model", ""))
        if model.removeprefix("models/") not in fake.models:
            await fake._close(
                conn,
                1008,
                f"{model} is not found for API version {conn.version}, or is not supported for "
                "bidiGenerateContent. Call ListModels to see the list of available models and their supported methods.",
            )
            return True
        self.declared = declared_functions(_get(setup, "tools"))
        generation = _get(setup, "generation_config") or {}
        modalities = _get(generation, "response_modalities") or _get(setup, "response_modalities") or ["AUDIO"]
        self.text_replies = "TEXT" in [str(m).upper() for m in modalities]
        detection = _get(_get(setup, "realtime_input_config") or {}, "automatic_activity_detection") or {}
        self.client_activity = bool(_get(detection, "disabled"))
        self.initial_history = bool(_get(_get(setup, "history_config") or {}, "initial_history_in_client_content"))
        resumption = _get(setup, "session_resumption")
        self.resumption = resumption is not None
        handle = _get(resumption or {}, "handle")
        if handle:
            if handle not in fake.handles:
                await fake._close(conn, 1007, BAD_ARGUMENT_REASON)
                return True
            conn.resumed_from = handle
            self.conversation = fake.handles[handle].copy()
            self.initial_history = False
        return False

    async def _on_message(self, message: dict[str, Any]) -> None:
        realtime = _get(message, "realtime_input")
        content = _get(message, "client_content")
        tool_response = _get(message, "tool_response")
        if tool_response is not None:
            await self._on_tool_response(_get(tool_response, "function_responses") or [])
        elif realtime is not None:
            for blob in [_get(realtime, "audio"), *(_get(realtime, "media_chunks") or [])]:
                if blob:
                    await self._on_audio(blob)
            if _get(realtime, "activity_start") is not None:
                await self._speech_started()
            if _get(realtime, "activity_end") is not None:
                await self._speech_ended()
            if _get(realtime, "audio_stream_end") and self._speaking:
                await self._speech_ended()
            if _get(realtime, "text"):
                await self._user_text(str(_get(realtime, "text")))
        elif content is not None:
            turns = _get(content, "turns") or []
            texts = [(t.get("role", "user"), " ".join(p.get("text", "") for p in t.get("parts", []))) for t in turns]
            complete = bool(_get(content, "turn_complete"))
            if self.initial_history:
                self.conversation.history.extend(texts)
                self.initial_history = not complete  # the history ends; no model call for it
            elif complete:
                await self._user_text(" ".join(text for role, text in texts if role == "user"))

    async def _on_audio(self, blob: dict[str, Any]) -> None:
        mime = str(_get(blob, "mime_type") or "")
        if "rate=16000" not in mime:
            self.fake.errors.append(f"audio with MIME type {mime!r}")
        data = str(blob.get("data", ""))
        pcm = base64.b64decode(data.replace("-", "+").replace("_", "/") + "=" * (-len(data) % 4))
        self.conn.audio.extend(pcm)
        self.fake.audio.extend(pcm)
        if self.client_activity:
            return
        self._pending += pcm
        frame = 640  # 20 ms
        while len(self._pending) >= frame:
            chunk, self._pending = self._pending[:frame], self._pending[frame:]
            await self._detect(chunk)

    async def _detect(self, frame: bytes) -> None:
        samples = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
        loud = float(np.sqrt(np.mean(samples * samples))) > self.fake.energy_threshold
        if not self._speaking:
            self._loud = self._loud + 1 if loud else 0
            if self._loud * 20 >= self.fake.speech_start_ms:
                await self._speech_started()
            return
        self._speech_frames += 1
        self._quiet = 0 if loud else self._quiet + 1
        if self._speech_frames * 20 >= (self._words_sent + 1) * self.fake.word_every_ms:
            await self._send_words(1)
        if self._quiet * 20 >= self.fake.silence_ms:
            await self._speech_ended()

    async def _speech_started(self) -> None:
        if self._speaking:
            return
        self._speaking, self._loud, self._quiet, self._speech_frames, self._words_sent = True, 0, 0, 0, 0
        await self._interrupt()
        if self.fake.voice_activity:
            await self.fake._send(self.conn, {"voiceActivity": {"voiceActivityType": "ACTIVITY_START"}})

    async def _speech_ended(self) -> None:
        if not self._speaking:
            return
        self._speaking = False
        if self.fake.voice_activity:
            await self.fake._send(self.conn, {"voiceActivity": {"voiceActivityType": "ACTIVITY_END"}})
        words = self._exchange().user.split()
        await self._send_words(len(words), final=True)
        self._start_reply(self._exchange().user)

    async def _send_words(self, count: int, final: bool = False) -> None:
        words = self._exchange().user.split()
        while self._words_sent < min(count + self._words_sent, len(words)):
            if final and self.fake.latency.transcript_s:
                await asyncio.sleep(self.fake.latency.transcript_s)
            piece = (" " if self._words_sent else "") + words[self._words_sent]
            self._words_sent += 1
            transcript: dict[str, Any] = {"text": piece}
            if final and self._words_sent == len(words):
                transcript["finished"] = True
            await self.fake._send(self.conn, {"serverContent": {"inputTranscription": transcript}})

    async def _user_text(self, text: str) -> None:
        await self._interrupt()
        self._start_reply(text)

    def _exchange(self) -> Exchange:
        return self._exchange_for(self.conversation.turns + 1)

    def _exchange_for(self, turn: int) -> Exchange:
        return self.fake.script[(turn - 1) % len(self.fake.script)]

    # --- the model's turn -------------------------------------------------------------------

    def _start_reply(self, heard: str) -> None:
        self.cancel_reply()
        fault = self.fake._turn_faults.pop(0) if self.fake._turn_faults else None
        if fault is not None and not fault.after_chunks:
            self._reply = asyncio.ensure_future(self.fake._break(self.conn, fault))
            return
        plan = plan_for(heard, self.declared, self.fake.tool_plans) if self.declared else None
        if plan is not None:
            self._reply = asyncio.ensure_future(self._call(heard, plan))
            return
        self._reply = asyncio.ensure_future(self._speak(heard, fault))

    def cancel_reply(self) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()

    async def _interrupt(self) -> None:
        running = self._reply is not None and not self._reply.done()
        if running:
            self._reply.cancel()  # type: ignore[union-attr]
        conversation = self.conversation
        withdrawn = list(conversation.open_calls)
        if withdrawn:
            conversation.open_calls.clear()
            conversation.responses.clear()
            self.fake.cancellations.append((self.conn.index, withdrawn))
            await self.fake._send(self.conn, {"toolCallCancellation": {"ids": withdrawn}})
        if not (running or conversation.turn_open):
            return
        conversation.turn_open = False
        self.conn.interrupted += 1
        await self.fake._send(self.conn, {"serverContent": {"interrupted": True}})
        if self.fake.turn_complete_after_interrupt:
            await self.fake._send(self.conn, {"serverContent": {"turnComplete": True}})

    async def _speak(self, heard: str, fault: TurnFault | None = None, *, answer: str | None = None) -> None:
        """The model's turn to ``heard`` (the script's next reply), or the rest of a turn that
        waited for tool responses (``answer``)."""
        fake, conn = self.fake, self.conn
        conversation = self.conversation
        if answer is None:
            conversation.turns += 1
            conversation.history.append(("user", heard))
            text = self._exchange_for(conversation.turns).reply.format(turn=conversation.turns)
        else:
            text = answer
        reply = Reply(conn.index, heard, text)
        fake.replies.append(reply)
        await asyncio.sleep(fake.latency.first_reply_s)
        if not await self._say(reply, fault):
            return
        conversation.history.append(("model", reply.text))
        conversation.turn_open = False
        await fake._send(conn, {"serverContent": {"generationComplete": True}})
        await fake._send(conn, {"serverContent": {"turnComplete": True}})
        reply.completed = True
        if self.resumption:
            await self._new_handle()

    async def _say(self, reply: Reply, fault: TurnFault | None = None) -> bool:
        """Send ``reply.text`` as model output (audio with transcripts, or text parts); False
        when ``fault`` broke the connection on the way."""
        fake, conn = self.fake, self.conn
        pieces = _pieces(reply.text)
        if self.text_replies:
            messages = [[{"modelTurn": {"parts": [{"text": piece}]}}] for piece in pieces]
        else:
            chunks = _tone(fake.reply_ms, fake.chunk_ms)
            messages = []
            for i, chunk in enumerate(chunks):
                part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(chunk).decode()}}
                said = pieces[i * len(pieces) // len(chunks) : (i + 1) * len(pieces) // len(chunks)]
                transcripts = [{"outputTranscription": {"text": piece}} for piece in said]
                messages.append([{"modelTurn": {"parts": [part]}}, *transcripts])
        for message in messages:
            if fault is not None and reply.chunks == fault.after_chunks:
                await fake._break(conn, fault)
                return False
            for content in message:
                await fake._send(conn, {"serverContent": content})
            reply.chunks += 1
            await asyncio.sleep(fake.latency.chunk_s)
        return True

    async def _call(self, heard: str, plan: ToolPlan) -> None:
        """The model's turn that calls functions: the plan's words, then ``toolCall``; it waits."""
        fake, conn, conversation = self.fake, self.conn, self.conversation
        conversation.turns += 1
        conversation.history.append(("user", heard))
        conversation.turn_open = True
        await asyncio.sleep(fake.latency.first_reply_s)
        conversation.spoke_first = bool(plan.say)
        if plan.say:
            await self._say(Reply(conn.index, heard, plan.say))
        calls = []
        for call in plan.calls:
            calls.append(
                {"id": call.id or f"function-call-{uuid.uuid4().hex[:16]}", "name": call.name, "args": dict(call.args)}
            )
        conversation.open_calls = {c["id"]: c["name"] for c in calls}
        conversation.responses = []
        fake.tool_calls += [(conn.index, c) for c in calls]
        await fake._send(conn, {"toolCall": {"functionCalls": calls}})
        if fake.turn_complete_after_tool_call:
            conversation.turn_open = False
            await fake._send(conn, {"serverContent": {"turnComplete": True}})
        if self.resumption and fake.handle_after_tool_call:
            await self._new_handle()

    async def _on_tool_response(self, responses: list[dict[str, Any]]) -> None:
        conversation = self.conversation
        for response in responses:
            self.fake.tool_responses.append((self.conn.index, response))
            name = conversation.open_calls.pop(str(response.get("id")), None)
            if name is None:
                self.fake.errors.append(f"toolResponse for a call that is not open: {response.get('id')}")
            elif name != response.get("name"):
                self.fake.errors.append(f"toolResponse names {response.get('name')!r} for a call of {name!r}")
            else:
                conversation.responses.append(response.get("response") or {})
        if conversation.responses and not conversation.open_calls:
            answer = (" " if conversation.spoke_first else "") + answer_for(conversation.responses)
            conversation.responses = []
            self.cancel_reply()
            self._reply = asyncio.ensure_future(self._speak("(function responses)", answer=answer))

    async def _new_handle(self) -> None:
        handle = uuid.uuid4().hex
        self.fake.handles[handle] = self.conversation.copy()
        self.conn.handles.append(handle)
        self.conn.audio_at_handle.append(len(self.conn.audio))
        await self.fake._send(self.conn, {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})


def _get(obj: dict[str, Any], snake: str) -> Any:
    """A key in snake_case or camelCase (the SDK mixes both below the top level)."""
    head, *rest = snake.split("_")
    return obj[snake] if snake in obj else obj.get(head + "".join(w.title() for w in rest))


def _pieces(text: str) -> list[str]:
    """Text in word-sized pieces that join back exactly (as transcripts stream)."""
    return re.findall(r"\s*\S+", text) or [text]


def _tone(total_ms: int, chunk_ms: int, rate: int = 24000, hz: float = 220.0) -> list[bytes]:
    n = int(rate * total_ms / 1000)
    wave = (np.sin(2 * np.pi * hz * np.arange(n) / rate) * 6000).astype("<i2").tobytes()
    step = int(rate * chunk_ms / 1000) * 2
    return [wave[i : i + step] for i in range(0, len(wave), step)]


async def _serve(args: argparse.Namespace) -> None:
    script = tuple(Exchange(*s.split("=>", 1)) for s in args.script) or (Exchange("hello there", "Hi! Reply {turn}."),)
    fake = FakeGeminiLive(api_keys=tuple(args.api_key), script=script)
    await fake.start(args.host, args.port, args.cert_dir)
    print(f"fake Gemini Live on {fake.base_url} (trust {fake.cert_file}; key {args.api_key[0]})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert-dir", required=True, help="where the self-signed cert.pem/key.pem go")
    parser.add_argument("--api-key", action="append", default=[], help=f"accepted key (default {DEFAULT_KEY})")
    parser.add_argument("--script", action="append", default=[], help='a turn, "what the user says=>the reply"')
    args = parser.parse_args()
    args.api_key = args.api_key or [DEFAULT_KEY]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
