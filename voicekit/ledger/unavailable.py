"""A conversation whose ledger is broken: it runs unrecorded, unless it needs a billable session.

The ledger exists so that a billable remote session is never lost track of. A conversation
that opens none (an offline one, say) loses nothing but its history row when the ledger is
damaged, locked or read-only, so it runs with a warning. :class:`UnavailableLedger` stands
in for the broken ledger: it records nothing and refuses :meth:`~UnavailableLedger.open_remote`
with the ledger's own error, so a backend that would open a billable session stops *before*
asking its service for one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from voicekit.ledger.ledger import ConversationRow, RemoteSessionRow, SessionLedger
from voicekit.ledger.store import DEFAULT_STALE_AFTER_S, LedgerError

log = logging.getLogger(__name__)

_UNRECORDED = "this conversation is not recorded, and a backend that opens a billable session will refuse to start"


class UnavailableLedger(SessionLedger):
    """Stands in for a ledger that failed with ``error``: writes nothing, opens no remote session."""

    def __init__(self, error: LedgerError) -> None:  # no super().__init__(): there is no store to open
        self.error = error
        self.url = None
        self.path = None
        self.stale_after = DEFAULT_STALE_AFTER_S

    @property
    def where(self) -> str:
        return "(unavailable)"

    def close(self) -> None:
        pass

    def start_conversation(self, profile: str, conversation_id: str | None = None) -> str:
        return conversation_id or uuid.uuid4().hex[:12]

    def end_conversation(
        self, cid: str, *, turns: int, recording: str | None, status: str = "ended", reason: str | None = None
    ) -> None:
        pass

    def conversations(self, limit: int = 50) -> list[ConversationRow]:
        return []

    def heartbeat(self, conversation_id: str | None = None, remote_rows: Iterable[str] = ()) -> None:
        pass

    def open_remote(self, backend: str, conversation_id: str | None, meta: dict[str, Any] | None = None) -> str:
        raise LedgerError(f"{backend}: a billable session is opened only with a working session ledger; {self.error}")

    def bind_remote(self, row_id: str, remote_id: str, meta: dict[str, Any] | None = None) -> None:
        pass

    def close_remote(self, row_id: str) -> None:
        pass

    def close_remote_by_remote_id(self, backend: str, remote_id: str) -> None:
        pass

    def remote_sessions(self, *, include_closed: bool = False, backend: str | None = None) -> list[RemoteSessionRow]:
        return []


def open_ledger(ledger: SessionLedger | None, warn: Callable[[str], None]) -> SessionLedger:
    """``ledger``, else the default one; when that cannot be opened, an :class:`UnavailableLedger`
    (after ``warn`` says why and what to do)."""
    if ledger is not None:
        return ledger
    try:
        return SessionLedger()
    except LedgerError as exc:
        warn(f"{exc}; {_UNRECORDED}")
        return UnavailableLedger(exc)


async def start_conversation_row(
    ledger: SessionLedger, profile: str, warn: Callable[[str], None]
) -> tuple[SessionLedger, str]:
    """Write a conversation's row off the event loop; returns the ledger to go on with (an
    :class:`UnavailableLedger` if this write failed) and the conversation's id.

    If the wait is interrupted (cancelled) while the row is being written, the row is closed
    as ``failed`` as soon as it is there: nothing is left ``running``.
    """
    cid = uuid.uuid4().hex[:12]
    writing = asyncio.get_running_loop().run_in_executor(None, ledger.start_conversation, profile, cid)
    try:
        await asyncio.shield(writing)
    except LedgerError as exc:
        warn(f"{exc}; {_UNRECORDED}")
        return UnavailableLedger(exc), cid
    except BaseException:
        writing.add_done_callback(lambda done: _close_started_row(ledger, cid, done))
        raise
    return ledger, cid


def _close_started_row(ledger: SessionLedger, cid: str, done: asyncio.Future[Any]) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # no row was written
    try:
        ledger.end_conversation(cid, turns=0, recording=None, status="failed", reason="stopped while starting")
    except Exception as exc:  # noqa: BLE001 - it shows as 'died' then, which is true enough
        log.warning("could not close conversation %s in the ledger: %s", cid, exc)
