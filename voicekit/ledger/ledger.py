"""The session ledger: local conversations and remote billable sessions.

A remote session (an avatar, say) gets its ledger row *before* it is opened and
loses it when it is closed, so a process killed in between leaves a row that the
next ``voicekit`` run reports as an orphan and ``voicekit sessions close --stale``
closes. While a conversation runs, its process refreshes the ``heartbeat_at`` of its
rows; a row whose heartbeat is older than a threshold (90 s by default) is an orphan,
and so is one written on this host by a process that no longer exists.

The ledger is SQLite in the user data directory (``VOICEKIT_LEDGER`` moves it), or a
PostgreSQL database that a whole fleet shares when ``VOICEKIT_LEDGER_URL`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.ledger.store import DEFAULT_STALE_AFTER_S as DEFAULT_STALE_AFTER_S
from voicekit.ledger.store import default_heartbeat_interval as default_heartbeat_interval
from voicekit.ledger.store import default_stale_after as default_stale_after
from voicekit.ledger.store import host_id as host_id

if TYPE_CHECKING:
    from voicekit.ledger.store import LedgerStore

log = logging.getLogger(__name__)


def default_ledger_path() -> Path:
    """The SQLite ledger file: the ``ledger`` setting (``VOICEKIT_LEDGER``), else the data dir's."""
    from voicekit.settings import settings

    target = settings().ledger_target
    return target if isinstance(target, Path) else settings().data_dir / "ledger.sqlite3"


def default_ledger_target() -> str | Path:
    """The ``ledger_url`` setting (``VOICEKIT_LEDGER_URL``, PostgreSQL) if set, else ``ledger``, else the file."""
    from voicekit.settings import settings

    return settings().ledger_target


def ledger_source() -> str:
    """What chose the default ledger, for messages."""
    from voicekit.settings import settings

    if (settings().ledger_url or "").strip():
        return "VOICEKIT_LEDGER_URL"
    if (settings().ledger or "").strip():
        return "VOICEKIT_LEDGER"
    return "the default location; VOICEKIT_LEDGER moves it"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(heartbeat_age: float | None, stale_after: float) -> bool:
    return heartbeat_age is not None and heartbeat_age > stale_after


def _dead_here(host: str, pid: int) -> bool:
    return host == host_id() and not _pid_alive(pid)


def _age_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@dataclass(frozen=True)
class ConversationRow:
    id: str
    profile: str
    started_at: float
    ended_at: float | None
    turns: int
    recording: str | None
    host: str
    pid: int
    status: str
    heartbeat_at: float | None = None
    heartbeat_age: float | None = None  # seconds since the heartbeat, by the ledger's clock when read
    stale_after: float = DEFAULT_STALE_AFTER_S
    reason: str | None = None  # why it ended, when it failed ("deepgram rejected the API key ...")

    @property
    def died(self) -> bool:
        """Still 'running', but its process ended or stopped sending heartbeats."""
        return self.status == "running" and (
            _stale(self.heartbeat_age, self.stale_after) or _dead_here(self.host, self.pid)
        )


@dataclass(frozen=True)
class RemoteSessionRow:
    id: str
    backend: str
    remote_id: str | None
    conversation_id: str | None
    state: str  # opening | open | closed
    opened_at: float
    closed_at: float | None
    host: str
    pid: int
    meta: dict[str, Any]
    heartbeat_at: float | None = None
    heartbeat_age: float | None = None  # seconds since the heartbeat, by the ledger's clock when read
    stale_after: float = DEFAULT_STALE_AFTER_S

    @property
    def orphaned(self) -> bool:
        """Still open, but the process that opened it is gone: no heartbeat for ``stale_after``
        seconds, or it ran on this host and has ended."""
        return self.orphan_reason is not None

    @property
    def orphan_reason(self) -> str | None:
        """Why it is an orphan (``None``: it is not)."""
        if self.state == "closed":
            return None
        if _dead_here(self.host, self.pid):
            return f"process {self.pid} ended"
        if _stale(self.heartbeat_age, self.stale_after):
            assert self.heartbeat_age is not None
            where = "" if self.host == host_id() else f" on {self.host}"
            return f"no heartbeat from process {self.pid}{where} for {_age_text(self.heartbeat_age)}"
        return None


_CONVERSATION_COLUMNS = "id, profile, started_at, ended_at, turns, recording, host, pid, status"
_REMOTE_COLUMNS = "id, backend, remote_id, conversation_id, state, opened_at, closed_at, host, pid, meta"


class SessionLedger:
    """Rows of conversations and remote sessions, in SQLite or, for a fleet, PostgreSQL.

    ``target`` is a SQLite file or a ``postgresql://`` URL; by default ``VOICEKIT_LEDGER_URL``,
    else ``VOICEKIT_LEDGER``, else ``ledger.sqlite3`` in the user data directory. The tables
    are created (or migrated) if needed. Safe to share between threads and processes.
    """

    def __init__(
        self, path: Path | str | None = None, *, url: str | None = None, stale_after: float | None = None
    ) -> None:
        from voicekit.ledger.store import is_url, open_store

        target: str | Path = url or path or default_ledger_target()
        source = ledger_source() if not (url or path) else "the ledger given to SessionLedger"
        self.url: str | None = target if isinstance(target, str) and is_url(target) else None
        self.path: Path | None = None if self.url else Path(target)
        self.stale_after = stale_after if stale_after and stale_after > 0 else default_stale_after()
        self._store: LedgerStore = open_store(self.url or target, source=source)
        self._store.ensure_schema()

    @classmethod
    def existing(
        cls, path: Path | str | None = None, *, stale_after: float | None = None, connect_timeout_s: float = 2.0
    ) -> SessionLedger | None:
        """The ledger opened read-only, or ``None`` if there is none yet (nothing is created)."""
        from voicekit.ledger.store import is_url, open_store

        target: str | Path = path or default_ledger_target()
        ledger = cls.__new__(cls)
        ledger.url = target if isinstance(target, str) and is_url(target) else None
        ledger.path = None if ledger.url else Path(target)
        ledger.stale_after = stale_after if stale_after and stale_after > 0 else default_stale_after()
        if ledger.path is not None and not ledger.path.exists():
            return None
        source = ledger_source() if not path else "the ledger given to SessionLedger"
        ledger._store = open_store(
            ledger.url or target, readonly=True, connect_timeout_s=connect_timeout_s, source=source
        )
        return ledger if ledger._store.version > 0 else None

    @property
    def where(self) -> str:
        """The file, or the URL without its password."""
        return self._store.where

    def close(self) -> None:
        """Close the database connection the ledger keeps (PostgreSQL); it reopens if used again."""
        self._store.close()

    # conversations
    def start_conversation(self, profile: str, conversation_id: str | None = None) -> str:
        cid = conversation_id or uuid.uuid4().hex[:12]
        self._store.write(
            [
                (
                    "INSERT INTO conversations (id, profile, started_at, host, pid, heartbeat_at) "
                    "VALUES (?,?,{now},?,?,{now}) ON CONFLICT (id) DO NOTHING",
                    (cid, profile, host_id(), os.getpid()),
                )
            ]
        )
        return cid

    def end_conversation(
        self, cid: str, *, turns: int, recording: str | None, status: str = "ended", reason: str | None = None
    ) -> None:
        """Close the conversation's row: ``status`` is ended, interrupted or failed; ``reason``
        says why in one line (the error that ended it)."""
        self._store.write(
            [
                (
                    "UPDATE conversations SET ended_at={now}, heartbeat_at={now}, turns=?, recording=?, status=?, "
                    "reason=? WHERE id=?",
                    (turns, recording, status, (reason or "")[:500] or None, cid),
                )
            ]
        )

    def conversations(self, limit: int = 50) -> list[ConversationRow]:
        rows = self._store.read(
            f"SELECT {_CONVERSATION_COLUMNS}, {self._heartbeat_column('started_at')}, {{now}}, "
            f"{'reason' if self._store.version >= 3 else 'NULL'} FROM conversations ORDER BY started_at DESC LIMIT ?",
            (limit,),
        )
        return [
            ConversationRow(
                id=row[0],
                profile=row[1],
                started_at=row[2],
                ended_at=row[3],
                turns=row[4],
                recording=row[5],
                host=row[6],
                pid=row[7],
                status=row[8],
                heartbeat_at=row[9],
                heartbeat_age=_age(row[9], row[10]),
                stale_after=self.stale_after,
                reason=row[11],
            )
            for row in rows
        ]

    def heartbeat(self, conversation_id: str | None = None, remote_rows: Iterable[str] = ()) -> None:
        """Say that the process behind a conversation and its remote sessions is alive.

        Refreshes ``heartbeat_at`` of the running conversation, of its open remote sessions
        and of the open rows ``remote_rows`` (ledger ids); ended and closed rows stay as they are.
        """
        statements: list[tuple[str, tuple[Any, ...]]] = []
        if conversation_id:
            statements.append(
                (
                    "UPDATE conversations SET heartbeat_at={now} WHERE id=? AND ended_at IS NULL",
                    (conversation_id,),
                )
            )
            statements.append(
                (
                    "UPDATE remote_sessions SET heartbeat_at={now} WHERE conversation_id=? AND state != 'closed'",
                    (conversation_id,),
                )
            )
        ids = tuple(remote_rows)
        if ids:
            statements.append(
                (
                    f"UPDATE remote_sessions SET heartbeat_at={{now}} WHERE id IN ({','.join('?' * len(ids))}) "
                    "AND state != 'closed'",
                    ids,
                )
            )
        if statements:
            self._store.write(statements)

    # remote sessions
    def open_remote(self, backend: str, conversation_id: str | None, meta: dict[str, Any] | None = None) -> str:
        row_id = uuid.uuid4().hex[:12]
        self._store.write(
            [
                (
                    "INSERT INTO remote_sessions (id, backend, conversation_id, state, opened_at, host, pid, meta, "
                    "heartbeat_at) VALUES (?,?,?,?,{now},?,?,?,{now}) ON CONFLICT (id) DO NOTHING",
                    (row_id, backend, conversation_id, "opening", host_id(), os.getpid(), json.dumps(meta or {})),
                )
            ]
        )
        return row_id

    def bind_remote(self, row_id: str, remote_id: str, meta: dict[str, Any] | None = None) -> None:
        self._store.write(
            [
                (
                    "UPDATE remote_sessions SET remote_id=?, state='open', meta=?, heartbeat_at={now} WHERE id=?",
                    (remote_id, json.dumps(meta or {}), row_id),
                )
            ]
        )

    def close_remote(self, row_id: str) -> None:
        self._store.write(
            [
                (
                    "UPDATE remote_sessions SET state='closed', closed_at={now} WHERE id=? AND state != 'closed'",
                    (row_id,),
                )
            ]
        )

    def close_remote_by_remote_id(self, backend: str, remote_id: str) -> None:
        self._store.write(
            [
                (
                    "UPDATE remote_sessions SET state='closed', closed_at={now} WHERE backend=? AND remote_id=? "
                    "AND state != 'closed'",
                    (backend, remote_id),
                )
            ]
        )

    def remote_sessions(self, *, include_closed: bool = False, backend: str | None = None) -> list[RemoteSessionRow]:
        heartbeat = self._heartbeat_column("opened_at")
        query = f"SELECT {_REMOTE_COLUMNS}, {heartbeat}, {{now}} FROM remote_sessions WHERE 1=1"
        args: list[Any] = []
        if not include_closed:
            query += " AND state != 'closed'"
        if backend:
            query += " AND backend = ?"
            args.append(backend)
        rows = self._store.read(query + " ORDER BY opened_at, id", args)
        return [
            RemoteSessionRow(
                id=row[0],
                backend=row[1],
                remote_id=row[2],
                conversation_id=row[3],
                state=row[4],
                opened_at=row[5],
                closed_at=row[6],
                host=row[7],
                pid=row[8],
                meta=json.loads(row[9] or "{}"),
                heartbeat_at=row[10],
                heartbeat_age=_age(row[10], row[11]),
                stale_after=self.stale_after,
            )
            for row in rows
        ]

    def orphans(self) -> list[RemoteSessionRow]:
        return [row for row in self.remote_sessions() if row.orphaned]

    def _heartbeat_column(self, written: str) -> str:
        # a ledger of schema version 1, read without migrating it, has no heartbeats: a row's
        # last sign of life is when it was written (as the migration to version 2 says too)
        return "heartbeat_at" if self._store.version >= 2 else written


def _age(heartbeat_at: float | None, now: float | None) -> float | None:
    if heartbeat_at is None or now is None:
        return None
    return max(0.0, float(now) - float(heartbeat_at))


def orphan_warning(path: Path | str | None = None) -> str | None:
    """One line about remote sessions whose process died without closing them, or ``None``.

    Cheap enough for every CLI start: one query, and no ledger file or table is created.
    """
    ledger = None
    try:
        ledger = SessionLedger.existing(path)
        orphans = ledger.orphans() if ledger is not None else []
    except Exception:  # an unreachable or locked ledger is no reason to warn
        log.debug("orphan check failed", exc_info=True)
        return None
    finally:
        if ledger is not None:
            ledger.close()
    if not orphans:
        return None
    count = len(orphans)
    what = "session" if count == 1 else "sessions"
    backends = ", ".join(sorted({row.backend for row in orphans}))
    return (
        f"{count} remote {what} ({backends}) left open by a process that ended or stopped its heartbeat "
        "may still be billing: run `voicekit sessions close --stale`"
    )
