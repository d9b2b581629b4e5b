"""One Gemini Live conversation carried over as many websocket connections as it takes.

The service ends every connection after about ten minutes (a ``goAway`` comes first)
and sockets drop. :class:`LiveLink` hides both: it keeps the newest
``sessionResumptionUpdate`` handle, and on ``goAway`` (as soon as the model is not
speaking, at the latest shortly before the time is up) or on a dropped socket it
connects again with that handle, so the conversation goes on with its context.

Everything the caller sends goes through one ordered queue, and an item leaves that
queue only once the SDK has written it: audio pushed while a connection is being
replaced waits and is sent right after the next ``setupComplete``. What was written
but is not in the resumed live session (:mod:`.replay`: a typed turn not answered yet,
audio newer than the handle) is sent again first, so no turn is lost and none is
answered twice.

Tool calls: while the model waits for tool responses, its silence is no stall. A tool
response is sent like any message, with a number (:meth:`LiveLink.send_tool_response`) that
each later update carries as ``responses_written`` once it is written; on a resumed
connection it is sent again unless the model went on after it, and a fresh live session
(resuming refused), which never asked, gets the results told in words instead.

Who retries: a ``goAway`` is no failure, the link reconnects at once. Failed
connection attempts, dropped connections and stalls (no reply to a typed turn, or a
reply that stops, for ``reply_timeout_s``) go through the role's retry policy
(:class:`voicekit.engine.retry.Retrier`); when it gives up, the error ends the link and
reaches whoever reads it (``ready()``, ``next_update()``) as one ``BackendError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from voicekit.engine.retry import Retrier
from voicekit.errors import BackendError, VoicekitError
from voicekit.options import RetryPolicy
from voicekit.plugins.llm.gemini_live.functions import results_in_words
from voicekit.plugins.llm.gemini_live.replay import ReplayBuffer
from voicekit.plugins.llm.gemini_live.wire import INPUT_MIME, LiveUpdate, read_update

log = logging.getLogger(__name__)

#: ``connect(handle)`` → (the SDK's ``live.connect`` context manager, history turns to seed or None)
Connector = Callable[[str | None], tuple[AbstractAsyncContextManager[Any], list[Any] | None]]
#: ``translate(exc)`` → the error to raise, or None when reconnecting may help
Translator = Callable[[BaseException], VoicekitError | None]

_MAX_AUDIO_PER_MESSAGE = 6400  # 200 ms at 16 kHz: coalesce a backlog into fewer messages
_CLOSE_WAIT_S = 2.0
_BYTES_PER_S = 32000  # 16 kHz 16-bit mono
_REPLAY_AUDIO_S = 30.0  # at most this much unanswered audio is sent again on a new connection
_WORKED_S = 10.0  # a connection that lasted this long worked: a later drop starts the retries afresh


class LiveLink:
    """A resumable live session: an ordered send queue in, :class:`LiveUpdate` out (see the module doc)."""

    def __init__(
        self,
        *,
        connect: Connector,
        translate: Translator,
        types: Any,
        label: str,
        retry: RetryPolicy | None = None,
        resume: bool = True,
        connect_timeout_s: float = 10.0,
        reply_timeout_s: float = 30.0,
        max_buffer_s: float = 600.0,
    ) -> None:
        self._connect, self._translate, self._types = connect, translate, types
        self.label = label
        self.retry = retry or RetryPolicy.model_validate({})
        self.resume = resume
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._max_buffer_bytes = int(max_buffer_s * _BYTES_PER_S)
        self._replay = ReplayBuffer(int(_REPLAY_AUDIO_S * _BYTES_PER_S))
        self.replayed = 0  # messages sent again on a new connection, over the link's life
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
        self._stall_timer: asyncio.TimerHandle | None = None
        self._stalled = False
        self._turns_done = 0  # model turns completed on the current connection
        self._waiting_calls: set[str] = set()  # ids of calls the model waits on
        self._session_calls: set[str] = set()  # ids of the calls the current live session made, still open
        self._responses_queued = 0  # tool responses handed to send_tool_response
        self._responses_written = 0  # the highest of their numbers written so far

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

    def send_tool_response(self, responses: list[Any]) -> int:
        """Queue ``FunctionResponse`` s; their number, which updates carry once they are written
        (0: none went as a response, because this live session never made those calls)."""
        known = [r for r in responses if str(r.id) in self._session_calls]
        unknown = [r for r in responses if str(r.id) not in self._session_calls]
        if unknown:
            log.warning("%s: this live session never made the call; it gets the results as words", self.label)
            self.send("text", results_in_words(unknown))
        if not known:
            return 0
        self._responses_queued += 1
        self.send("tool_response", (self._responses_queued, known))
        return self._responses_queued

    @property
    def types(self) -> Any:
        """The SDK's ``google.genai.types`` module."""
        return self._types

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

    def queued_texts(self) -> list[str]:
        """Typed turns waiting to be sent (again): a fresh live session's seed leaves them out."""
        return [str(payload) for kind, payload in self._out if kind == "text"]

    @property
    def failed(self) -> VoicekitError | None:
        """The error that ended the link, if one did."""
        return self._error

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_stall_timer()
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
        retrier = Retrier(self.retry, label=self.label)
        while not self._closed:
            handle = self.handle if self.resume else None
            manager, seed = self._connect(handle)
            try:
                session = await asyncio.wait_for(manager.__aenter__(), self.connect_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by the backend's translator
                error = self._translate(exc)
                if handle is not None and _refuses_handle(error):
                    log.warning("%s: resuming was refused (%s); starting a fresh live session", self.label, exc)
                    self.handle = None
                    continue
                if not await self._retry(retrier, error or _unreachable(self.label, exc)):
                    return
                continue
            opened_at = asyncio.get_running_loop().time()
            try:
                failure = await self._serve(session, resumed=handle is not None, seed=seed)
            finally:
                with contextlib.suppress(Exception, asyncio.TimeoutError):
                    await asyncio.wait_for(manager.__aexit__(None, None, None), _CLOSE_WAIT_S)
            self._connection_ended()
            lasted = asyncio.get_running_loop().time() - opened_at
            if failure is None or (not self._stalled and (self._turns_done or lasted >= _WORKED_S)):
                retrier.reset()
            if failure is not None and not await self._retry(retrier, failure):
                return

    async def _serve(self, session: Any, *, resumed: bool, seed: list[Any] | None) -> VoicekitError | None:
        """One connection, until it breaks (its error) or has to be replaced (None)."""
        self.connections += 1
        self.resumed += resumed
        self._turns_done = 0
        log.info("%s: connected (%s)", self.label, "resumed" if resumed else "new live session")
        if not resumed:
            self._tell_results_in_words()
        try:
            if seed:
                await session.send_client_content(turns=seed, turn_complete=True)
            self._ready.set()
            await self._pump(session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by the backend's translator
            error = self._translate(exc) or _lost(self.label, exc)
            log.info("%s: %s", self.label, error)
            return error
        if self._stalled:
            what = "the reply stopped" if self._in_turn else "no reply"
            return BackendError(f"{self.label}: {what} for {self.reply_timeout_s:g} s", retryable=True)
        return None

    def _tell_results_in_words(self) -> None:
        """A fresh live session never asked for the tool responses still to send: say them."""
        self._waiting_calls.clear()
        self._session_calls.clear()
        if not any(kind == "tool_response" for kind, _ in self._out):
            return
        log.warning("%s: a new live session gets the tool results as words", self.label)
        self._out = deque(
            ("text", results_in_words(payload[1])) if kind == "tool_response" else (kind, payload)
            for kind, payload in self._out
        )

    async def _retry(self, retrier: Retrier, error: VoicekitError) -> bool:
        """Wait before the next connection; False (and the link fails) when the policy gives up."""
        try:
            await retrier.wait(error)
        except VoicekitError:
            self._fail(error)
            return False
        return True

    def _connection_ended(self) -> None:
        """The reply under way is cut; what the next connection lacks goes to the head of the queue."""
        self._cancel_stall_timer()
        replay = self._replay.take()
        # a turn that waits for tool responses is not lost: they go (again) to the next connection
        awaiting_tools = bool(self._waiting_calls) or any(kind == "tool_response" for kind, _ in replay)
        lost_turn = self._in_turn and not awaiting_tools
        self._in_turn = False
        resent_audio = any(kind == "audio" for kind, _ in replay)
        if replay:
            log.info("%s: sending %d message(s) again on the next connection", self.label, len(replay))
            self.replayed += len(replay)
            self._out.extendleft(reversed(replay))
            self._out_audio_bytes += sum(len(payload) for kind, payload in replay if kind == "audio")
            self._out_ready.set()
        if lost_turn or resent_audio:
            lost = LiveUpdate(connection_lost=lost_turn, audio_resent=resent_audio)
            lost.responses_written = self._responses_written
            self._updates.put_nowait(lost)

    async def _pump(self, session: Any) -> None:
        """Send and receive on one connection until it breaks or has to be replaced."""
        self._switch.clear()
        self._stop_sending = False
        self._stalled = False
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
            log.info("%s: replacing the connection (%s)", self.label, "stalled" if self._stalled else "goAway")
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
        update.responses_written = self._responses_written
        if update.new_handle:
            self.handle = update.new_handle
            self._replay.covered()
        if update.cancelled_calls:
            self._waiting_calls.difference_update(update.cancelled_calls)
            self._session_calls.difference_update(update.cancelled_calls)
        if (update.model_output or update.tool_calls) and not self._in_turn:
            self._in_turn = True
            self._replay.reply_started()
        if update.tool_calls:
            self._waiting_calls.update(call_id for call_id, _, _ in update.tool_calls)
            self._session_calls.update(call_id for call_id, _, _ in update.tool_calls)
        if update.model_output or update.turn_complete or update.interrupted:
            self._replay.tool_answered()
        if update.turn_complete or update.interrupted:
            self._in_turn = False
            self._turns_done += update.turn_complete
            self._replay.turn_ended()
            if self._go_away_pending:
                self._switch.set()
        if update.model_output or update.turn_complete or update.interrupted or update.generation_complete:
            self._arm_stall_timer(restart=True)
        elif update.tool_calls or update.cancelled_calls:
            self._arm_stall_timer(restart=True)
        if update.go_away_s is not None:
            self._on_go_away(update.go_away_s)
        self._updates.put_nowait(update)

    def _arm_stall_timer(self, *, restart: bool) -> None:
        """While a typed turn waits for its reply, or a reply is under way, the service must go on
        (not while the model waits for tool responses: then the silence is ours)."""
        if self._closed or self._waiting_calls or not (self._in_turn or self._replay.awaiting_reply):
            self._cancel_stall_timer()
        elif self._stall_timer is None or restart:
            self._cancel_stall_timer()
            self._stall_timer = asyncio.get_running_loop().call_later(self.reply_timeout_s, self._on_stall)

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _on_stall(self) -> None:
        self._stall_timer = None
        log.warning("%s: nothing from the model for %.3g s; replacing the connection", self.label, self.reply_timeout_s)
        self._stalled = True
        self._switch.set()

    def _on_go_away(self, time_left: float) -> None:
        log.info("%s: goAway, %.1f s left", self.label, time_left)
        if not self.resume:
            return  # without resumption a new connection would forget the conversation
        self._go_away_pending = True
        if not (self._in_turn or self._waiting_calls):
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
            if kind == "tool_response":
                number, responses = payload
                self._responses_written = max(self._responses_written, number)
                self._waiting_calls.difference_update(str(response.id) for response in responses)
                self._session_calls.difference_update(str(response.id) for response in responses)
            self._replay.written(kind, payload, model_speaking=self._in_turn and kind != "tool_response")
            self._arm_stall_timer(restart=False)
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
        elif kind == "tool_response":
            await session.send_tool_response(function_responses=payload[1])
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

    def _fail(self, error: VoicekitError) -> None:
        log.debug("%s: link failed: %s", self.label, error)
        self._error = error
        self._cancel_stall_timer()
        self._ready.set()
        self._updates.put_nowait(error)


def _refuses_handle(error: VoicekitError | None) -> bool:
    """The service refused the resumption handle itself (an invalid argument), not the caller."""
    return isinstance(error, BackendError) and not error.retryable


def _unreachable(label: str, exc: BaseException) -> BackendError:
    return BackendError(
        f"{label}: cannot reach the Gemini Live service ({exc}); check llm.base_url and the network", retryable=True
    )


def _lost(label: str, exc: BaseException) -> BackendError:
    return BackendError(f"{label}: the connection to the Gemini Live service was lost ({exc})", retryable=True)
