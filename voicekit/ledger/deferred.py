"""A ledger for a server: the end of a conversation is written off the event loop.

A conversation's row is closed from the cleanup of its connection, on the event loop that
every other conversation of the server shares; a SQLite commit (an fsync) or a PostgreSQL
round trip there would pause all of them. :class:`DeferredLedger` hands those writes to one
thread of its own, in order, and :meth:`DeferredLedger.flush` waits for them (the server
calls it before it exits). Everything else is the ledger it wraps.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from voicekit.ledger.ledger import SessionLedger

log = logging.getLogger(__name__)


class DeferredLedger(SessionLedger):
    """``ledger``, with :meth:`end_conversation` written by a background thread, in order."""

    def __init__(self, ledger: SessionLedger) -> None:  # shares the wrapped ledger's store
        self.__dict__.update(ledger.__dict__)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicekit-ledger")

    def end_conversation(
        self, cid: str, *, turns: int, recording: str | None, status: str = "ended", reason: str | None = None
    ) -> None:
        self._writer.submit(self._end, cid, turns, recording, status, reason)

    def _end(self, cid: str, turns: int, recording: str | None, status: str, reason: str | None) -> None:
        try:
            super().end_conversation(cid, turns=turns, recording=recording, status=status, reason=reason)
        except Exception as exc:  # noqa: BLE001 - the row shows as 'died' then; the server goes on
            log.warning("could not record the end of conversation %s in the ledger: %s", cid, exc)

    def flush(self) -> None:
        """Wait for every write handed over so far."""
        self._writer.submit(lambda: None).result()

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        super().close()
