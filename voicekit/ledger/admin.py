"""What ``voicekit sessions`` does, apart from printing: gather the ledger's rows and every
backend's active remote sessions into one report, and close sessions by id, all of them,
or the orphans. Kept out of the command module so that ``voicekit --help`` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicekit.ledger.ledger import RemoteSessionRow, SessionLedger
    from voicekit.ledger.remote import RemoteSessionInfo, RemoteSessionManager


@dataclass
class RemoteView:
    """One remote session as ``list`` shows it: what the service says and what the ledger knows."""

    backend: str
    remote_id: str | None
    status: str
    created_at: float | None = None
    ledger_id: str | None = None
    conversation_id: str | None = None
    pid: int | None = None
    orphaned: bool = False
    note: str = ""
    host: str | None = None
    heartbeat_age: float | None = None  # seconds since its process last said it was alive
    orphan_reason: str | None = None


@dataclass
class Report:
    conversations: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[RemoteView] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # backend -> why it could not be asked


def _managers(backend: str | None) -> dict[str, RemoteSessionManager | str]:
    """Every registered session manager (or the reason it could not be made), by backend name."""
    from voicekit.registry import load_registry

    entries = load_registry().session_managers
    if backend is not None and backend not in entries:
        known = ", ".join(sorted(entries)) or "none"
        import typer

        raise typer.BadParameter(f"no session manager for backend '{backend}'; known: {known}", param_hint="--backend")
    made: dict[str, RemoteSessionManager | str] = {}
    for name, entry in sorted(entries.items()):
        if backend is not None and name != backend:
            continue
        try:
            made[name] = entry.load()()  # type: ignore[assignment]
        except Exception as exc:  # noqa: BLE001 - one broken manager must not hide the others
            made[name] = f"{type(exc).__name__}: {exc}"
    return made


async def _list_remote(
    managers: dict[str, RemoteSessionManager | str],
) -> tuple[dict[str, list[RemoteSessionInfo]], dict[str, str]]:
    async def one(name: str, manager: RemoteSessionManager | str) -> tuple[str, list[RemoteSessionInfo] | str]:
        if isinstance(manager, str):
            return name, manager
        try:
            return name, await manager.list_active()
        except Exception as exc:  # noqa: BLE001 - reported on one line per backend
            return name, _one_line(exc)

    results = await asyncio.gather(*(one(n, m) for n, m in managers.items()))
    listed = {name: r for name, r in results if not isinstance(r, str)}
    errors = {name: r for name, r in results if isinstance(r, str)}
    return listed, errors


def _one_line(exc: BaseException) -> str:
    from voicekit.errors import VoicekitError

    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, VoicekitError) else f"{type(exc).__name__}: {text}"


async def _aclose_all(managers: dict[str, RemoteSessionManager | str]) -> None:
    for manager in managers.values():
        if not isinstance(manager, str):
            with contextlib.suppress(Exception):
                await manager.aclose()


def _conversation_rows(ledger: SessionLedger, limit: int) -> list[dict[str, Any]]:
    rows = []
    for conv in ledger.conversations(limit):
        status = "died" if conv.died else conv.status  # its process ended without closing it
        row = {**asdict(conv), "status": status}
        del row["stale_after"]
        rows.append(row)
    return rows


def _merge(ledger_rows: list[RemoteSessionRow], listed: dict[str, list[RemoteSessionInfo]]) -> list[RemoteView]:
    views: list[RemoteView] = []
    by_remote = {(r.backend, r.remote_id): r for r in ledger_rows if r.remote_id}
    for name, infos in listed.items():
        for info in infos:
            row = by_remote.pop((name, info.remote_id), None)
            views.append(
                RemoteView(
                    name,
                    info.remote_id,
                    info.status,
                    info.created_at,
                    ledger_id=row.id if row else None,
                    conversation_id=row.conversation_id if row else None,
                    pid=row.pid if row else None,
                    orphaned=bool(row and row.orphaned),
                    note="" if row else "opened elsewhere",
                    host=row.host if row else None,
                    heartbeat_age=row.heartbeat_age if row else None,
                    orphan_reason=row.orphan_reason if row else None,
                )
            )
    for row in ledger_rows:
        if (row.backend, row.remote_id) not in by_remote and row.remote_id:
            continue  # shown above with the service's view
        listed_backend = row.backend in listed
        note = "no longer on the service" if listed_backend and row.remote_id else ""
        if row.remote_id is None:
            note = "never got a remote id" if row.orphaned else "opening"
        views.append(
            RemoteView(
                row.backend,
                row.remote_id,
                "gone" if listed_backend and row.remote_id else row.state,
                row.opened_at,
                ledger_id=row.id,
                conversation_id=row.conversation_id,
                pid=row.pid,
                orphaned=row.orphaned,
                note=note,
                host=row.host,
                heartbeat_age=row.heartbeat_age,
                orphan_reason=row.orphan_reason,
            )
        )
    return views


async def report(backend: str | None, limit: int, stale_after: float | None) -> Report:
    from voicekit.ledger.ledger import SessionLedger

    ledger = SessionLedger(stale_after=stale_after)
    try:
        managers = _managers(backend)
        try:
            listed, errors = await _list_remote(managers)
        finally:
            await _aclose_all(managers)
        return Report(
            conversations=_conversation_rows(ledger, limit),
            sessions=_merge(ledger.remote_sessions(backend=backend), listed),
            errors=errors,
        )
    finally:
        ledger.close()


# --- close ------------------------------------------------------------------------------


@dataclass
class Closed:
    backend: str
    remote_id: str | None
    ok: bool
    message: str


async def close(
    ids: list[str], all_: bool, stale: bool, backend: str | None, stale_after: float | None = None
) -> list[Closed]:
    from voicekit.ledger.ledger import SessionLedger

    ledger = SessionLedger(stale_after=stale_after)
    try:
        managers = _managers(backend)
        try:
            if stale:
                orphans = [r for r in ledger.orphans() if not backend or r.backend == backend]
                return await _close_rows(ledger, orphans, managers)
            if all_:
                return await _close_everything(ledger, managers)
            return await _close_ids(ledger, ids, managers, backend)
        finally:
            await _aclose_all(managers)
    finally:
        ledger.close()


async def _close_one(ledger: SessionLedger, managers: dict[str, Any], name: str, remote_id: str) -> Closed:
    manager = managers.get(name)
    if manager is None or isinstance(manager, str):
        why = manager or "no session manager is registered for it"
        return Closed(name, remote_id, False, f"cannot close {name} session {remote_id}: {why}")
    try:
        await manager.close(remote_id)
    except Exception as exc:  # noqa: BLE001 - reported, the others are still closed
        return Closed(name, remote_id, False, f"could not close {name} session {remote_id}: {_one_line(exc)}")
    ledger.close_remote_by_remote_id(name, remote_id)
    return Closed(name, remote_id, True, f"closed {name} session {remote_id}")


async def _close_rows(ledger: SessionLedger, rows: list[RemoteSessionRow], managers: dict[str, Any]) -> list[Closed]:
    done: list[Closed] = []
    for row in rows:
        if row.remote_id is None:
            ledger.close_remote(row.id)
            done.append(
                Closed(
                    row.backend, None, True, f"dropped {row.backend} ledger row {row.id}: the session was never created"
                )
            )
            continue
        result = await _close_one(ledger, managers, row.backend, row.remote_id)
        if result.ok:
            ledger.close_remote(row.id)
            result.message += f" (left open by process {row.pid}{_elsewhere(row)})"
        done.append(result)
    return done


def _elsewhere(row: RemoteSessionRow) -> str:
    from voicekit.ledger.ledger import host_id

    return "" if row.host == host_id() else f" on {row.host}"


async def _close_everything(ledger: SessionLedger, managers: dict[str, Any]) -> list[Closed]:
    listed, errors = await _list_remote(managers)
    done = [Closed(name, None, False, f"{name}: not checked: {error}") for name, error in errors.items()]
    for name, infos in listed.items():
        for info in infos:
            done.append(await _close_one(ledger, managers, name, info.remote_id))
    # ledger rows the services no longer list are closed too
    for row in ledger.remote_sessions():
        if row.backend in listed and not any(c.remote_id == row.remote_id for c in done):
            ledger.close_remote(row.id)
    return done


async def _close_ids(
    ledger: SessionLedger, ids: list[str], managers: dict[str, Any], backend: str | None
) -> list[Closed]:
    rows = ledger.remote_sessions(include_closed=True)
    listed: dict[str, list[RemoteSessionInfo]] | None = None
    done: list[Closed] = []
    for wanted in ids:
        row = next((r for r in rows if wanted in (r.id, r.remote_id)), None)
        if row is not None and row.remote_id is None:
            done.extend(await _close_rows(ledger, [row], managers))
            continue
        name = row.backend if row is not None else backend
        remote_id = row.remote_id if row is not None else wanted
        if name is None:
            if listed is None:
                listed, _ = await _list_remote(managers)
            name = next((n for n, infos in listed.items() if any(i.remote_id == wanted for i in infos)), None)
        if name is None:
            done.append(
                Closed(
                    "?",
                    wanted,
                    False,
                    f"unknown session {wanted}: give its service with --backend NAME to close it there",
                )
            )
            continue
        assert remote_id is not None
        done.append(await _close_one(ledger, managers, name, remote_id))
    return done
