"""One Gemini Live conversation carried over as many websocket connections as it takes.

The service ends every connection after about ten minutes (a ``goAway`` comes first)
and sockets drop. :class:`LiveLink` hides both: it keeps the newest
``sessionResumptionUpdate`` handle, and on ``goAway`` (as soon as the model is not
speaking, at the latest shortly before the time is up) or on a dropped socket it
connects again with that handle, so the conversation goes on with its context.

Everything the caller sends goes through one ordered queue, and an item leaves that
queue only once the SDK has written it: audio pushed while a connection is being
replaced waits and is sent right after the next ``setupComplete``, none of it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from voicekit.errors import AuthError, BackendError, VoicekitError
from voicekit.plugins.llm.gemini_live.wire import INPUT_MIME, LiveUpdate, read_update

log = logging.getLogger(__name__)

#: ``connect(handle)`` → (the SDK's ``live.connect`` context manager, history turns to seed or None)
Connector = Callable[[str | None], tuple[AbstractAsyncContextManager[Any], list[Any] | None]]
#: ``translate(exc)`` → the error to raise, or None when reconnecting may help
Translator = Callable[[BaseException], VoicekitError | None]

_MAX_AUDIO_PER_MESSAGE = 6400  # 200 ms at 16 kHz: coalesce a backlog into fewer messages
_CLOSE_WAIT_S = 2.0


class LiveLink:
    """A resumable Live session: an ordered send queue in, :class:`LiveUpdate` out."""

    def __init__(
        self,
        *,
        connect: Connector,
        translate: Translator,
        types: Any,
        label: str,
        resume: bool = True,
        connect_timeout_s: float = 10.0,
        max_retries: int = 3,
        max_buffer_s: float = 600.0,
    ) -> None:
        self._connect, self._translate, self._types = connect, translate, types
        self.label = label
        self.resume = resume
        self.connect_timeout_s = connect_timeout_s
        self.max_retries = max_retries
        self._max_buffer_bytes = int(max_buffer_s * 32000)
        self.handle: str | None = None
        self.connections = 0  # successful setups, the first one included
        self.resumed = 0  # setups that resumed with a handle
        self._out: deque[tuple[str, Any]] = deque()
        self._out_audio_bytes = 0
        self._dropping = False  # warned about an audio backlog; quiet until it clears
        self._in_flight = 0  # items at the head of _out being written right now
        self._out_ready = asyncio.Event()
        self._updates: asyncio.Queue[LiveUpdate | VoicekitError | None] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._error: VoicekitError | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._in_turn = False
        self._switch = asyncio.Event()
        self._stop_sending = False
        self._go_away_pending = False
        self._go_away_timer: asyncio.TimerHandle | None = None

    # --- caller side ------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.label}-link")

    async def ready(self) -> None:
        """Wait for the first ``setupComplete``; raises the setup's error (bad key, unknown model)."""
        self.start()
        await self._ready.wait()
        if self._error is not None and not self.connections:
            raise self._error

    def push_audio(self, pcm: bytes) -> None:
        """Queue 16 kHz mono PCM; never blocks."""
        if not pcm or self._closed or self._error is not None:
            return
        self._out.append(("audio", pcm))
        self._out_audio_bytes += len(pcm)
        while self._out_audio_bytes > self._max_buffer_bytes and self._drop_oldest_audio():
            pass
        self._out_ready.set()

    def send(self, kind: str, payload: Any = None) -> None:
        """Queue a message in order with the audio: text, activity_start/end, audio_end, content."""
        if self._closed or self._error is not None:
            return
        self._out.append((kind, payload))
        self._out_ready.set()

    async def next_update(self) -> LiveUpdate | None:
        """The next server update; None once closed. Raises the error that ended the link."""
        item = await self._updates.get()
        if isinstance(item, VoicekitError):
            self._updates.put_nowait(item)  # every later reader sees it too
            raise item
        if item is None:
            self._updates.put_nowait(None)
        return item

    @property
    def in_turn(self) -> bool:
        return self._in_turn

    @property
    def failed(self) -> VoicekitError | None:
        """The error that ended the link, if one did."""
        return self._error

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        self._ready.set()
        self._updates.put_nowait(None)
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # our caller is being cancelled too

    # --- connection supervisor ----------------------------------------------------------

    async def _run(self) -> None:
        failures = 0  # failed connection attempts in a row
        drops = 0  # connections in a row that broke soon after they were made
        while not self._closed:
            handle = self.handle if self.resume else None
            manager, seed = self._connect(handle)
            try:
                session = await asyncio.wait_for(manager.__aenter__(), self.connect_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by the backend's translator
                error = self._translate(exc)
                if handle is not None and not isinstance(error, AuthError) and not (error and error.retryable):
                    log.warning("%s: resuming was refused (%s); starting a fresh session", self.label, exc)
                    self.handle = None
                    continue
                failures += 1
                if error is None and failures <= self.max_retries:
                    delay = min(4.0, 0.25 * 2 ** (failures - 1)) * (0.8 + 0.4 * random.random())
                    log.info("%s: connecting failed (%s); retry %d in %.2f s", self.label, exc, failures, delay)
                    await asyncio.sleep(delay)
                    continue
                self._fail(error or _gave_up(self.label, exc))
                return
            opened_at = asyncio.get_running_loop().time()
            delay = 0.0
            try:
                failures = 0
                self.connections += 1
                self.resumed += handle is not None
                log.info("%s: connected (%s)", self.label, "resumed" if handle else "new session")
                if seed:
                    await session.send_client_content(turns=seed, turn_complete=True)
                self._ready.set()
                await self._pump(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by the backend's translator
                error = self._translate(exc)
                if error is not None:
                    self._fail(error)
                    return
                self._turn_lost()
                drops = drops + 1 if asyncio.get_running_loop().time() - opened_at < 10.0 else 1
                if drops > self.max_retries:
                    self._fail(_gave_up(self.label, exc))
                    return
                delay = 0.0 if drops == 1 else min(4.0, 0.25 * 2 ** (drops - 2))
                log.info("%s: connection lost (%s); reconnecting in %.2f s", self.label, exc, delay)
            finally:
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(manager.__aexit__(None, None, None), _CLOSE_WAIT_S)
            if delay:
                await asyncio.sleep(delay)

    async def _pump(self, session: Any) -> None:
        """Send and receive on one connection until it breaks or has to be replaced."""
        self._switch.clear()
        self._stop_sending = False
        self._go_away_pending = False
        if self._go_away_timer is not None:
            self._go_away_timer.cancel()
        sender = asyncio.ensure_future(self._send_loop(session))
        receiver = asyncio.ensure_future(self._receive_loop(session))
        switch = asyncio.ensure_future(self._switch.wait())
        try:
            await asyncio.wait({sender, receiver, switch}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and sender.exception() is not None and not receiver.done():
                # a failed write: the reader is about to see the close frame, which says why
                await asyncio.wait({receiver}, timeout=1.0)
            for task in (receiver, sender):
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # A planned switch: let the sender finish the message it is writing, then go.
            self._stop_sending = True
            self._out_ready.set()
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), _CLOSE_WAIT_S)
            if self._in_turn:
                self._turn_lost()
            log.info("%s: replacing the connection (goAway)", self.label)
        finally:
            for pending in (sender, receiver, switch):
                pending.cancel()
            await asyncio.gather(sender, receiver, switch, return_exceptions=True)

    async def _receive_loop(self, session: Any) -> None:
        while True:
            # the SDK's receive() ends after every turnComplete
            async for message in session.receive():
                self._on_update(read_update(message))

    def _on_update(self, update: LiveUpdate) -> None:
        if update.new_handle:
            self.handle = update.new_handle
        if update.model_output:
            self._in_turn = True
        if update.turn_complete or update.interrupted:
            self._in_turn = False
            if self._go_away_pending:
                self._switch.set()
        if update.go_away_s is not None:
            self._on_go_away(update.go_away_s)
        self._updates.put_nowait(update)

    def _on_go_away(self, time_left: float) -> None:
        log.info("%s: goAway, %.1f s left", self.label, time_left)
        if not self.resume:
            return  # without resumption a new connection would forget the conversation
        self._go_away_pending = True
        if not self._in_turn:
            self._switch.set()
            return
        # wait for the model to finish its turn, but not past the deadline
        delay = max(0.0, time_left - min(1.0, time_left / 2))
        self._go_away_timer = asyncio.get_running_loop().call_later(delay, self._switch.set)

    async def _send_loop(self, session: Any) -> None:
        out = self._out
        while not self._stop_sending:
            if not out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            kind, payload = out[0]
            count = 1
            if kind == "audio":
                chunks = [payload]
                size = len(payload)
                while count < len(out) and out[count][0] == "audio" and size < _MAX_AUDIO_PER_MESSAGE:
                    chunks.append(out[count][1])
                    size += len(out[count][1])
                    count += 1
                payload = b"".join(chunks)
            self._in_flight = count
            try:
                await self._send(session, kind, payload)
            finally:
                self._in_flight = 0
            for _ in range(count):  # only now: a failed send leaves them for the next connection
                sent_kind, sent = out.popleft()
                if sent_kind == "audio":
                    self._out_audio_bytes -= len(sent)
            if not out:
                self._dropping = False

    async def _send(self, session: Any, kind: str, payload: Any) -> None:
        types = self._types
        if kind == "audio":
            await session.send_realtime_input(audio=types.Blob(data=payload, mime_type=INPUT_MIME))
        elif kind == "text":
            await session.send_realtime_input(text=payload)
        elif kind == "activity_start":
            await session.send_realtime_input(activity_start=types.ActivityStart())
        elif kind == "activity_end":
            await session.send_realtime_input(activity_end=types.ActivityEnd())
        elif kind == "audio_end":
            await session.send_realtime_input(audio_stream_end=True)
        elif kind == "content":
            await session.send_client_content(turns=payload, turn_complete=True)
        else:  # pragma: no cover - a programming error
            raise ValueError(f"unknown message kind {kind!r}")

    # --- helpers --------------------------------------------------------------------------

    def _drop_oldest_audio(self) -> bool:
        for i, (kind, payload) in enumerate(self._out):
            if kind == "audio" and i >= self._in_flight:
                del self._out[i]
                self._out_audio_bytes -= len(payload)
                if not self._dropping:
                    self._dropping = True
                    log.warning(
                        "%s: over %.0f s of microphone audio waits to be sent; dropping the oldest",
                        self.label,
                        self._max_buffer_bytes / 32000,
                    )
                return True
        return False

    def _turn_lost(self) -> None:
        if self._in_turn:
            self._in_turn = False
            self._updates.put_nowait(LiveUpdate(connection_lost=True))

    def _fail(self, error: VoicekitError) -> None:
        log.debug("%s: link failed: %s", self.label, error)
        self._error = error
        self._ready.set()
        self._updates.put_nowait(error)


def _gave_up(label: str, exc: BaseException) -> BackendError:
    return BackendError(
        f"{label}: cannot reach the Gemini Live service ({exc}); check llm.base_url and the network", retryable=True
    )
