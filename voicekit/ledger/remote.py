"""Remote billable sessions of one conversation, and the managers that list and close them.

A remote session (an avatar, say) gets its ledger row *before* it is opened
(:meth:`RemoteSessions.opening`) and loses it when it is closed, so a process killed in
between leaves a row that ``voicekit sessions close --stale`` closes. While the
conversation runs, :class:`RemoteSessions` refreshes the rows' heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from voicekit.ledger.ledger import SessionLedger
from voicekit.ledger.store import default_heartbeat_interval

log = logging.getLogger(__name__)


Closer = Callable[[], Awaitable[None]]


@dataclass
class RemoteSession:
    """A billable remote session of one conversation, tracked from before it opens."""

    ledger: SessionLedger
    row_id: str
    backend: str
    remote_id: str | None = None
    closer: Closer | None = None
    closed: bool = False

    def bind(self, remote_id: str, closer: Closer, meta: dict[str, Any] | None = None) -> None:
        """The service gave it an id; ``closer`` stops it (must tolerate 'already closed')."""
        self.remote_id = remote_id
        self.closer = closer
        self.ledger.bind_remote(self.row_id, remote_id, meta)

    def mark_closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.ledger.close_remote(self.row_id)


@dataclass
class RemoteSessions:
    """The remote sessions one conversation opened; the engine closes any left at exit.

    It also keeps their ledger rows alive: :meth:`start_heartbeat` (the runner calls it for
    the whole conversation) refreshes the conversation's heartbeat and its sessions'; without
    it, a heartbeat runs by itself from the first :meth:`opening` until no session is open.
    """

    ledger: SessionLedger
    conversation_id: str | None = None
    open_sessions: list[RemoteSession] = field(default_factory=list)
    _heartbeat: asyncio.Task[None] | None = field(default=None, init=False, repr=False, compare=False)
    _pinned: bool = field(default=False, init=False, repr=False, compare=False)

    def opening(self, backend: str, meta: dict[str, Any] | None = None) -> RemoteSession:
        """Write the ledger row; call this *before* asking the service for a session."""
        session = RemoteSession(self.ledger, self.ledger.open_remote(backend, self.conversation_id, meta), backend)
        self.open_sessions.append(session)
        self._ensure_heartbeat(None)
        return session

    def start_heartbeat(self, interval_s: float | None = None) -> None:
        """Refresh the heartbeats every ``interval_s`` seconds until :meth:`stop_heartbeat`.

        Needs a running event loop; the default interval is :func:`default_heartbeat_interval`.
        """
        if self._pinned and self.heartbeat_running:
            return
        if self._heartbeat is not None:  # the one opening() started: this one has the interval asked for
            self._heartbeat.cancel()
            self._heartbeat = None
        self._pinned = True
        self._ensure_heartbeat(interval_s)

    def stop_heartbeat(self) -> None:
        """Stop refreshing them (a beat already on its way may still land; it never reopens a row)."""
        self._pinned = False
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()

    @property
    def heartbeat_running(self) -> bool:
        return self._heartbeat is not None and not self._heartbeat.done()

    def _ensure_heartbeat(self, interval_s: float | None) -> None:
        if self.heartbeat_running:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # used without an event loop: the rows age, and are orphans after the threshold
        interval = interval_s if interval_s and interval_s > 0 else default_heartbeat_interval()
        self._heartbeat = loop.create_task(self._beat(interval), name="voicekit-ledger-heartbeat")

    async def _beat(self, interval: float) -> None:
        failing = False
        while True:
            await asyncio.sleep(interval)
            rows = [s.row_id for s in self.open_sessions if not s.closed]
            if not rows and not self._pinned:
                self._heartbeat = None
                return
            try:
                await asyncio.to_thread(self.ledger.heartbeat, self.conversation_id, rows)
            except Exception as exc:  # noqa: BLE001 - a ledger outage must not end the conversation
                if not failing:
                    log.warning("session ledger heartbeat failed (will keep trying): %s", exc)
                failing = True
            else:
                if failing:
                    log.warning("session ledger heartbeat works again")
                failing = False

    async def close_all(self) -> list[str]:
        """Close every session not closed yet; returns the remote ids closed."""
        closed: list[str] = []
        for session in self.open_sessions:
            if session.closed:
                continue
            if session.closer is not None:
                try:
                    await session.closer()
                except Exception as exc:  # noqa: BLE001 - keep closing the others; the row stays for --stale
                    log.warning("could not close %s session %s: %s", session.backend, session.remote_id, exc)
                    continue
                closed.append(session.remote_id or session.row_id)
            session.mark_closed()
        return closed


@dataclass(frozen=True)
class RemoteSessionInfo:
    """An active session as the vendor lists it."""

    backend: str
    remote_id: str
    status: str = "active"
    created_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RemoteSessionManager:
    """Lists and closes one backend's remote sessions for ``voicekit sessions``."""

    backend: str = ""

    async def list_active(self) -> list[RemoteSessionInfo]:
        raise NotImplementedError

    async def close(self, remote_id: str) -> bool:
        """Close it; ``True`` also when the service says it no longer exists."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections the manager keeps (optional)."""
