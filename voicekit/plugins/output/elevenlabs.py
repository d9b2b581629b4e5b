"""ElevenLabs voices: text streamed in sentence by sentence, PCM streamed out.

The default transport is the multi-context websocket
(``/v1/text-to-speech/{voice_id}/multi-stream-input``), spoken directly with
``websockets`` and kept open for the whole conversation: one context per bot turn,
each sentence sent as it arrives, the context flushed and closed at the end of the
turn. On barge-in the context is closed and whatever audio the service still sends
for it is dropped. Between turns a keep-alive resets the service's inactivity timer
(20 s by default) and a dropped socket is reopened for the next turn.

``transport: http`` synthesizes each sentence with the SDK's streaming HTTP call
instead (one request per sentence: slower to start, but no socket to keep).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from pydantic import Field

from voicekit.clock import now
from voicekit.errors import AuthError, BackendError, VoicekitError
from voicekit.events import OutputEvent
from voicekit.options import CloudOptions
from voicekit.plugins.output._elevenlabs_http import speak_http
from voicekit.plugins.output._elevenlabs_protocol import (
    SentenceAttributor,
    SentenceTimeline,
    ServerMessage,
    parse_server_message,
)
from voicekit.roles import BackendContext, Capabilities, Output
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
_NO_LANGUAGE_CODE = ("eleven_multilingual_v2", "eleven_monolingual_v1", "eleven_multilingual_v1")
_SENT, _INPUT_DONE, _NO_TEXT = object(), object(), object()


class ElevenLabsOptions(CloudOptions):
    """Options of the ElevenLabs voice."""

    voice_id: str = Field("JBFqnCBsd6RMkjVDRZzb", description="Voice to speak with (an id from the voice library)")
    model: str = Field(
        "eleven_flash_v2_5", description="eleven_flash_v2_5 (fastest), eleven_turbo_v2_5, eleven_multilingual_v2"
    )
    output_format: Literal["pcm_16000", "pcm_22050", "pcm_24000"] = Field(
        "pcm_24000", description="Raw 16-bit PCM at this sample rate"
    )
    language: str | None = Field(None, description="ISO 639-1 language code; default: the profile's language")
    stability: float = Field(0.5, ge=0.0, le=1.0, description="Voice stability")
    similarity_boost: float = Field(0.75, ge=0.0, le=1.0, description="How closely to keep to the original voice")
    style: float = Field(0.0, ge=0.0, le=1.0, description="Style exaggeration (V2+ models)")
    speed: float = Field(1.0, ge=0.7, le=1.2, description="Speaking speed")
    use_speaker_boost: bool = Field(True, description="Boost similarity to the original speaker")
    chunk_length_schedule: list[int] | None = Field(
        None, description="Characters buffered before each audio chunk is generated (each 50-500); default: service's"
    )
    flush_each_sentence: bool = Field(
        True, description="Flush after every sentence so its audio starts at once (else only at the end of a turn)"
    )
    auto_mode: bool = Field(False, description="Let the service skip its chunk schedule (for whole sentences)")
    inactivity_timeout_s: int | None = Field(
        None, ge=1, le=180, description="Service's idle timeout for a context; default: the service's (20 s)"
    )
    keepalive_s: float = Field(8.0, gt=0, description="Idle time after which a keep-alive is sent")
    transport: Literal["websocket", "http"] = Field(
        "websocket", description="websocket: one multi-context socket per conversation; http: one request per sentence"
    )


class ElevenLabsOutput(Output):
    """ElevenLabs text to speech over its multi-context websocket (or HTTP, per sentence).

    ``speak`` yields ``SpeakingStarted(sentence)``, that sentence's ``AudioOut`` chunks and
    ``SpeakingEnded(sentence)``; audio is attributed to sentences with the alignment the
    service sends (see :class:`SentenceAttributor`).
    """

    Options: ClassVar[type[ElevenLabsOptions]] = ElevenLabsOptions
    capabilities = Capabilities(streaming=True, sample_rates=(16000, 22050, 24000), produces_audio=True)
    api_key_env: ClassVar[str | None] = "ELEVENLABS_API_KEY"
    extra: ClassVar[str | None] = "elevenlabs"
    options: ElevenLabsOptions

    def __init__(self, options: ElevenLabsOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.sample_rate = int(self.options.output_format.split("_")[1])
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._queues: dict[str, asyncio.Queue[Any]] = {}  # contexts whose messages a speak() reads
        self._open: dict[str, float] = {}  # contexts open on the service -> last message sent to it
        self._standby: str | None = None  # an open context no turn has taken yet
        self._turns: set[str] = set()  # contexts of turns being spoken now
        self._last_send = 0.0
        self._fatal: VoicekitError | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: Any = None
        self.generation = 0  # bumped by interrupt() and aclose()
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        self._closed = False
        if self.options.transport == "http":
            if self._http is None:
                sdk = import_sdk("elevenlabs.client", package="elevenlabs", extra="elevenlabs", backend=self._who)
                self._http = sdk.AsyncElevenLabs(
                    api_key=self.api_key(), base_url=self.http_base_url, timeout=self.options.timeout_s
                )
            return
        async with self._lock:
            await self._ensure_socket()
            if self._standby is None:
                self._standby = await self._open_context()

    async def aclose(self) -> None:
        self._closed = True
        self.generation += 1
        for ctx in list(self._queues):
            self._queues.pop(ctx).put_nowait(_NO_TEXT)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"close_socket": True}))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        for task in [self._keepalive, self._reader, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._ws = self._reader = self._keepalive = None
        self._open.clear()
        self._standby = None
        if self._http is not None:
            client, self._http = self._http, None
            wrapper = getattr(client, "_client_wrapper", None)
            httpx_client = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
            if httpx_client is not None:
                with contextlib.suppress(Exception):
                    await httpx_client.aclose()

    async def interrupt(self) -> None:
        """Barge-in: close the contexts being spoken; their late audio is dropped, never yielded."""
        self.generation += 1
        for ctx in list(self._turns):
            queue = self._queues.pop(ctx, None)
            if queue is not None:
                queue.put_nowait(_NO_TEXT)
            await self._close_context(ctx)

    # --- addresses ----------------------------------------------------------------

    @property
    def _who(self) -> str:
        return self.name or "elevenlabs"

    @property
    def http_base_url(self) -> str:
        base = (self.options.base_url or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(base)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path, "", ""))

    @property
    def language_code(self) -> str | None:
        language = self.options.language or self.context.language
        if not language or self.options.model in _NO_LANGUAGE_CODE:
            return None
        return language.replace("_", "-").split("-")[0].lower()

    def websocket_url(self) -> str:
        """The multi-context socket address: the HTTP base with ws(s) and the query."""
        parts = urlsplit(self.http_base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query: dict[str, str] = {"model_id": self.options.model, "output_format": self.options.output_format}
        if self.language_code:
            query["language_code"] = self.language_code
        if self.options.inactivity_timeout_s is not None:
            query["inactivity_timeout"] = str(self.options.inactivity_timeout_s)
        query["sync_alignment"] = "true"  # alignment per chunk is what splits audio between sentences
        if self.options.auto_mode:
            query["auto_mode"] = "true"
        path = f"{parts.path}/v1/text-to-speech/{self.options.voice_id}/multi-stream-input"
        return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))

    def voice_settings(self) -> dict[str, Any]:
        o = self.options
        return {
            "stability": o.stability,
            "similarity_boost": o.similarity_boost,
            "style": o.style,
            "speed": o.speed,
            "use_speaker_boost": o.use_speaker_boost,
        }

    # --- the socket -----------------------------------------------------------------

    async def _ensure_socket(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._ws is not None:
            return
        websockets = import_sdk(
            "websockets.asyncio.client", package="websockets", extra="elevenlabs", backend=self._who
        )
        exceptions = import_sdk("websockets.exceptions", package="websockets", extra="elevenlabs")
        url = self.websocket_url()
        try:
            ws = await websockets.connect(
                url,
                additional_headers={"xi-api-key": self.api_key()},
                open_timeout=self.options.timeout_s,
                max_size=2**24,
                user_agent_header="voicekit",
            )
        except exceptions.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                self._fatal = self.auth_error(f"HTTP {status} at the websocket handshake")
                raise self._fatal from exc
            raise BackendError(
                f"{self.label}: ElevenLabs refused the websocket (HTTP {status})",
                retryable=status >= 500 or status == 429,
            ) from exc
        except (TimeoutError, OSError, exceptions.WebSocketException) as exc:
            raise BackendError(
                f"{self.label}: cannot reach ElevenLabs at {self.http_base_url}: {exc}", retryable=True
            ) from exc
        self._ws = ws
        self._open.clear()
        self._standby = None
        self._last_send = now()
        self._reader = asyncio.create_task(self._read(ws), name="elevenlabs-reader")
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.create_task(self._keep_alive(), name="elevenlabs-keepalive")

    async def _send(self, message: dict[str, Any], ctx: str | None = None) -> None:
        ws = self._ws
        if ws is None:
            raise self._fatal or BackendError(f"{self.label}: the ElevenLabs socket is closed", retryable=True)
        try:
            await ws.send(json.dumps(message))
        except Exception as exc:  # any send failure means the socket is gone
            raise self._fatal or BackendError(
                f"{self.label}: the ElevenLabs socket dropped: {exc}", retryable=True
            ) from exc
        self._last_send = now()
        if ctx is not None and ctx in self._open:
            self._open[ctx] = self._last_send

    async def _open_context(self) -> str:
        ctx = f"vk{next(self._ids)}"
        message: dict[str, Any] = {"text": " ", "voice_settings": self.voice_settings(), "context_id": ctx}
        if self.options.chunk_length_schedule:
            message["generation_config"] = {"chunk_length_schedule": self.options.chunk_length_schedule}
        self._open[ctx] = now()
        await self._send(message, ctx)
        return ctx

    async def _close_context(self, ctx: str) -> None:
        self._turns.discard(ctx)
        if self._open.pop(ctx, None) is not None and self._ws is not None:
            with contextlib.suppress(VoicekitError):
                await self._send({"context_id": ctx, "close_context": True})

    async def _read(self, ws: Any) -> None:
        """Hand each message to the speak() that reads its context; drop the rest."""
        error: VoicekitError | None = None
        try:
            async for raw in ws:
                msg = parse_server_message(raw)
                if msg.error:
                    error = self._service_error(msg)
                    if isinstance(error, AuthError):
                        self._fatal = error
                    target = self._queues.get(msg.context_id or "")
                    for waiting in [target] if target else list(self._queues.values()):
                        waiting.put_nowait(error)
                    continue
                queue = self._queues.get(msg.context_id or "")
                if queue is None and msg.context_id is None and len(self._queues) == 1:
                    queue = next(iter(self._queues.values()))
                if queue is None:
                    log.debug("%s: dropped a message for closed context %s", self.label, msg.context_id)
                    continue
                queue.put_nowait(msg)
            error = error or self._closed_error(ws)
        except Exception as exc:  # noqa: BLE001 - a dropped connection ends up here
            error = error or self._closed_error(ws, exc)
        finally:
            if self._ws is ws:
                self._ws = None
                self._open.clear()
                self._standby = None
            if error is not None:
                for queue in list(self._queues.values()):
                    queue.put_nowait(error)

    async def _keep_alive(self) -> None:
        """Reset the service's inactivity timers: every open context, and the socket itself."""
        interval = self.options.keepalive_s
        while not self._closed:
            await asyncio.sleep(min(1.0, interval / 4))
            if self._ws is None:
                continue
            t = now()
            try:
                for ctx, last in list(self._open.items()):
                    if t - last >= interval:
                        await self._send({"text": "", "context_id": ctx}, ctx)
                if not self._open and t - self._last_send >= interval:
                    async with self._lock:
                        if self._standby is None and self._ws is not None:
                            self._standby = await self._open_context()
            except VoicekitError as exc:
                log.debug("%s: keep-alive failed: %s", self.label, exc)

    # --- speaking -------------------------------------------------------------------

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        # the generation of this call, not of the first read: interrupt() from now on stops it
        return self._speak(sentences, self.generation)

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        if self.options.transport == "http":
            if self._http is None:
                await self.start()
            async for event in speak_http(self, self._http, sentences, generation):
                yield event
            return
        ctx, queue = await self._begin_turn()
        if generation != self.generation:
            self._queues.pop(ctx, None)
            self._turns.discard(ctx)
            self._spawn(self._close_context(ctx))
            return
        timeline = SentenceTimeline(self.sample_rate)
        state = {"closing": False}
        sender = asyncio.create_task(self._send_turn(ctx, sentences, timeline.attributor, queue, state))
        finished = False
        try:
            while True:
                waiting = state["closing"] or (timeline.attributor.aligned and timeline.attributor.pending)
                try:
                    item = await asyncio.wait_for(queue.get(), self.options.timeout_s if waiting else None)
                except TimeoutError:
                    self._spawn(self._drop_socket())
                    raise BackendError(
                        f"{self.label}: no audio from ElevenLabs within {self.options.timeout_s:g} s", retryable=True
                    ) from None
                if item is _NO_TEXT or self._queues.get(ctx) is not queue:
                    return  # nothing to say, or interrupted, or closed
                if item is _SENT or item is _INPUT_DONE:
                    continue
                if isinstance(item, BaseException):
                    raise item
                msg: ServerMessage = item
                final = msg.final and state["closing"]
                events = timeline.audio(msg) + (timeline.finish() if final else [])
                for event in events:
                    if self._queues.get(ctx) is not queue:
                        return  # interrupt() came while the consumer held the last event
                    yield event
                if final:
                    finished = True
                    return
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            self._queues.pop(ctx, None)
            self._turns.discard(ctx)
            if not finished:
                self._spawn(self._close_context(ctx))  # cut short: whatever still comes is dropped

    async def _begin_turn(self) -> tuple[str, asyncio.Queue[Any]]:
        if self._closed:
            raise BackendError(f"{self.label}: speak() after aclose()")
        ctx = ""
        async with self._lock:
            for attempt in range(2):
                try:
                    await self._ensure_socket()
                    standby, self._standby = self._standby, None
                    ctx = standby if standby is not None and standby in self._open else await self._open_context()
                    break
                except BackendError as exc:
                    if attempt or not exc.retryable:
                        raise
                    log.info("%s: reconnecting: %s", self.label, exc)
                    await self._drop_socket()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[ctx] = queue
        self._turns.add(ctx)
        return ctx, queue

    async def _send_turn(
        self,
        ctx: str,
        sentences: AsyncIterator[str],
        attributor: SentenceAttributor,
        queue: asyncio.Queue[Any],
        state: dict[str, bool],
    ) -> None:
        try:
            flush = self.options.flush_each_sentence
            async for sentence in sentences:
                text = " ".join(sentence.split())
                if not text:
                    continue
                attributor.add(text)
                message: dict[str, Any] = {"text": text + " ", "context_id": ctx}
                if flush:
                    message["flush"] = True
                await self._send(message, ctx)
                queue.put_nowait(_SENT)
            if not attributor.sentences:
                queue.put_nowait(_NO_TEXT)
                return
            if not flush:
                await self._send({"context_id": ctx, "flush": True}, ctx)
            # Closing right after the flush: the service finishes this audio, then says isFinal.
            state["closing"] = True
            self._open.pop(ctx, None)
            await self._send({"context_id": ctx, "close_context": True})
            queue.put_nowait(_INPUT_DONE)
        except Exception as exc:  # noqa: BLE001 - handed to the reader of the queue, who raises it
            queue.put_nowait(exc)

    async def _drop_socket(self) -> None:
        ws, self._ws = self._ws, None
        self._open.clear()
        self._standby = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- errors ---------------------------------------------------------------------------

    def auth_error(self, detail: str) -> AuthError:
        return AuthError(
            f"{self.label}: ElevenLabs rejected the API key ({detail}); set {self.api_key_env} to a valid key"
        )

    def _service_error(self, msg: ServerMessage) -> VoicekitError:
        text = " ".join(str(msg.message or "").split())[:300]
        code = msg.error or "error"
        if "api_key" in code or "unauthorized" in code or "auth" in code:
            return self.auth_error(text or code)
        if "voice" in code:
            return BackendError(f"{self.label}: ElevenLabs: {text} ({code}); check output.voice_id")
        retryable = code in ("input_timeout_exceeded", "max_active_conversations", "internal_error")
        return BackendError(f"{self.label}: ElevenLabs error {code}: {text}", retryable=retryable)

    def _closed_error(self, ws: Any, exc: BaseException | None = None) -> VoicekitError | None:
        if self._closed:
            return None
        if self._fatal is not None:
            return self._fatal
        code = getattr(ws, "close_code", None)
        reason = getattr(ws, "close_reason", "") or ""
        if code == 1008 and ("key" in reason.lower() or "auth" in reason.lower()):
            self._fatal = self.auth_error(reason)
            return self._fatal
        detail = f"code {code}" + (f", {reason}" if reason else "") if code else str(exc or "closed")
        return BackendError(f"{self.label}: the ElevenLabs socket closed ({detail})", retryable=True)
