"""The session ledger: local conversations and remote billable sessions.

A remote session (an avatar, say) gets its ledger row *before* it is opened and
loses it when it is closed, so a process killed in between leaves a row that the
next ``voicekit`` run reports as an orphan and ``voicekit sessions close --stale``
closes. The ledger is SQLite in the user data directory.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, profile TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    turns INTEGER NOT NULL DEFAULT 0, recording TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS remote_sessions (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, remote_id TEXT, conversation_id TEXT,
    state TEXT NOT NULL, opened_at REAL NOT NULL, closed_at REAL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, meta TEXT NOT NULL DEFAULT '{}'
);
"""


def default_ledger_path() -> Path:
    env = os.environ.get("VOICEKIT_LEDGER")
    if env:
        return Path(env)
    from platformdirs import user_data_path

    return user_data_path("voicekit", appauthor=False) / "ledger.sqlite3"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    @property
    def orphaned(self) -> bool:
        """Still open, but the process that opened it is gone."""
        if self.state == "closed":
            return False
        return self.host != socket.gethostname() or not _pid_alive(self.pid)


class SessionLedger:
    """Rows of conversations and remote sessions in one SQLite file."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    # conversations
    def start_conversation(self, profile: str, conversation_id: str | None = None) -> str:
        cid = conversation_id or uuid.uuid4().hex[:12]
        with self._connect() as db:
            db.execute(
                "INSERT INTO conversations (id, profile, started_at, host, pid) VALUES (?,?,?,?,?)",
                (cid, profile, time.time(), socket.gethostname(), os.getpid()),
            )
        return cid

    def end_conversation(self, cid: str, *, turns: int, recording: str | None, status: str = "ended") -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE conversations SET ended_at=?, turns=?, recording=?, status=? WHERE id=?",
                (time.time(), turns, recording, status, cid),
            )

    def conversations(self, limit: int = 50) -> list[ConversationRow]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, profile, started_at, ended_at, turns, recording, host, pid, status "
                "FROM conversations ORDER BY started_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [ConversationRow(*row) for row in rows]

    # remote sessions
    def open_remote(self, backend: str, conversation_id: str | None, meta: dict[str, Any] | None = None) -> str:
        row_id = uuid.uuid4().hex[:12]
        with self._connect() as db:
            db.execute(
                "INSERT INTO remote_sessions (id, backend, conversation_id, state, opened_at, host, pid, meta) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (row_id, backend, conversation_id, "opening", time.time(), socket.gethostname(), os.getpid(),
                 json.dumps(meta or {})),
            )
        return row_id

    def bind_remote(self, row_id: str, remote_id: str, meta: dict[str, Any] | None = None) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE remote_sessions SET remote_id=?, state='open', meta=? WHERE id=?",
                (remote_id, json.dumps(meta or {}), row_id),
            )

    def close_remote(self, row_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE remote_sessions SET state='closed', closed_at=? WHERE id=?", (time.time(), row_id))

    def close_remote_by_remote_id(self, backend: str, remote_id: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE remote_sessions SET state='closed', closed_at=? WHERE backend=? AND remote_id=? "
                "AND state != 'closed'",
                (time.time(), backend, remote_id),
            )

    def remote_sessions(self, *, include_closed: bool = False, backend: str | None = None) -> list[RemoteSessionRow]:
        query = "SELECT id, backend, remote_id, conversation_id, state, opened_at, closed_at, host, pid, meta " \
                "FROM remote_sessions WHERE 1=1"
        args: list[Any] = []
        if not include_closed:
            query += " AND state != 'closed'"
        if backend:
            query += " AND backend = ?"
            args.append(backend)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY opened_at", args).fetchall()
        return [RemoteSessionRow(*row[:9], meta=json.loads(row[9] or "{}")) for row in rows]

    def orphans(self) -> list[RemoteSessionRow]:
        return [row for row in self.remote_sessions() if row.orphaned]


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
    """The remote sessions one conversation opened; the engine closes any left at exit."""

    ledger: SessionLedger
    conversation_id: str | None = None
    open_sessions: list[RemoteSession] = field(default_factory=list)

    def opening(self, backend: str, meta: dict[str, Any] | None = None) -> RemoteSession:
        """Write the ledger row; call this *before* asking the service for a session."""
        session = RemoteSession(self.ledger, self.ledger.open_remote(backend, self.conversation_id, meta), backend)
        self.open_sessions.append(session)
        return session

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


def orphan_warning(path: Path | str | None = None) -> str | None:
    """One line about remote sessions whose process died without closing them, or ``None``.

    Cheap enough for every CLI start: one query, and no ledger file is created.
    """
    ledger_path = Path(path) if path else default_ledger_path()
    if not ledger_path.exists():
        return None
    db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True, timeout=2)
    try:
        rows = db.execute("SELECT backend, host, pid FROM remote_sessions WHERE state != 'closed'").fetchall()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    host = socket.gethostname()
    dead = sorted({backend for backend, row_host, pid in rows if row_host != host or not _pid_alive(pid)})
    count = sum(1 for _, row_host, pid in rows if row_host != host or not _pid_alive(pid))
    if not count:
        return None
    what = "session" if count == 1 else "sessions"
    return (
        f"{count} remote {what} ({', '.join(dead)}) left open by a process that ended may still be billing: "
        "run `voicekit sessions close --stale`"
    )
