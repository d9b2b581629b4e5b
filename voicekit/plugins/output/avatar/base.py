"""The base of outputs that speak through a billable remote session (talking avatars).

:class:`RemoteAvatarOutput` owns what every such session needs, whatever the vendor: the
ledger row, the open that survives cancellation, keep-alive, the duration limit, the
stop that always happens, the speech timeline and the send loop. HeyGen and LiveAvatar
subclass it with their calls and message formats only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from pydantic import Field

from voicekit.clock import now
from voicekit.errors import BackendError
from voicekit.events import OutputEvent
from voicekit.options import CloudOptions
from voicekit.plugins.output.avatar.api import AvatarAPI, AvatarAPIError, AvatarService
from voicekit.plugins.output.avatar.room import leave_room, start_recorder, stop_recorder
from voicekit.plugins.output.avatar.sessions import remote_sessions_of
from voicekit.plugins.output.avatar.tasks import after, cancel, deadline_margin_s, every
from voicekit.plugins.output.avatar.timeline import SpeechTimeline, Utterance, UtteranceQueue
from voicekit.roles import BackendContext, Capabilities, Output, RemoteSessionHandle, RemoteSessionTracker

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


class RemoteAvatarOptions(CloudOptions):
    """Options every avatar output has: its LiveKit room and the recording of it."""

    connect_room: bool = Field(
        True, description="Join the avatar's LiveKit room (speaking events, recording); failure only warns"
    )
    room_timeout_s: float = Field(10.0, gt=0, le=300, description="How long to try joining the LiveKit room")
    record: bool = Field(False, description="With `chat --record DIR`, record the avatar's video to DIR/avatar.mp4")


class RemoteAvatarOutput(Output):
    """An output that speaks through a billable remote session, which is always closed.

    The base does, for every vendor:

    - ``start()``: writes the ledger row (``context.remote_sessions.opening``) *before* it
      asks the service for a session (:meth:`create_session`), and binds the row to the
      session id the moment the service answers, even when ``start()`` is cancelled
      meanwhile (the request is let finish, and ``aclose()`` stops what it made). Then
      :meth:`begin` starts the session, a task keeps it alive every
      :meth:`keepalive_interval_s`, and another ends it shortly before
      :meth:`duration_limit_s`. A failed or cancelled ``start()`` closes everything.
    - ``speak()``: hands the sentences to the avatar as they come (:meth:`send_sentences`,
      by default one :meth:`send_text` each, giving an :class:`Utterance`) and yields
      ``SpeakingStarted`` / ``SpeakingEnded`` in the avatar's time (:class:`SpeechTimeline`,
      from the room's signals through :meth:`on_room_data` when there are any). When the
      session has ended on the service's side (:meth:`session_ended`), the turn fails with
      the reason.
    - ``interrupt()`` stops the avatar (:meth:`interrupt_avatar`) and the current turn.
    - ``aclose()`` (idempotent, finishes even if cancelled again) closes the recorder, the
      vendor's channels (:meth:`close_channels`), the room, stops the session
      (:meth:`stop_call`; a session the service says is gone counts as closed), closes the
      API client and, when run standalone, the ledger it opened for itself.

    Who retries: the API client, per the role's policy (``context.retry``): calls that are
    safe to repeat (stop, keep-alive) on any retryable failure, the others only on a 429.
    """

    capabilities = Capabilities(streaming=True, produces_audio=False, remote_session=True)
    extra: ClassVar[str | None] = "avatar"
    #: the vendor's API, key and name in the ledger
    service: ClassVar[AvatarService]
    #: what to change about the duration limit, said when it is reached
    duration_hint: ClassVar[str] = ""
    options: RemoteAvatarOptions

    def __init__(self, options: Any = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.session_id: str | None = None
        self.room: Any = None
        self.recorder: Any = None
        self.api: AvatarAPI | None = None
        self.timeline = SpeechTimeline()
        self.ended_reason: str | None = None
        self._session: RemoteSessionHandle | None = None
        self._own_sessions: RemoteSessionTracker | None = None
        self._creating: asyncio.Task[dict[str, Any]] | None = None
        self._created_at = 0.0
        self._interrupted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: asyncio.Task[None] | None = None
        self._closed = False

    # --- what a vendor implements ---------------------------------------------------

    async def prepare(self) -> None:
        """Before any session exists: check options, start nested backends."""

    def ledger_meta(self) -> dict[str, Any]:
        """What the ledger row says about the session before it exists."""
        return {}

    def bound_meta(self, created: dict[str, Any]) -> dict[str, Any]:
        """What the ledger row says once the service made the session (``created`` is its reply)."""
        return self.ledger_meta()

    async def create_session(self, api: AvatarAPI) -> Any:
        """Ask the service for a session; the reply's ``data`` holds its ``session_id``."""
        raise NotImplementedError

    def explain(self, exc: AvatarAPIError) -> BackendError:
        """The error of a failed create, said in the backend's own terms (which option to change)."""
        return exc

    async def begin(self, created: dict[str, Any]) -> None:
        """Start the session the service made (``created`` is its reply): start call, room, channels."""

    async def stop_call(self, api: AvatarAPI, session_id: str) -> None:
        """Stop ``session_id`` on the service (raise :class:`AvatarAPIError`; ``gone`` counts as stopped)."""
        raise NotImplementedError

    def keepalive_interval_s(self) -> float:
        """Seconds between keep-alives: well inside the service's idle timeout."""
        return 60.0

    async def keep_alive(self) -> None:
        """Tell the service the session is still in use."""

    def duration_limit_s(self) -> float | None:
        """The longest the service lets the session live, in seconds (``None``: no limit known)."""
        return None

    async def send_sentences(
        self, sentences: AsyncIterator[str], put: Callable[[Utterance], None], interrupted: asyncio.Event
    ) -> None:
        """Hand each sentence to the avatar as it comes and ``put`` its :class:`Utterance`."""
        async for sentence in sentences:
            text = sentence.strip()
            if interrupted.is_set():
                break
            if text:
                put(await self.send_text(text))

    async def send_text(self, text: str) -> Utterance:
        """Have the avatar say ``text``."""
        raise NotImplementedError

    async def interrupt_avatar(self) -> None:
        """Make the avatar stop speaking and drop what it has queued."""

    def speaks_by_room_signals(self) -> bool:
        """Whether the room's messages mark when each sentence is spoken."""
        return True

    def on_room_data(self, packet: Any) -> None:
        """A data packet from the avatar's room: feed ``self.timeline.signal(...)`` or :meth:`session_ended`."""

    async def close_channels(self) -> None:
        """Close what :meth:`begin` opened besides the room (a websocket, a nested voice)."""

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.prepare()
            self.api = self._new_api()
            self.timeline = SpeechTimeline(fast=self.context.fast)
            created = await self._open()
            await self.begin(created)
            log.info("%s session %s started", self.service.vendor, self.session_id)
            name = self.service.backend
            self._tasks.append(every(self.keepalive_interval_s(), self._keep_alive, f"{name}-keepalive"))
            limit = self.duration_limit_s()
            if limit is not None and limit > 0:
                delay = max(0.0, limit - deadline_margin_s(limit) - (now() - self._created_at))
                self._tasks.append(after(delay, lambda: self._end_at_limit(limit), f"{name}-deadline"))
            self.recorder = await start_recorder(self.context, self.room, self.options.record, self.service.vendor)
        except BaseException:
            await self.aclose()
            raise

    def _new_api(self) -> AvatarAPI:
        return self.service.api(
            self.api_key(), base_url=self.options.base_url, timeout_s=self.options.timeout_s, retry=self.context.retry
        )

    async def _open(self) -> dict[str, Any]:
        sessions, owned = remote_sessions_of(self.context)
        self._own_sessions = sessions if owned else None
        self._session = sessions.opening(self.service.backend, meta=self.ledger_meta())
        self._creating = creating = asyncio.ensure_future(self._create())
        creating.add_done_callback(self._bind)  # runs before the await below returns: callbacks go in order
        # shielded: a cancelled start() must not lose a session the service is making
        created = await asyncio.shield(creating)
        if self.session_id is None:
            raise BackendError(f"{self.service.vendor} answered without a session_id: {str(created)[:200]}")
        return created

    async def _create(self) -> dict[str, Any]:
        assert self.api is not None
        try:
            created = await self.create_session(self.api)
        except AvatarAPIError as exc:
            explained = self.explain(exc)
            if explained is exc:
                raise
            raise explained from exc
        if not isinstance(created, dict):
            raise BackendError(f"{self.service.vendor} answered the new session without data: {created!r}")
        return created

    def _bind(self, creating: asyncio.Future[dict[str, Any]]) -> None:
        """The service made the session: its id goes into the ledger at once, whoever awaits the request."""
        if creating.cancelled() or creating.exception() is not None or self._session is None:
            return
        remote_id = creating.result().get("session_id")
        if not remote_id:
            return
        self.session_id, self._created_at = str(remote_id), now()
        try:
            self._session.bind(self.session_id, self._closer_for(self.session_id), self.bound_meta(creating.result()))
        except Exception as exc:  # noqa: BLE001 - aclose() still stops it by its id
            log.warning("could not write %s session %s to the ledger: %s", self.service.vendor, remote_id, exc)

    def _closer_for(self, session_id: str) -> Closer:
        async def close() -> None:
            await self._stop(session_id)

        return close

    async def _stop(self, session_id: str) -> None:
        """Stop the session; one that no longer exists counts as stopped."""
        api = self.api if self.api is not None and not self._closed else self._new_api()
        try:
            await self.stop_call(api, session_id)
            log.info("%s session %s stopped", self.service.vendor, session_id)
        except AvatarAPIError as exc:
            if not exc.gone:
                raise
            log.info("%s session %s was already closed", self.service.vendor, session_id)
        finally:
            if api is not self.api:
                await api.aclose()

    async def _stop_session(self) -> None:
        session = self._session
        if session is None or session.closed:
            return
        remote_id = session.remote_id or self.session_id
        if remote_id is None:  # never created: nothing to close on the service
            session.mark_closed()
            return
        try:
            await self._stop(remote_id)
        except Exception as exc:  # noqa: BLE001 - the ledger row stays for `sessions close --stale`
            log.warning("could not stop %s session %s: %s", self.service.vendor, remote_id, exc)
            return
        session.mark_closed()

    async def _keep_alive(self) -> None:
        if self.session_id is None or self.ended_reason:
            return
        try:
            await self.keep_alive()
        except AvatarAPIError as exc:
            if not exc.gone:
                raise
            log.warning("%s session %s is gone: %s", self.service.vendor, self.session_id, exc.detail)
            self.session_ended("the service closed it (idle timeout?)", gone=True)

    async def _end_at_limit(self, limit_s: float) -> None:
        log.warning("%s session %s reaches its %.0f s limit: ending it", self.service.vendor, self.session_id, limit_s)
        self.session_ended(f"it reached its duration limit ({limit_s:.0f} s{self.duration_hint})")
        await self._stop_session()

    def session_ended(self, reason: str, *, gone: bool = False) -> None:
        """The session is over before we closed it (the service ended it, or its time is up):
        the current turn stops and the next one fails saying ``reason``. ``gone``: the service
        says it no longer exists, so its ledger row is closed."""
        if gone and self._session is not None:
            self._session.mark_closed()
        if self._closing is not None or self.ended_reason:
            return
        self.ended_reason = reason
        self._interrupted.set()

    async def aclose(self) -> None:
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        closing = self._closing
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await closing  # the session is stopped even when we are cancelled again meanwhile
            raise

    async def _close(self) -> None:
        self._interrupted.set()
        for task in self._tasks:
            await cancel(task)
        self._tasks.clear()
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            await stop_recorder(recorder)
        try:
            await self.close_channels()
        except Exception as exc:  # noqa: BLE001 - the session must still be stopped
            log.warning("closing the %s channels failed: %s", self.service.vendor, exc)
        if self.room is not None:
            room, self.room = self.room, None
            await leave_room(room)
        if self._creating is not None and not self._creating.done():
            # the service may be making a session right now: let it answer, then stop what it made
            await asyncio.wait({self._creating})
        await self._stop_session()
        self._closed = True
        if self.api is not None:
            await self.api.aclose()
        if self._own_sessions is not None:
            await self._own_sessions.close_all()

    # --- the room -------------------------------------------------------------------

    def attach_room(self, room: Any) -> None:
        """Use ``room`` (connected, or any ``rtc.Room`` that emits the avatar's messages)."""
        self.room = room
        if self.speaks_by_room_signals():
            self.timeline.use_signals = True
        room.on("data_received", self.on_room_data)

    # --- speaking -------------------------------------------------------------------

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        """Hand each sentence to the avatar at once; yield its speaking events as it says it.

        The turn's interrupt state is taken here, when ``speak`` is called: an ``interrupt()``
        from then on stops this turn, even before its first event is read.
        """
        self._interrupted = interrupted = asyncio.Event()
        return self._speak(sentences, interrupted)

    async def _speak(self, sentences: AsyncIterator[str], interrupted: asyncio.Event) -> AsyncIterator[OutputEvent]:
        self._check_open()
        if interrupted.is_set():
            return
        self.timeline.reset()
        items: UtteranceQueue = asyncio.Queue()
        sender = asyncio.ensure_future(self._deliver(sentences, items, interrupted))
        try:
            async for event in self.timeline.play(items, interrupted):
                yield event
        finally:
            await cancel(sender)
        if self.ended_reason and not self._closed:
            raise BackendError(f"the {self.service.vendor} session ended: {self.ended_reason}")

    async def _deliver(self, sentences: AsyncIterator[str], items: UtteranceQueue, interrupted: asyncio.Event) -> None:
        try:
            await self.send_sentences(sentences, items.put_nowait, interrupted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the reader, who raises it
            items.put_nowait(exc)
        finally:
            items.put_nowait(None)

    def _check_open(self) -> None:
        if self.ended_reason:
            raise BackendError(f"the {self.service.vendor} session ended: {self.ended_reason}")
        if self.api is None or self.session_id is None or self._closing is not None:
            raise BackendError(f"{self.service.vendor} output is not started (call start() first)")

    @property
    def speaking_possible(self) -> bool:
        """Started, not closing, and not ended by the service."""
        return self.session_id is not None and self._closing is None and not self.ended_reason

    async def interrupt(self) -> None:
        """Stop the avatar now: the current ``speak`` ends and queued speech is dropped."""
        self._interrupted.set()
        if self.speaking_possible:
            await self.interrupt_avatar()
