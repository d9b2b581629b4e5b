"""``voicekit sessions repair``: check the SQLite ledger and, when it is damaged, replace it.

A damaged ledger is never deleted: it is renamed to ``<file>.damaged-<time>`` (with its
``-wal`` and ``-shm`` companions), a new ledger takes its place, and every row that can
still be read from the old one is copied into the new one, open remote sessions first of
all, so that ``voicekit sessions close --stale`` can still close a billable session the
damaged file knew about. Problems a new file would not solve (a read-only file, a lock
held by another process, a directory where the file should be) are reported with what
to do, and nothing is changed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicekit.ledger.store import LedgerError, is_url, redact, sqlite_problem

_TABLES = ("conversations", "remote_sessions")


@dataclass
class RepairReport:
    """What ``repair`` found and did."""

    path: Path
    healthy: bool
    moved_to: Path | None = None
    kept: dict[str, int] = field(default_factory=dict)  # table -> rows copied to the new ledger
    open_remote: int = 0  # remote sessions still open among the rows kept
    unreadable: dict[str, str] = field(default_factory=dict)  # table -> why (some of) it could not be read
    problem: str = ""

    def lines(self) -> list[str]:
        """What to tell the user, one line each."""
        if self.healthy:
            return [f"the session ledger {self.path} is healthy: nothing to repair"]
        out = [f"the session ledger {self.path} was damaged ({self.problem})"]
        out.append(f"moved it to {self.moved_to}; a new ledger is in its place")
        kept = ", ".join(f"{count} {table.replace('_', ' ')}" for table, count in self.kept.items())
        out.append(f"copied what could be read: {kept or 'nothing'}")
        for table, why in self.unreadable.items():
            out.append(f"could not read all of {table}: {why}")
        if self.open_remote:
            out.append(
                f"{self.open_remote} remote session(s) were still open: 'voicekit sessions list' shows them, "
                "'voicekit sessions close --stale' closes the orphans"
            )
        elif self.unreadable:
            out.append(
                "if an avatar session was open when it broke, 'voicekit sessions list' shows what the services "
                "still have open"
            )
        return out


def repair_ledger(target: str | Path, source: str) -> RepairReport:
    """Check the ledger at ``target`` (chosen by ``source``); replace it if it is damaged."""
    if isinstance(target, str) and is_url(target):
        raise LedgerError(
            f"the session ledger {redact(target)} ({source}) is a PostgreSQL database: "
            "'voicekit sessions repair' mends SQLite files; use the database's own tools"
        )
    path = Path(target)
    if not path.exists():
        return RepairReport(path, healthy=True)
    problem = _health(path, source)
    if problem is None:
        return RepairReport(path, healthy=True)
    report = RepairReport(path, healthy=False, problem=problem)
    rows = _salvage(path, report)
    report.moved_to = _move_aside(path)
    _refill(path, rows, report)
    return report


def _health(path: Path, source: str) -> str | None:
    """``None`` when the ledger reads well; what is wrong when a new file would fix it;
    a :class:`LedgerError` saying what to do when it would not."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)) as db:
            result = db.execute("PRAGMA quick_check").fetchone()
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except (sqlite3.Error, OSError) as exc:
        error = sqlite_problem(exc, path, source)
        if not error.repairable:
            raise error from exc
        return str(exc) or type(exc).__name__
    if result is None or result[0] != "ok":
        said = " ".join(str(result[0]).replace("*** in database main ***", "").split()) if result else "no answer"
        return f"integrity check: {said[:200]}"
    missing = [t for t in _TABLES if t not in tables]
    if missing and tables:
        return f"no table {', '.join(missing)}"
    for place in (path, path.parent):
        if not os.access(place, os.W_OK):
            raise sqlite_problem(PermissionError(f"{place} is not writable"), path, source)
    return None


def _salvage(path: Path, report: RepairReport) -> dict[str, list[dict[str, Any]]]:
    """Every row that can be read, table by table; where reading stopped, and why, in the report."""
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        report.unreadable = {table: str(exc) for table in _TABLES}
        return rows
    with contextlib.closing(db):
        for table in _TABLES:
            found: list[dict[str, Any]] = []
            try:
                cursor = db.execute(f"SELECT * FROM {table}")
                names = [column[0] for column in cursor.description]
                while batch := cursor.fetchmany(100):
                    found += [dict(zip(names, row, strict=True)) for row in batch]
            except sqlite3.Error as exc:
                report.unreadable[table] = f"{len(found)} rows read, then: {exc}"
            rows[table] = found
    return rows


def _move_aside(path: Path) -> Path:
    moved = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    while moved.exists():
        moved = moved.with_name(moved.name + "-1")
    try:
        path.rename(moved)
        for suffix in ("-wal", "-shm", "-journal"):
            companion = path.with_name(path.name + suffix)
            if companion.exists():
                companion.rename(moved.with_name(moved.name + suffix))
    except OSError as exc:
        raise LedgerError(f"cannot move the damaged ledger {path} aside: {exc.strerror or exc}") from exc
    return moved


def _refill(path: Path, rows: dict[str, list[dict[str, Any]]], report: RepairReport) -> None:
    from voicekit.ledger.ledger import SessionLedger

    SessionLedger(path).close()  # a new ledger with the current tables
    with contextlib.closing(sqlite3.connect(path, timeout=10.0)) as db:
        for table in _TABLES:
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            kept = 0
            for row in rows.get(table, []):
                values = {k: v for k, v in row.items() if k in columns}
                if not values.get("id"):
                    continue
                names = ", ".join(values)
                marks = ", ".join("?" * len(values))
                try:
                    db.execute(f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({marks})", list(values.values()))
                except sqlite3.Error:
                    continue  # a row too damaged to keep (a NULL where a value must be)
                kept += 1
                if table == "remote_sessions" and values.get("state") != "closed":
                    report.open_remote += 1
            report.kept[table] = kept
        db.commit()
