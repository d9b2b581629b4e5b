"""Where the session ledger keeps its rows: SQLite for one host, PostgreSQL for a fleet.

Both stores hold the same tables. Statements are written once, with ``?`` placeholders
and ``{now}`` where the database's clock goes; each store adapts them to its database.
Every write is one transaction, so many processes can write at once: SQLite serialises
them (WAL journal and a busy timeout), PostgreSQL runs them as ordinary transactions.

The tables carry a schema version (table ``voicekit_schema``) so later releases can
migrate them; the first release had no version table and no heartbeats (version 1).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from voicekit.errors import VoicekitError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
DEFAULT_STALE_AFTER_S = 90.0
URL_PREFIXES = ("postgresql://", "postgres://")

# {real}: a float column in seconds since the epoch
_TABLES = (
    """CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, profile TEXT NOT NULL, started_at {real} NOT NULL, ended_at {real},
    turns INTEGER NOT NULL DEFAULT 0, recording TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'running', heartbeat_at {real}, reason TEXT
)""",
    """CREATE TABLE IF NOT EXISTS remote_sessions (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, remote_id TEXT, conversation_id TEXT,
    state TEXT NOT NULL, opened_at {real} NOT NULL, closed_at {real}, host TEXT NOT NULL,
    pid INTEGER NOT NULL, meta TEXT NOT NULL DEFAULT '{{}}', heartbeat_at {real}
)""",
    "CREATE INDEX IF NOT EXISTS remote_sessions_open ON remote_sessions (state, backend)",
    "CREATE INDEX IF NOT EXISTS conversations_started ON conversations (started_at)",
    "CREATE TABLE IF NOT EXISTS voicekit_schema (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)",
)

# version 1 -> 2: heartbeats; a row's last sign of life so far is when it was written
_MIGRATE_1_TO_2 = (
    "ALTER TABLE conversations ADD COLUMN heartbeat_at {real}",
    "ALTER TABLE remote_sessions ADD COLUMN heartbeat_at {real}",
    "UPDATE conversations SET heartbeat_at = started_at WHERE heartbeat_at IS NULL",
    "UPDATE remote_sessions SET heartbeat_at = opened_at WHERE heartbeat_at IS NULL",
)

# version 2 -> 3: why a conversation ended ("deepgram rejected the API key ...")
_MIGRATE_2_TO_3 = ("ALTER TABLE conversations ADD COLUMN reason TEXT",)

Statement = tuple[str, Sequence[Any]]
T = TypeVar("T")


def host_id() -> str:
    """This host's name in the ledger: ``VOICEKIT_HOST_ID``, else the hostname.

    Set it where hostnames are not unique across a fleet (containers that share one).
    """
    from voicekit.settings import settings

    return (settings().host_id or "").strip() or socket.gethostname()


def default_stale_after() -> float:
    """Seconds without a heartbeat after which a row is an orphan (``VOICEKIT_STALE_AFTER_S``, 90)."""
    from voicekit.settings import settings

    return settings().stale_after_s


def default_heartbeat_interval() -> float:
    """Seconds between heartbeats (``VOICEKIT_HEARTBEAT_S``; a third of the stale threshold)."""
    from voicekit.settings import settings

    return settings().heartbeat_interval_s


def is_url(target: str) -> bool:
    return target.startswith(URL_PREFIXES)


def redact(url: str) -> str:
    """The URL without its password (or any secret query parameter), for messages and logs."""
    from voicekit.redaction import redact_url

    return redact_url(url)


REPAIR_HINT = "run 'voicekit sessions repair' to move it aside and start a new one that keeps its readable rows"


class LedgerError(VoicekitError):
    """The session ledger cannot be used: the message names it, the setting that chose it,
    what is wrong and what to do. ``repairable``: ``voicekit sessions repair`` can fix it."""

    def __init__(self, message: str, *, repairable: bool = False) -> None:
        super().__init__(message)
        self.repairable = repairable


def sqlite_problem(exc: BaseException, path: Path, source: str) -> LedgerError:
    """What a SQLite (or file system) error means for the ledger file ``path``, and the fix."""
    text = str(exc).strip() or type(exc).__name__
    lowered = text.lower()
    at = f"the session ledger {path} ({source})"
    elsewhere = "or set VOICEKIT_LEDGER to another file"
    if path.is_dir():
        return LedgerError(f"{at} is a directory, not a ledger file: set VOICEKIT_LEDGER to a file path")
    if "readonly" in lowered or "read-only" in lowered or isinstance(exc, PermissionError):
        return LedgerError(f"{at} is read-only ({text}): make it and its folder writable, {elsewhere}")
    if "locked" in lowered or "busy" in lowered:
        return LedgerError(
            f"{at} is locked by another process ({text}): wait for it or stop it (fuser {path} names it), {elsewhere}"
        )
    if "disk is full" in lowered or "no space" in lowered:
        return LedgerError(f"{at}: the disk is full ({text}): free some space, {elsewhere}")
    if "unable to open" in lowered or isinstance(exc, OSError):
        return LedgerError(f"{at} cannot be opened ({text}): check that its folder exists and is writable, {elsewhere}")
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered or "no such" in lowered:
        return LedgerError(f"{at} is damaged ({text}): {REPAIR_HINT}", repairable=True)
    return LedgerError(f"{at}: {text}: {REPAIR_HINT}, {elsewhere}", repairable=True)


class LedgerStore(Protocol):
    """What the ledger needs from a database."""

    where: str  # for messages: the file, or the URL without its password
    version: int  # the schema version found (0: no tables yet)

    def write(self, statements: Sequence[Statement]) -> None:
        """Run the statements in one transaction."""

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query."""

    def ensure_schema(self) -> None:
        """Create the tables, or migrate them to :data:`SCHEMA_VERSION`."""

    def close(self) -> None:
        """Release the connection, if one is kept."""


def _check_version(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"the session ledger {where} has schema version {version}, newer than this voicekit knows "
            f"({SCHEMA_VERSION}): upgrade voicekit on this host"
        )


def _schema_statements(found: int, real: str) -> list[str]:
    """What brings a ledger at version ``found`` to :data:`SCHEMA_VERSION`."""
    steps = [s.format(real=real) for s in _TABLES] if found == 0 else []
    if found == 1:
        steps += [s.format(real=real) for s in _MIGRATE_1_TO_2]
    if found in (1, 2):
        steps += [s.format(real=real) for s in _MIGRATE_2_TO_3]
    if found == 1:
        steps += [s.format(real=real) for s in _TABLES]  # the new indexes and version table
    return steps


# --- SQLite -------------------------------------------------------------------------------


class SQLiteStore:
    """A ledger file on this host; one connection per operation, so any thread may use it."""

    def __init__(
        self, path: Path, *, readonly: bool = False, timeout_s: float = 10.0, source: str = "VOICEKIT_LEDGER"
    ) -> None:
        import sqlite3

        self._sqlite = sqlite3
        self.path = path
        self.where = str(path)
        self.source = source
        self.readonly = readonly
        self.timeout_s = timeout_s
        with self._guard():
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.version = self._read_version()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite's and the file system's errors into a :class:`LedgerError` that says what to do."""
        try:
            yield
        except LedgerError:
            raise
        except (self._sqlite.Error, OSError) as exc:
            raise sqlite_problem(exc, self.path, self.source) from exc

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        if self.readonly:
            db = self._sqlite.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s, isolation_level=None
            )
        else:
            db = self._sqlite.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            if not self.readonly:
                self._use_wal(db)
            yield db
        finally:
            db.close()

    def _use_wal(self, db: Any) -> None:
        """Switch to WAL. Switching takes an exclusive lock that SQLite's busy timeout does not
        wait for, so processes creating the file at the same moment retry for a while."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except self._sqlite.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @staticmethod
    def _sql(sql: str) -> str:
        # this host's clock, as a literal: SQLite's own 'now' has only millisecond steps
        return sql.replace("{now}", repr(time.time()))

    def _read_version(self) -> int:
        with self._connect() as db:
            return self._version_of(db)

    @staticmethod
    def _version_of(db: Any) -> int:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "voicekit_schema" in tables:
            row = db.execute("SELECT version FROM voicekit_schema WHERE id=1").fetchone()
            if row is not None:
                return int(row[0])
        return 1 if "conversations" in tables else 0

    def ensure_schema(self) -> None:
        _check_version(self.version, self.where)
        if self.version == SCHEMA_VERSION:
            return
        with self._guard(), self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
            try:
                found = self._version_of(db)
                _check_version(found, self.where)
                for statement in _schema_statements(found, "REAL"):
                    db.execute(statement)
                if found != SCHEMA_VERSION:
                    db.execute("INSERT OR REPLACE INTO voicekit_schema (id, version) VALUES (1, ?)", (SCHEMA_VERSION,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        if found != SCHEMA_VERSION:
            log.info("session ledger %s: schema version %d -> %d", self.where, found, SCHEMA_VERSION)
        self.version = SCHEMA_VERSION

    def write(self, statements: Sequence[Statement]) -> None:
        with self._guard(), self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    db.execute(self._sql(sql), params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._guard(), self._connect() as db:
            return list(db.execute(self._sql(sql), params).fetchall())

    def close(self) -> None:
        pass


# --- PostgreSQL ---------------------------------------------------------------------------

_SCHEMA_LOCK = 0x766F6963  # pg_advisory_xact_lock key: one process creates or migrates the tables


class PostgresStore:
    """A ledger on a PostgreSQL server that every host of a fleet writes to.

    One connection per store, opened on first use and opened again after it breaks; a
    lock lets threads (the heartbeat runs in one) share it.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0, source: str = "VOICEKIT_LEDGER_URL") -> None:
        from voicekit.sdk import import_sdk

        self._pg = import_sdk("psycopg", package="psycopg[binary]", extra="postgres", backend="the session ledger")
        from voicekit.redaction import url_secrets

        self.url = url
        self.where = redact(url)
        self._secrets = url_secrets(url)
        self.source = source
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.RLock()
        self._conn: Any = None
        self._pid = 0
        self.version = self._read_version()

    def _connection(self) -> Any:

        conn = self._conn
        if conn is not None and not conn.closed and not getattr(conn, "broken", False) and self._pid == os.getpid():
            return conn
        if conn is not None and self._pid == os.getpid():
            conn.close()
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": "voicekit"}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = max(1, round(self.connect_timeout_s))
        try:
            self._conn = self._pg.connect(self.url, **kwargs)
        except self._pg.Error as exc:
            raise LedgerError(
                f"cannot reach the session ledger at {self.where} (from {self.source}): {self._said(exc)}; "
                f"check {self.source} and that the database server is up"
            ) from exc
        self._pid = os.getpid()
        return self._conn

    def _run(self, work: Callable[[Any], T], *, transaction: bool = True) -> T:
        """``work(connection)`` (in one transaction); once more on a fresh connection if it broke."""
        pg = self._pg
        retryable = (pg.OperationalError, pg.errors.SerializationFailure, pg.errors.DeadlockDetected)
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    if not transaction:
                        return work(conn)
                    with conn.transaction():
                        return work(conn)
                except retryable as exc:
                    # every write is idempotent (inserts skip an existing id), so a retry is safe
                    if attempt == 2:
                        raise LedgerError(
                            f"session ledger {self.where} (from {self.source}): {self._said(exc)}"
                        ) from exc
                    log.info("session ledger %s: %s; trying again", self.where, self._said(exc))
                    if getattr(conn, "broken", True):
                        conn.close()
        raise AssertionError("unreachable")

    def _said(self, exc: BaseException) -> str:
        """The first line of a database error, with the URL's secrets hidden (libpq may quote the URL)."""
        from voicekit.redaction import redact_text

        return redact_text(_first_line(exc), self._secrets)

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("{now}", "EXTRACT(EPOCH FROM clock_timestamp())::double precision").replace("?", "%s")

    def _read_version(self) -> int:
        return self._run(self._version_of, transaction=False)

    @staticmethod
    def _version_of(conn: Any) -> int:
        if conn.execute("SELECT to_regclass('voicekit_schema')").fetchone()[0] is not None:
            row = conn.execute("SELECT version FROM voicekit_schema WHERE id=1").fetchone()
            if row is not None:
                return int(row[0])
        return 1 if conn.execute("SELECT to_regclass('conversations')").fetchone()[0] is not None else 0

    def ensure_schema(self) -> None:
        _check_version(self.version, self.where)
        if self.version == SCHEMA_VERSION:
            return

        def migrate(conn: Any) -> int:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            found = self._version_of(conn)
            _check_version(found, self.where)
            for statement in _schema_statements(found, "DOUBLE PRECISION"):
                # idempotent even if another process's migration is seen half-way
                conn.execute(statement.replace("ADD COLUMN ", "ADD COLUMN IF NOT EXISTS "))
            if found != SCHEMA_VERSION:
                conn.execute(
                    "INSERT INTO voicekit_schema (id, version) VALUES (1, %s) "
                    "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
                    (SCHEMA_VERSION,),
                )
            return found

        found = self._run(migrate)
        if found != SCHEMA_VERSION:
            log.info("session ledger %s: schema version %d -> %d", self.where, found, SCHEMA_VERSION)
        self.version = SCHEMA_VERSION

    def write(self, statements: Sequence[Statement]) -> None:
        def work(conn: Any) -> None:
            for sql, params in statements:
                conn.execute(self._sql(sql), params)

        self._run(work)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: list(conn.execute(self._sql(sql), params).fetchall()), transaction=False)

    def close(self) -> None:

        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_store(
    target: str | Path, *, readonly: bool = False, connect_timeout_s: float = 10.0, source: str = "VOICEKIT_LEDGER_URL"
) -> LedgerStore:
    """The store for a file path or a ``postgresql://`` URL (schema not checked yet)."""
    if isinstance(target, str) and is_url(target):
        return PostgresStore(target, connect_timeout_s=connect_timeout_s, source=source)
    return SQLiteStore(Path(target), readonly=readonly, source=source)
