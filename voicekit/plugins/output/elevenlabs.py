"""ElevenLabs voices: text streamed in sentence by sentence, PCM streamed out.

The default transport is the multi-context websocket
(``/v1/text-to-speech/{voice_id}/multi-stream-input``), spoken directly with
``websockets`` and kept open for the whole conversation: one context per bot turn,
each sentence sent as it arrives, the context flushed and closed at the end of the
turn. On barge-in the context is closed and whatever audio the service still sends
for it is dropped. Between turns a keep-alive resets the service's inactivity timer
(20 s by default).

Who retries: opening the backend (``start()``) and a turn over HTTP are single requests
that the core tries again per the role's ``retry:`` policy. The socket is the backend's
own: when it is found closed at the start of a turn, or breaks before the turn's first
audio, the backend reconnects, waiting as ``context.retry`` says
(:class:`~voicekit.engine.retry.Retrier`), and tells the new socket the turn's text from
its first sentence. A socket that breaks once audio has been yielded ends the turn with a
retryable error (saying it again would repeat what was heard); the next turn reconnects.

``transport: http`` synthesizes each sentence with the SDK's streaming HTTP call
instead (one request per sentence: slower to start, but no socket to keep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, ClassVar

from voicekit.engine.retry import Retrier
from voicekit.errors import AuthError, BackendError
from voicekit.events import OutputEvent
from voicekit.plugins.output._elevenlabs_http import speak_http
from voicekit.plugins.output._elevenlabs_options import DEFAULT_BASE_URL, ElevenLabsOptions
from voicekit.plugins.output._elevenlabs_protocol import (
    SentenceAttributor,
    SentenceTimeline,
    ServerMessage,
    SourceFailed,
    TurnText,
)
from voicekit.plugins.output._elevenlabs_socket import END, ContextSocket
from voicekit.roles import BackendContext, Capabilities, ModelInfo, Output
from voicekit.sdk import import_sdk

__all__ = ["DEFAULT_BASE_URL", "ElevenLabsOptions", "ElevenLabsOutput"]

log = logging.getLogger(__name__)

_SENT, _INPUT_DONE = object(), object()  # what a turn's sender tells its reader


class ElevenLabsOutput(Output):
    """ElevenLabs text to speech over its multi-context websocket (or HTTP, per sentence).

    ``speak`` yields ``SpeakingStarted(sentence)``, that sentence's ``AudioOut`` chunks and
    ``SpeakingEnded(sentence)``; audio is attributed to sentences with the alignment the
    service sends (see :class:`SentenceAttributor`). Who retries what: see the module docstring.
    """

    Options: ClassVar[type[ElevenLabsOptions]] = ElevenLabsOptions
    capabilities = Capabilities(streaming=True, sample_rates=(16000, 22050, 24000), produces_audio=True)
    api_key_env: ClassVar[str | None] = "ELEVENLABS_API_KEY"
    extra: ClassVar[str | None] = "elevenlabs"
    options: ElevenLabsOptions

    def __init__(self, options: ElevenLabsOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.sample_rate = int(self.options.output_format.split("_")[1])
        self._socket: ContextSocket | None = None
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
        socket = self._websocket()
        async with socket.lock:
            await socket.connect()
            await socket.ensure_standby()

    def _websocket(self) -> ContextSocket:
        if self._socket is None or self._socket.closed:
            self._socket = ContextSocket(
                self.options,
                url=self.websocket_url(),
                api_key=self.api_key,
                auth_error=self.auth_error,
                name=self._who,
                label=self.label,
                where=self.profile_key,
            )
        return self._socket

    async def aclose(self) -> None:
        self._closed = True
        self.generation += 1
        if self._socket is not None:
            await self._socket.aclose()
        if self._http is not None:
            client, self._http = self._http, None
            wrapper = getattr(client, "_client_wrapper", None)
            httpx_client = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
            if httpx_client is not None:
                with contextlib.suppress(Exception):
                    await httpx_client.aclose()

    async def list_models(self) -> list[ModelInfo]:
        """The voices this key may use (``GET /v1/voices``); ``voice_id`` names one of them."""
        from voicekit.plugins.output._elevenlabs_voices import list_voices

        return await list_voices(self)

    def chosen_model(self) -> str | None:
        return self.options.voice_id

    async def interrupt(self) -> None:
        """Barge-in: close the contexts being spoken; their late audio is dropped, never yielded."""
        self.generation += 1
        socket = self._socket
        if socket is None:
            return
        for ctx in list(socket.turns):
            queue = socket.queues.pop(ctx, None)
            if queue is not None:
                queue.put_nowait(END)
            await socket.close_context(ctx)

    # --- addresses ----------------------------------------------------------------

    @property
    def _who(self) -> str:
        return self.name or "elevenlabs"

    @property
    def http_base_url(self) -> str:
        return self.options.http_base_url

    @property
    def language_code(self) -> str | None:
        return self.options.language_code(self.context.language)

    def websocket_url(self) -> str:
        """The multi-context socket address: the HTTP base with ws(s) and the query."""
        return self.options.websocket_url(self.language_code)

    def voice_settings(self) -> dict[str, Any]:
        return self.options.voice_settings()

    def auth_error(self, detail: str) -> AuthError:
        return AuthError(
            f"{self.label}: ElevenLabs rejected the API key ({detail}); set {self.api_key_env} to a valid key"
        )

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
        if self._closed:
            raise BackendError(f"{self.label}: speak() after aclose()")
        socket = self._websocket()
        text = TurnText(sentences)
        timeline = SentenceTimeline(self.sample_rate)
        retrier = Retrier(self.context.retry, label=self.label)
        spoke = False
        try:
            while True:
                ctx, queue = await self._begin_turn(socket, retrier)
                if self.generation != generation:  # interrupted while the context was being opened
                    socket.queues.pop(ctx, None)
                    await socket.close_context(ctx)
                    return
                try:
                    async with contextlib.aclosing(self._speak_context(socket, ctx, queue, text, timeline)) as events:
                        async for event in events:
                            spoke = True
                            yield event
                    return
                except SourceFailed as failed:
                    raise failed.error from None
                except BackendError as exc:
                    if spoke or not exc.retryable:
                        raise
                    lost = exc
                # The socket failed before the turn's first audio: a new one is told the turn again.
                log.info("%s: %s; reconnecting", self.label, lost)
                await socket.drop()
                await self._wait(retrier, lost)
                if self._closed or self.generation != generation:
                    return  # interrupted or closed meanwhile
        finally:
            await text.close()

    async def _begin_turn(self, socket: ContextSocket, retrier: Retrier) -> tuple[str, asyncio.Queue[Any]]:
        """A context for a turn: on the open socket, or on a new one (per ``context.retry``)."""
        async with socket.lock:
            # A socket kept from an earlier turn may have died unnoticed while idle: that is
            # no failure of the service, so the first reconnect is at once.
            inherited = socket.connected
            while True:
                try:
                    await socket.connect()
                    ctx = await socket.take_context()
                    break
                except BackendError as exc:
                    await socket.drop()
                    if inherited:
                        inherited = False
                        log.info("%s: reconnecting: %s", self.label, exc)
                        continue
                    await self._wait(retrier, exc)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        socket.queues[ctx] = queue
        socket.turns.add(ctx)
        return ctx, queue

    async def _wait(self, retrier: Retrier, error: BackendError) -> None:
        """Sleep before the next try; or raise ``error``, as one line saying what to check once
        the retry policy is spent."""
        await retrier.wait_or_give_up(
            error, check=f"the network, {self.profile_key}.base_url and {self.profile_key}.retry"
        )

    async def _speak_context(
        self, socket: ContextSocket, ctx: str, queue: asyncio.Queue[Any], text: TurnText, timeline: SentenceTimeline
    ) -> AsyncGenerator[OutputEvent, None]:
        """The turn's events from context ``ctx``: one try (``speak`` may make another)."""
        state = {"closing": False}
        sender = asyncio.create_task(self._send_turn(socket, ctx, text, timeline.attributor, queue, state))
        finished = False
        try:
            while True:
                waiting = state["closing"] or (timeline.attributor.aligned and timeline.attributor.pending)
                try:
                    item = await asyncio.wait_for(queue.get(), self.options.timeout_s if waiting else None)
                except TimeoutError:
                    socket.spawn(socket.drop())
                    raise BackendError(
                        f"{self.label}: no audio from ElevenLabs within {self.options.timeout_s:g} s", retryable=True
                    ) from None
                if item is END or socket.queues.get(ctx) is not queue:
                    return  # nothing to say, or interrupted, or closed
                if item is _SENT or item is _INPUT_DONE:
                    continue
                if isinstance(item, BaseException):
                    raise item
                msg: ServerMessage = item
                final = msg.final and state["closing"]
                events = timeline.audio(msg) + (timeline.finish() if final else [])
                for event in events:
                    if socket.queues.get(ctx) is not queue:
                        return  # interrupt() came while the consumer held the last event
                    yield event
                if final:
                    finished = True
                    return
        finally:
            sender.cancel()
            socket.queues.pop(ctx, None)
            socket.turns.discard(ctx)
            if not finished:
                socket.spawn(socket.close_context(ctx))  # cut short: whatever still comes is dropped
            await asyncio.wait({sender})

    async def _send_turn(
        self,
        socket: ContextSocket,
        ctx: str,
        text: TurnText,
        attributor: SentenceAttributor,
        queue: asyncio.Queue[Any],
        state: dict[str, bool],
    ) -> None:
        """Send the turn's sentences from the first (those of an earlier try too) as they come."""
        try:
            flush = self.options.flush_each_sentence
            index = 0
            while (sentence := await text.get(index)) is not None:
                if index == len(attributor.sentences):
                    attributor.add(sentence)
                index += 1
                message: dict[str, Any] = {"text": sentence + " ", "context_id": ctx}
                if flush:
                    message["flush"] = True
                await socket.send(message, ctx)
                queue.put_nowait(_SENT)
            if not attributor.sentences:
                queue.put_nowait(END)
                return
            if not flush:
                await socket.send({"context_id": ctx, "flush": True}, ctx)
            # Closing right after the flush: the service finishes this audio, then says isFinal.
            state["closing"] = True
            socket.closing(ctx)
            await socket.send({"context_id": ctx, "close_context": True})
            queue.put_nowait(_INPUT_DONE)
        except Exception as exc:  # noqa: BLE001 - handed to the reader of the queue, who raises it
            queue.put_nowait(exc)
