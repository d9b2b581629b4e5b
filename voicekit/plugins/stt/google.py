"""Google Cloud Speech-to-Text: streaming recognition over gRPC, API v1 or v2 (Chirp).

One utterance, one ``Final``. The service finalizes speech in pieces (``is_final``
results); the pieces of one utterance are joined and emitted as one ``Final``
followed by ``UtteranceEnd``:

- with voice-activity events (option ``voice_activity_events``, the default), an
  utterance ends when the service has said ``SPEECH_ACTIVITY_END`` *and* no interim
  text is waiting to be finalized, whichever of the two comes last. If the end event
  never comes, the pieces are emitted ``utterance_end_timeout_s`` after the last result;
- without them, every ``is_final`` result ends an utterance (the service's endpointer
  decides).

``SPEECH_ACTIVITY_BEGIN`` becomes ``SpeechStarted``. Interim text is the utterance so
far (finalized pieces plus the current hypothesis). At the end of input, a hypothesis
the service never finalized is kept as part of the last ``Final`` rather than lost.

Streams are limited to about five minutes. After 90 % of ``restart_after_s`` (of wall
time or of audio, whichever comes first) the stream is replaced at the next pause, and
at ``restart_after_s`` at the latest. The new stream is first sent the audio the
service has not finalized — everything after the last final result's end time — so no
word is lost and none is recognized twice. Dropped streams and retryable errors
reconnect the same way: the stream reconnects by itself (only it knows which audio to
send again), waiting between tries as the role's ``retry:`` policy says
(:class:`~voicekit.engine.retry.Retrier` over ``context.retry``). A stream that brought
a final result resets the count; the service's own ends of a stream (its length limit,
its no-audio timeout) are not failures and are reopened at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, ClassVar, Literal

from pydantic import Field

from voicekit.engine.retry import Retrier
from voicekit.errors import BackendError, VoicekitError
from voicekit.plugins import _gcloud
from voicekit.plugins.stt._google_speech import SpeechAPI, SpeechV1, SpeechV2, Utterance
from voicekit.roles import STT, Capabilities, STTStream

log = logging.getLogger(__name__)

# Statuses of a stream the service ended for being too long or idle: reconnect at once.
_STREAM_LIMITS = frozenset({"OUT_OF_RANGE", "ABORTED"})
_SOFT_RESTART = 0.9  # from this share of restart_after_s, replace the stream at a pause
_FIRST_AUDIO_DELAY_S = 0.15  # between a stream's config and its audio (see _send)


class GoogleSTT(STT):
    """Google Cloud Speech-to-Text streaming recognition (``latest_long`` on v1, Chirp on v2).

    Its streams restart and reconnect by themselves, per ``context.retry`` (the role's
    ``retry:``) after a failure; see the module docstring.
    """

    class Options(_gcloud.GoogleCloudOptions):
        api_version: Literal["v1", "v2"] = Field("v1", description="v1 (latest_long etc.) or v2 (recognizers, Chirp)")
        model: str | None = Field(None, description="Model; default latest_long on v1, chirp_3 on v2")
        project: str | None = Field(
            None, description="v2: Google Cloud project; default from the credentials or GOOGLE_CLOUD_PROJECT"
        )
        location: str | None = Field(
            None, description="v2: region; default us for chirp_3, us-central1 for chirp_2, else global"
        )
        recognizer: str = Field("_", description="v2: recognizer id; _ is the implicit recognizer")
        interim_results: bool = Field(True, description="Ask for partial transcripts")
        voice_activity_events: bool = Field(True, description="Ask for speech begin/end events (utterance ends)")
        punctuation: bool = Field(True, description="Automatic punctuation")
        restart_after_s: float = Field(
            290.0, gt=0, le=300, description="Replace the stream before the service's ~5 min limit"
        )
        max_chunk_bytes: int = Field(
            15360, ge=320, le=25600, description="Largest audio piece per request (the service takes up to 25 KB)"
        )
        utterance_end_timeout_s: float = Field(
            1.0,
            gt=0,
            le=60,
            description="End the utterance this long after its last final if no end-of-speech event comes",
        )

    capabilities = Capabilities(streaming=True, interim_results=True, sample_rates=(16000, 8000, 24000, 48000))
    api_key_env: ClassVar[str | None] = None  # ADC or credentials_file (GOOGLE_APPLICATION_CREDENTIALS)
    extra: ClassVar[str | None] = "google"
    sdk_distributions: ClassVar[tuple[str, ...]] = ("google-cloud-speech", "grpcio")
    options: Options

    def __init__(self, options: Any = None, context: Any = None) -> None:
        super().__init__(options, context)
        self._api: SpeechAPI | None = None
        self._connection: _gcloud.Connection | None = None

    async def start(self) -> None:
        if self._connection is not None:
            return
        opts = self.options
        api = SpeechV2(opts) if opts.api_version == "v2" else SpeechV1(opts)
        endpoint = _gcloud.parse_endpoint(opts.base_url, api.default_host, self.label)
        connection = await _gcloud.connect(api.transport_cls, endpoint, opts, self.label)
        try:
            api.bind(connection, self.label)
        except BaseException:
            await connection.transport.close()
            raise
        self._api, self._connection = api, connection

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.transport.close()

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> GoogleSTTStream:
        if self._api is None or self._connection is None:
            raise BackendError(f"{self.label}: start() the backend before opening a stream")
        locale = _gcloud.locale_for(self.options.language or language or self.context.language)
        return GoogleSTTStream(self, self._api, sample_rate=sample_rate, language=locale)


class GoogleSTTStream(STTStream):
    """One recognition, kept alive across the service's stream limits."""

    def __init__(self, backend: GoogleSTT, api: SpeechAPI, *, sample_rate: int, language: str) -> None:
        super().__init__(sample_rate=sample_rate, language=language)
        opts = backend.options
        self.options = opts
        self.api = api
        self.who = backend.label
        self.bytes_per_s = sample_rate * 2
        self.max_chunk = _even(opts.max_chunk_bytes)
        self.restart_bytes = _even(int(opts.restart_after_s * self.bytes_per_s))
        self.soft_s = opts.restart_after_s * _SOFT_RESTART
        # Audio the service has not finalized, resent to a replacement stream.
        self.carry = bytearray()
        self.carry_start = 0  # absolute byte offset of carry[0]
        self.carry_cap = _even(self.restart_bytes // 2)  # so that every stream makes progress
        self.keep_s = min(3.0, opts.restart_after_s / 2)  # how long sent audio stays when nothing is heard
        self.stream_base = 0  # absolute offset of the current stream's first audio byte
        self.sent_until = 0  # absolute offset up to which the current stream has audio
        self.sent_log: deque[tuple[float, int]] = deque()  # (when, absolute end) of sent pieces
        self.utterance = Utterance(
            self.emit, language, use_activity=opts.voice_activity_events, timeout_s=opts.utterance_end_timeout_s
        )
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.input_ended = False
        self.heard = False  # the current stream answered at least once
        self.finalized = False  # the current stream sent a final result
        self.retry_policy = backend.context.retry
        self.profile_key = backend.profile_key
        self.progress = asyncio.Event()  # set on every response
        self.streams_opened = 0
        self.opened_at = 0.0

    async def run(self) -> None:
        ingest = asyncio.get_running_loop().create_task(self._ingest())
        try:
            await self._loop()
            self.utterance.flush(include_interim=True)
        finally:
            ingest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ingest

    async def _loop(self) -> None:
        retrier = Retrier(self.retry_policy, label=self.who)
        lazy = True  # open a stream only once audio comes (no idle streams to time out)
        while True:
            if lazy and not self.input_ended:
                self._take(await self.queue.get())
            unsent = self.carry_start + len(self.carry) > self.sent_until
            if not self.carry or (lazy and self.input_ended and not unsent):
                return  # nothing new and nothing being recognized: no stream needed
            self.heard = self.finalized = False
            failure: BackendError | None = None
            try:
                outcome = await self._session()
            except Exception as exc:
                if isinstance(exc, VoicekitError):
                    raise
                status, message = _gcloud.status_of(exc)
                lived = asyncio.get_running_loop().time() - self.opened_at
                if status in _STREAM_LIMITS and (self.heard or lived >= 1.0):
                    # The stream grew too long or idle: routine, not a failure.
                    log.info("%s: the service ended the stream (%s: %s); reconnecting", self.who, status, message)
                else:
                    error = _gcloud.translate(exc, self.who, "Speech-to-Text", self.profile_key)
                    if status in _STREAM_LIMITS:  # ended at once, again and again: a failure after all
                        error = BackendError(str(error), retryable=True)
                    if not isinstance(error, BackendError) or not error.retryable:
                        raise error from exc
                    failure = error
                outcome = "restart"
            if outcome == "end":
                return
            if outcome == "closed" and not self.heard:
                failure = BackendError(
                    f"{self.who}: the service closed the stream at once; check {self.profile_key}.base_url",
                    retryable=True,
                )
            if self.finalized:
                retrier.reset()  # the stream made progress: a new failure starts a new count
            if failure is not None:
                await retrier.wait_or_give_up(failure, check=f"{self.profile_key}.retry")
            lazy = not self.utterance.in_progress  # mid-utterance: reopen at once to finish it
            self.utterance.stream_replaced()
            self._cap_carry()

    async def _ingest(self) -> None:
        # The only reader of the base class's audio iterator, so that cancelling a
        # session never cancels (and so closes) that generator.
        async for chunk in self.audio():
            self.queue.put_nowait(chunk)
        self.queue.put_nowait(None)

    def _take(self, chunk: bytes | None) -> bool:
        """Add pushed audio to the unfinalized buffer; False at the end of input."""
        if chunk is None:
            self.input_ended = True
            return False
        self.carry.extend(chunk)
        return True

    async def _session(self) -> str:
        """One service stream: "end" (input over, all final), "restart" (limit near) or "closed"."""
        loop = asyncio.get_running_loop()
        self.opened_at = loop.time()
        call = await self.api.open()
        self.streams_opened += 1
        reader = loop.create_task(self._read(call))
        sender = loop.create_task(self._send(call, reader))
        try:
            done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and sender.exception() is None and sender.result() == "rejected":
                await asyncio.wait({reader}, timeout=1.0)
                done = {reader} if reader.done() else done
            if sender in done:
                if sender.exception() is not None:
                    # A failed write usually means the call ended: the reader has the real status.
                    with contextlib.suppress(Exception, asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), 1.0)
                    if reader.done() and not reader.cancelled() and reader.exception() is not None:
                        raise reader.exception()  # type: ignore[misc]
                    raise sender.exception()  # type: ignore[misc]
                if sender.result() == "end":
                    try:
                        await asyncio.wait_for(asyncio.shield(reader), self.options.timeout_s)
                    except TimeoutError:
                        log.warning(
                            "%s: no end of stream %.0f s after the last audio", self.who, self.options.timeout_s
                        )
                    return "end"
                await self._catch_up(reader)
                return "restart"
            if reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
            return "closed"  # the service ended the stream without being asked
        finally:
            call.cancel()
            for task in (sender, reader):
                task.cancel()
            for task in (sender, reader):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _send(self, call: Any, reader: asyncio.Task[None]) -> str:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        self.stream_base = self.sent_until = self.carry_start
        self.sent_log.clear()
        await call.write(self.api.config_request(self.sample_rate, self.language or "en-US"))
        # Let a rejection of the config or the credentials come back before the audio goes:
        # grpc reports a write that races the end of the call as INTERNAL, and the
        # service's own status (a bad key, a bad model) is lost.
        await asyncio.wait({reader}, timeout=_FIRST_AUDIO_DELAY_S)
        if reader.done() or call.done():
            return "rejected"
        if not await self._send_pending(call):
            return "restart"
        while not self.input_ended:
            age = max(loop.time() - opened, (self.sent_until - self.stream_base) / self.bytes_per_s)
            if age >= self.soft_s and not self.utterance.in_progress:
                return "restart"  # a pause near the limit: the cleanest moment to switch
            if age >= self.options.restart_after_s:
                return "restart"
            wait = (self.soft_s if age < self.soft_s else self.options.restart_after_s) - age
            try:
                chunk = await asyncio.wait_for(self.queue.get(), max(wait, 0.001))
            except TimeoutError:
                continue
            more = self._take(self._coalesce(chunk))
            if not await self._send_pending(call):
                return "restart"
            if not more:
                break
            if not self.utterance.in_progress:
                self._trim_heard(loop.time())
        await call.done_writing()
        return "end"

    async def _send_pending(self, call: Any) -> bool:
        """Send what the current stream has not had yet; False if that would pass the restart size."""
        while self.sent_until < self.carry_start + len(self.carry):
            at = self.sent_until - self.carry_start  # recomputed: finals trim the buffer meanwhile
            piece = bytes(self.carry[at : at + self.max_chunk])
            if self.sent_until - self.stream_base + len(piece) > self.restart_bytes:
                return False
            await call.write(self.api.audio_request(piece))
            self.sent_until += len(piece)
            self.sent_log.append((asyncio.get_running_loop().time(), self.sent_until))
        return True

    def _coalesce(self, chunk: bytes | None) -> bytes | None:
        """Join audio already waiting in the queue, so fast input makes fewer, fuller requests."""
        if chunk is None:
            return None
        parts = [chunk]
        size = len(chunk)
        while size < self.max_chunk and not self.queue.empty():
            nxt = self.queue.get_nowait()
            if nxt is None:
                self.input_ended = True
                break
            parts.append(nxt)
            size += len(nxt)
        return b"".join(parts) if len(parts) > 1 else chunk

    async def _read(self, call: Any) -> None:
        async for response in call:
            self.heard = True
            update = self.api.parse(response)
            if update.finals:
                self.finalized = True
            if update.final_end_s is not None:
                self._finalized_until(self.stream_base + _even(int(update.final_end_s * self.bytes_per_s)))
            self.utterance.apply(update)
            self.progress.set()

    async def _catch_up(self, reader: asyncio.Task[None]) -> None:
        """Before replacing a stream, wait while the service is still working through a long tail.

        It happens when audio comes faster than real time; without the wait the new
        stream would have to hear again more than it can take in.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout_s
        while self.sent_until - self.carry_start > self.carry_cap and not reader.done():
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), max(0.0, min(1.0, deadline - loop.time())))
            except TimeoutError:
                return

    def _finalized_until(self, absolute: int) -> None:
        cut = min(len(self.carry), absolute - self.carry_start)
        if cut > 0:
            del self.carry[:cut]
            self.carry_start += cut

    def _trim_heard(self, now: float) -> None:
        # Nothing is being recognized, so audio sent more than keep_s ago held no speech
        # (the service would have reported it by now): it need not be sent again.
        until = 0
        while self.sent_log and self.sent_log[0][0] <= now - self.keep_s:
            until = self.sent_log.popleft()[1]
        if until:
            self._finalized_until(until)

    def _cap_carry(self) -> None:
        excess = min(self.sent_until - self.carry_start, len(self.carry)) - self.carry_cap
        if excess > 0:
            level = logging.WARNING if self.utterance.in_progress else logging.DEBUG
            log.log(
                level,
                "%s: dropping %.2f s of unfinalized audio at a stream restart",
                self.who,
                excess / self.bytes_per_s,
            )
            del self.carry[:excess]
            self.carry_start += excess


def _even(n: int) -> int:
    return n - n % 2
