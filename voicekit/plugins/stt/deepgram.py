"""Deepgram live speech-to-text (``stt: {use: deepgram}``) over the SDK's async websocket client.

One :class:`DeepgramStream` is one live transcription. It sends PCM as it comes,
``KeepAlive`` while no audio flows, and ``Finalize`` then ``CloseStream`` at the end
of input. Deepgram's results arrive as segments (``is_final``) ended by
``speech_final`` or ``UtteranceEnd``; they are joined into one :class:`Final` per
utterance. A dropped socket is reopened and the audio the service has not yet
finalized is sent again, so no words are lost and none are repeated.

Who retries: the stream reconnects by itself, because only it knows which audio to send
again, and it waits between tries as the role's ``retry:`` policy says
(:class:`~voicekit.engine.retry.Retrier` over ``context.retry``). A connection that
brought a final result resets the count; the service closing an idle stream (NET-0001)
is not a failure and is reopened at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from voicekit.clock import now
from voicekit.engine.retry import Retrier, retry_after_seconds
from voicekit.errors import AuthError, BackendError
from voicekit.events import Final, Interim, SpeechStarted, STTEvent, UtteranceEnd
from voicekit.options import CloudOptions
from voicekit.roles import STT, Capabilities, ModelInfo, STTStream
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.deepgram.com"
_SOCKET_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_REST_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_RESEND_CHUNK = 6400  # 200 ms at 16 kHz: the size of re-sent backlog frames


def service_urls(base_url: str | None) -> tuple[str, str]:
    """The REST base and the websocket base for ``base_url`` (http(s):// or ws(s)://)."""
    parts = urlsplit((base_url or DEFAULT_BASE_URL).rstrip("/"))
    if parts.scheme not in _SOCKET_SCHEME or not parts.netloc:
        raise ValueError(f"base_url must look like https://api.deepgram.com, got {base_url!r}")
    rest = urlunsplit((_REST_SCHEME[parts.scheme], parts.netloc, parts.path, "", ""))
    socket = urlunsplit((_SOCKET_SCHEME[parts.scheme], parts.netloc, parts.path, "", ""))
    return rest, socket


# --- messages ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeepgramMessage:
    """One server message, reduced to what a conversation needs."""

    type: str
    transcript: str = ""
    confidence: float | None = None
    is_final: bool = False
    speech_final: bool = False
    from_finalize: bool = False
    start: float = 0.0
    duration: float = 0.0
    language: str | None = None  # detected language, when the service reports one
    timestamp: float | None = None  # SpeechStarted
    last_word_end: float | None = None  # UtteranceEnd
    description: str = ""  # Error

    @property
    def end(self) -> float:
        """Stream time (seconds) up to which this result covers the audio."""
        return self.start + self.duration


def _as_dict(message: object) -> Mapping[str, Any]:
    if isinstance(message, Mapping):
        return message
    if isinstance(message, (str, bytes, bytearray)):
        data = json.loads(message)
        if not isinstance(data, Mapping):
            raise ValueError("a Deepgram message is a JSON object")
        return data
    for dump in ("model_dump", "dict"):  # the SDK's typed messages (pydantic v2, then v1)
        method = getattr(message, dump, None)
        if callable(method):
            return method()  # type: ignore[no-any-return]
    raise TypeError(f"not a Deepgram message: {type(message).__name__}")


def parse_message(message: object) -> DeepgramMessage:
    """Read one server message: an SDK typed message, a dict, or raw JSON text."""
    data = _as_dict(message)
    kind = str(data.get("type") or "")
    if kind == "Results":
        alternatives = (data.get("channel") or {}).get("alternatives") or [{}]
        best = alternatives[0] or {}
        languages = best.get("languages") or ()
        return DeepgramMessage(
            type=kind,
            transcript=str(best.get("transcript") or "").strip(),
            confidence=best.get("confidence"),
            is_final=bool(data.get("is_final")),
            speech_final=bool(data.get("speech_final")),
            from_finalize=bool(data.get("from_finalize")),
            start=float(data.get("start") or 0.0),
            duration=float(data.get("duration") or 0.0),
            language=languages[0] if languages else None,
        )
    if kind == "SpeechStarted":
        return DeepgramMessage(type=kind, timestamp=float(data.get("timestamp") or 0.0))
    if kind == "UtteranceEnd":
        return DeepgramMessage(type=kind, last_word_end=float(data.get("last_word_end") or 0.0))
    if kind == "Error":
        text = data.get("description") or data.get("message") or data.get("variant") or "unknown error"
        return DeepgramMessage(type=kind, description=str(text))
    return DeepgramMessage(type=kind or "Unknown")


class UtteranceAssembler:
    """Joins Deepgram's segment results into exactly one :class:`Final` per utterance.

    ``is_final`` segments are kept until ``speech_final``, ``from_finalize`` or an
    ``UtteranceEnd`` closes the utterance. Interim text is the utterance so far.
    """

    def __init__(self, language: str | None = None) -> None:
        self.language = None if language == "multi" else language
        self._parts: list[str] = []
        self._confidences: list[float] = []
        self._detected: str | None = None

    def feed(self, msg: DeepgramMessage) -> list[STTEvent]:
        if msg.type == "SpeechStarted":
            return [SpeechStarted(source="stt")]
        if msg.type == "UtteranceEnd":
            return [*self.flush(), UtteranceEnd()]
        if msg.type != "Results":
            return []
        if not msg.is_final:
            return [Interim(" ".join([*self._parts, msg.transcript]))] if msg.transcript else []
        if msg.transcript:
            self._parts.append(msg.transcript)
            if msg.confidence is not None:
                self._confidences.append(float(msg.confidence))
            self._detected = msg.language or self._detected
        return self.flush() if msg.speech_final or msg.from_finalize else []

    def flush(self) -> list[STTEvent]:
        """The Final of what has been finalized so far, if anything."""
        if not self._parts:
            return []
        conf = sum(self._confidences) / len(self._confidences) if self._confidences else None
        final = Final(" ".join(self._parts), confidence=conf, language=self._detected or self.language)
        self._parts, self._confidences, self._detected = [], [], None
        return [final]


# --- backend ------------------------------------------------------------------------


class _Dropped(Exception):
    """The service ended the stream before we asked it to."""


def _flag(value: bool) -> str:
    return "true" if value else "false"


class DeepgramSTT(STT):
    """Deepgram live transcription (nova-3, nova-2, ...) through ``deepgram-sdk``'s async client.

    Its streams reconnect by themselves per ``context.retry`` (the role's ``retry:``), re-sending
    the audio no final result covers; see the module docstring.
    """

    class Options(CloudOptions):
        """Options of ``stt: {use: deepgram}``."""

        model: str = Field("nova-3", description="Deepgram model: nova-3, nova-2, ...")
        language: str | None = Field(None, description="Language (en, ru, multi, ...); default: the profile's language")
        interim_results: bool = Field(True, description="Send partial transcripts while the user speaks")
        endpointing_ms: int | None = Field(
            300, ge=10, le=60_000, description="Silence in ms that ends a stretch of speech; null turns endpointing off"
        )
        utterance_end_ms: int | None = Field(
            1000,
            ge=1000,
            le=60_000,
            description="Gap in ms after the last word that ends the utterance (needs interim_results)",
        )
        vad_events: bool = Field(True, description="Report the start of speech (SpeechStarted)")
        smart_format: bool = Field(True, description="Format numbers, dates and punctuation")
        punctuate: bool = Field(True, description="Add punctuation and capitals")
        keepalive_s: float | None = Field(
            4.0,
            gt=0,
            lt=10,
            description="Send KeepAlive after this many seconds without audio (the service closes at 10)",
        )
        close_timeout_s: float = Field(
            5.0, gt=0, le=120, description="Wait this long for the last results after input ends"
        )
        max_resend_s: float = Field(
            120.0, gt=0, le=3600, description="Unfinalized audio kept to re-send after a dropped connection, in seconds"
        )

        @field_validator("base_url")
        @classmethod
        def _check_base_url(cls, value: str | None) -> str | None:
            if value is not None:
                service_urls(value)
            return value

        @field_validator("model")
        @classmethod
        def _not_flux(cls, value: str) -> str:
            if value.startswith("flux"):
                raise ValueError(f"{value} is a Flux model (turn-taking recognition): use stt: {{use: deepgram_flux}}")
            return value

    capabilities = Capabilities(streaming=True, interim_results=True, sample_rates=(16000, 8000, 24000, 48000))
    api_key_env: ClassVar[str | None] = "DEEPGRAM_API_KEY"
    extra: ClassVar[str | None] = "deepgram"
    options: DeepgramSTT.Options

    def __init__(self, options: Any = None, context: Any = None) -> None:
        super().__init__(options, context)
        self._client: Any = None
        self._http: Any = None
        self._api_error: type[BaseException] = Exception  # the SDK's ApiError, once imported
        self._closed_error: type[BaseException] = Exception  # websockets' ConnectionClosed
        self._handshake_error: type[BaseException] = Exception  # websockets' InvalidHandshake

    async def start(self) -> None:
        """Check the key and build the SDK client (no connection is opened until a stream starts)."""
        if self._client is not None:
            return
        key = self.api_key()
        sdk = import_sdk("deepgram", package="deepgram-sdk", extra="deepgram", backend="deepgram")
        httpx = import_sdk("httpx", package="httpx", extra="deepgram", backend="deepgram")
        api_error = import_sdk("deepgram.core.api_error", package="deepgram-sdk", extra="deepgram", backend="deepgram")
        ws_errors = import_sdk("websockets.exceptions", package="websockets", extra="deepgram", backend="deepgram")
        self._api_error = api_error.ApiError
        self._closed_error, self._handshake_error = ws_errors.ConnectionClosed, ws_errors.InvalidHandshake
        rest, socket = service_urls(self.options.base_url)
        environment = sdk.DeepgramClientEnvironment(base=rest, production=socket, agent=socket, agent_rest=rest)
        # The SDK builds an HTTP client even for websocket-only use: own it so aclose can close it.
        self._http = httpx.AsyncClient(timeout=self.options.timeout_s)
        self._client = sdk.AsyncDeepgramClient(
            api_key=key, environment=environment, httpx_client=self._http, timeout=self.options.timeout_s
        )

    async def aclose(self) -> None:
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.aclose()

    async def list_models(self) -> list[ModelInfo]:
        """Deepgram's streaming models (``GET /v1/models``): see :mod:`._deepgram_models`."""
        from voicekit.plugins.stt._deepgram_models import list_models

        return await list_models(self)

    def chosen_model(self) -> str | None:
        return self.options.model

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> DeepgramStream:
        lang = self.options.language or language or self.context.language
        return DeepgramStream(self, sample_rate=sample_rate, language=lang)

    def query(self, sample_rate: int, language: str | None) -> dict[str, str]:
        """The ``/v1/listen`` parameters, as keyword arguments of ``listen.v1.connect``."""
        o = self.options
        params = {
            "model": o.model,
            "encoding": "linear16",
            "sample_rate": str(sample_rate),
            "interim_results": _flag(o.interim_results),
            "endpointing": str(o.endpointing_ms) if o.endpointing_ms is not None else "false",
            "vad_events": _flag(o.vad_events),
            "smart_format": _flag(o.smart_format),
            "punctuate": _flag(o.punctuate),
        }
        if o.utterance_end_ms is not None and o.interim_results:
            params["utterance_end_ms"] = str(o.utterance_end_ms)
        if language:
            params["language"] = language
        return params

    def classify(self, exc: BaseException) -> BackendError:
        """A retryable error for a transient failure; raises the error for a permanent one."""
        who = self.label
        if isinstance(exc, BackendError):
            if not exc.retryable:
                raise exc
            return exc
        status = getattr(exc, "status_code", None)
        if isinstance(exc, self._api_error) and isinstance(status, int):
            # the SDK keeps only the request's headers; the response's are on the handshake error
            headers = _response_headers(exc.__context__)
            detail = headers.get("dg-error") or ""
            if status in (401, 403):
                raise AuthError(
                    f"{who}: Deepgram rejected the API key (HTTP {status}): set a valid key in {self.api_key_env}"
                ) from exc
            if status == 400:
                raise BackendError(
                    f"{who}: Deepgram refused the stream settings (HTTP 400{': ' + detail if detail else ''}): check "
                    f"stt.model={self.options.model!r} and stt.language (the model must support the language) "
                    "and that the audio is 16-bit PCM"
                ) from exc
            if status in (408, 429) or status >= 500:
                retry_after = retry_after_seconds(headers)
                asked = f", asking to wait {retry_after:g} s" if retry_after is not None else ""
                return BackendError(
                    f"{who}: Deepgram answered HTTP {status}{asked}", retryable=True, retry_after=retry_after
                )
            raise BackendError(
                f"{who}: Deepgram refused the connection (HTTP {status}{': ' + detail if detail else ''})"
            )
        if isinstance(exc, self._closed_error):
            code, reason = _close_of(exc)
            if code == 1008:
                raise BackendError(f"{who}: Deepgram could not decode the audio ({reason or 'DATA-0000'})") from exc
            if code == 1009:
                raise BackendError(f"{who}: Deepgram refused an audio message as too large ({reason})") from exc
            return BackendError(f"{who}: Deepgram closed the connection ({code} {reason})".strip(), retryable=True)
        if isinstance(exc, (OSError, asyncio.TimeoutError, EOFError, _Dropped, self._handshake_error)):
            return BackendError(f"{who}: connection to Deepgram failed: {type(exc).__name__}: {exc}", retryable=True)
        raise exc

    def closed_for_idling(self, exc: BaseException) -> bool:
        """The service closed a stream that had no audio for too long (1011, NET-0001): not a failure."""
        if not isinstance(exc, self._closed_error):
            return False
        code, reason = _close_of(exc)
        return code == 1011 and "net0001" in reason.lower().replace("-", "")


def _response_headers(handshake_error: BaseException | None) -> Mapping[str, str]:
    headers = getattr(handshake_error, "headers", None)  # websockets' legacy InvalidStatusCode
    if headers is None:
        headers = getattr(getattr(handshake_error, "response", None), "headers", None)  # InvalidStatus
    return headers if isinstance(headers, Mapping) else {}


def _close_of(exc: BaseException) -> tuple[int, str]:
    """Close code and reason the service sent (1006 and "" when the connection just broke)."""
    rcvd = getattr(exc, "rcvd", None)
    return int(getattr(rcvd, "code", 1006)), str(getattr(rcvd, "reason", "") or "")


class DeepgramStream(STTStream):
    """One live transcription; reconnects on its own and never loses or repeats words."""

    def __init__(self, backend: DeepgramSTT, *, sample_rate: int, language: str | None) -> None:
        super().__init__(sample_rate=sample_rate, language=language)
        self._backend = backend
        self._opts = backend.options
        self._assembler = UtteranceAssembler(language)
        self._buffer = bytearray()  # audio sent but not yet covered by a final result
        self._buffer_start = 0  # byte offset of _buffer[0] in the whole stream
        self._max_buffer = int(self._opts.max_resend_s * sample_rate) * 2
        self._input_done = False
        self._close_sent = False
        self._finals_seen = False  # the current connection delivered a final result
        self._last_sent = 0.0
        self._send_lock = asyncio.Lock()
        self.connections = 0  # how many sockets this stream opened

    @property
    def unfinalized_s(self) -> float:
        """Seconds of sent audio not yet covered by a final result (what a reconnect re-sends)."""
        return len(self._buffer) / 2 / self.sample_rate

    async def run(self) -> None:
        await self._backend.start()
        try:
            await self._connections()
        except Exception:
            self._flush()  # what was finalized before the failure still counts
            raise
        self._flush()

    async def _connections(self) -> None:
        """Connect, and reconnect after a failure (per ``context.retry``) until input ends."""
        backend = self._backend
        retrier = Retrier(backend.context.retry, label=backend.label)
        while True:
            self._finals_seen = False
            try:
                await self._connect_once()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classify() re-raises what is not transient
                error = None if backend.closed_for_idling(exc) else backend.classify(exc)
            if self._finals_seen:
                retrier.reset()  # the connection made progress: a new failure starts a new count
            if error is None:
                log.info("%s: the service closed the idle stream; reconnecting", backend.label)
                continue
            key = backend.profile_key
            await retrier.wait_or_give_up(error, check=f"the network, {key}.base_url and {key}.retry")

    def _flush(self) -> None:
        for event in self._assembler.flush():
            self.emit(event)

    async def _connect_once(self) -> None:
        client = self._backend._client
        params = self._backend.query(self.sample_rate, self.language)
        async with AsyncExitStack() as stack:
            conn = await asyncio.wait_for(
                stack.enter_async_context(client.listen.v1.connect(**params)), self._opts.timeout_s
            )
            self.connections += 1
            await self._session(conn)

    async def _session(self, conn: Any) -> None:
        offset = self._buffer_start  # this socket's time 0 is where the re-sent backlog starts
        self._close_sent = False
        self._last_sent = now()
        receiver = asyncio.create_task(self._receive(conn, offset))
        sender = asyncio.create_task(self._send(conn))
        tasks = [receiver, sender]
        if self._opts.keepalive_s is not None:
            tasks.append(asyncio.create_task(self._keepalive(conn, self._opts.keepalive_s)))
        try:
            await asyncio.wait((receiver, sender), return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                error = sender.exception()
                if error is not None and not isinstance(error, self._backend._closed_error):
                    raise error
                try:  # input is over (or the socket broke): the receiver sees the end
                    await asyncio.wait_for(asyncio.shield(receiver), self._opts.close_timeout_s)
                except TimeoutError:
                    log.warning("deepgram sent no close within %.1f s after CloseStream", self._opts.close_timeout_s)
                    return
            receiver.result()
            if not self._close_sent:
                raise _Dropped("the service closed the stream before the end of input")
        except asyncio.CancelledError:
            if not self._close_sent:  # aclose(): tell the service we are done so it stops the stream
                self._close_sent = True
                try:
                    await asyncio.wait_for(conn.send_close_stream(), 1.0)
                except Exception:
                    log.debug("CloseStream on cancel failed", exc_info=True)
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, conn: Any, offset: int) -> None:
        async for message in conn:
            if isinstance(message, (bytes, bytearray)):
                continue
            msg = parse_message(message)
            if msg.type == "Error":
                raise BackendError(f"{self._backend.label}: Deepgram reported an error: {msg.description}")
            if msg.type == "Results" and msg.is_final:
                self._finals_seen = True
                self._release(offset + round(msg.end * self.sample_rate) * 2)
            for event in self._assembler.feed(msg):
                self.emit(event)

    def _release(self, end_byte: int) -> None:
        """Forget audio the service has finalized: it will never need re-sending."""
        cut = min(end_byte - self._buffer_start, len(self._buffer))
        if cut > 0:
            del self._buffer[:cut]
            self._buffer_start += cut

    def _keep(self, chunk: bytes) -> None:
        self._buffer += chunk
        excess = len(self._buffer) - self._max_buffer
        if excess > 0:
            excess += excess % 2
            log.warning(
                "deepgram: no final result for %.0f s; older audio will not be re-sent", self._opts.max_resend_s
            )
            del self._buffer[:excess]
            self._buffer_start += excess

    async def _send_audio(self, conn: Any, chunk: bytes) -> None:
        async with self._send_lock:
            await conn.send_media(chunk)
            self._last_sent = now()

    async def _send(self, conn: Any) -> None:
        backlog = bytes(self._buffer)
        for i in range(0, len(backlog), _RESEND_CHUNK):
            await self._send_audio(conn, backlog[i : i + _RESEND_CHUNK])
        if not self._input_done:
            async for chunk in self.audio():
                self._keep(chunk)  # kept before sending: a failed send is re-sent after reconnecting
                await self._send_audio(conn, chunk)
            self._input_done = True
        async with self._send_lock:
            await conn.send_finalize()
            self._close_sent = True
            await conn.send_close_stream()

    async def _keepalive(self, conn: Any, period: float) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last_sent + period - now()))
            async with self._send_lock:
                if self._close_sent:
                    return
                if now() - self._last_sent >= period * 0.99:
                    await conn.send_keep_alive()
                    self._last_sent = now()
