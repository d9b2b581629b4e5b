"""The SQLite session ledger: schema and migration, heartbeats, what an orphan is, concurrent writers."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes.heygen import FakeHeyGen
from tests.ledger_helpers import check_writers, run_writers
from voicekit.commands.sessions import app
from voicekit.errors import VoicekitError
from voicekit.ledger import RemoteSessions, SessionLedger, orphan_warning
from voicekit.ledger.store import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"

# the tables as the first release wrote them (schema version 1: no version table, no heartbeats)
LEGACY_SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY, profile TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL,
    turns INTEGER NOT NULL DEFAULT 0, recording TEXT, host TEXT NOT NULL, pid INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE remote_sessions (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, remote_id TEXT, conversation_id TEXT,
    state TEXT NOT NULL, opened_at REAL NOT NULL, closed_at REAL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, meta TEXT NOT NULL DEFAULT '{}'
);
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


@pytest.fixture
def here(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VOICEKIT_HOST_ID", "host-a")
    return "host-a"


def sql(path: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(statement, args).fetchall()


def age(path: Path, seconds: float) -> None:
    """Move every heartbeat ``seconds`` into the past, as if the owner had gone silent that long ago."""
    sql(path, "UPDATE conversations SET heartbeat_at = heartbeat_at - ?", seconds)
    sql(path, "UPDATE remote_sessions SET heartbeat_at = heartbeat_at - ?", seconds)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def closer() -> None:
    return None


def test_a_new_ledger_has_a_schema_version_and_heartbeats(path: Path, here: str) -> None:
    ledger = SessionLedger(path)
    assert sql(path, "SELECT id, version FROM voicekit_schema") == [(1, SCHEMA_VERSION)]
    cid = ledger.start_conversation("offline")
    row = ledger.open_remote("heygen", cid)
    [conv] = ledger.conversations()
    [remote] = ledger.remote_sessions()
    assert (conv.host, conv.pid, remote.host, remote.pid) == (here, os.getpid(), here, os.getpid())
    assert conv.heartbeat_at == conv.started_at and remote.heartbeat_at == remote.opened_at
    assert remote.heartbeat_age is not None and 0 <= remote.heartbeat_age < 5
    assert not remote.orphaned and not conv.died and remote.id == row
    SessionLedger(path)  # opening it again changes nothing
    assert sql(path, "SELECT count(*) FROM voicekit_schema") == [(1,)]


def test_a_ledger_of_the_first_release_is_migrated(path: Path, here: str) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(LEGACY_SCHEMA)
        db.execute(
            "INSERT INTO conversations VALUES ('c1','offline',1000.0,NULL,0,NULL,'host-a',?,'running')", (os.getpid(),)
        )
        db.execute("INSERT INTO remote_sessions VALUES ('r1','heygen','h1','c1','open',1001.0,NULL,'host-b',1,'{}')")
    assert orphan_warning(path) is not None  # read as it is: its heartbeat is when it was opened, long ago
    assert sql(path, "SELECT name FROM sqlite_master WHERE name='voicekit_schema'") == []  # ...and not migrated

    ledger = SessionLedger(path)
    assert sql(path, "SELECT version FROM voicekit_schema") == [(SCHEMA_VERSION,)]
    [conv] = ledger.conversations()
    [remote] = ledger.remote_sessions()
    assert (conv.id, conv.heartbeat_at, conv.died) == ("c1", 1000.0, True)
    assert (remote.remote_id, remote.heartbeat_at, remote.host, remote.meta) == ("h1", 1001.0, "host-b", {})
    assert remote.orphan_reason is not None and remote.orphan_reason.startswith("no heartbeat from process 1 on host-b")
    ledger.heartbeat("c1")
    assert not ledger.remote_sessions()[0].orphaned and not ledger.conversations()[0].died


def test_a_ledger_newer_than_this_voicekit_is_refused(path: Path) -> None:
    SessionLedger(path)
    sql(path, "UPDATE voicekit_schema SET version = ?", SCHEMA_VERSION + 1)
    with pytest.raises(VoicekitError, match=f"schema version {SCHEMA_VERSION + 1}, newer .*: upgrade voicekit"):
        SessionLedger(path)


def test_what_is_an_orphan(path: Path, monkeypatch: pytest.MonkeyPatch, here: str) -> None:
    ledger = SessionLedger(path)
    monkeypatch.setenv("VOICEKIT_HOST_ID", "host-b")
    elsewhere = ledger.open_remote("heygen", None)
    monkeypatch.setenv("VOICEKIT_HOST_ID", here)
    alive = ledger.open_remote("heygen", None)
    dead = ledger.open_remote("heygen", None)
    closed = ledger.open_remote("heygen", None)
    ledger.close_remote(closed)
    gone = dead_pid()
    sql(path, "UPDATE remote_sessions SET pid = ? WHERE id = ?", gone, dead)

    rows = {r.id: r for r in ledger.remote_sessions(include_closed=True)}
    assert not rows[elsewhere].orphaned  # another host, fresh heartbeat: alive, whatever its pid means here
    assert not rows[alive].orphaned
    assert rows[dead].orphan_reason == f"process {gone} ended"  # this host, process gone: at once
    assert not rows[closed].orphaned

    age(path, 600)
    rows = {r.id: r for r in ledger.remote_sessions(include_closed=True)}
    assert rows[elsewhere].orphan_reason == f"no heartbeat from process {os.getpid()} on host-b for 10m"
    assert rows[alive].orphan_reason == f"no heartbeat from process {os.getpid()} for 10m"  # hung, not gone
    assert rows[dead].orphaned and not rows[closed].orphaned
    assert {r.id for r in ledger.orphans()} == {elsewhere, alive, dead}
    assert {r.id for r in SessionLedger(path, stale_after=3600).orphans()} == {dead}
    monkeypatch.setenv("VOICEKIT_STALE_AFTER_S", "3600")
    assert {r.id for r in SessionLedger(path).orphans()} == {dead}


def test_heartbeat_touches_only_running_and_open_rows(path: Path, here: str) -> None:
    ledger = SessionLedger(path)
    running, ended = ledger.start_conversation("a"), ledger.start_conversation("b")
    ledger.end_conversation(ended, turns=1, recording=None)
    open_row, closed_row = ledger.open_remote("heygen", running), ledger.open_remote("heygen", running)
    ledger.close_remote(closed_row)
    standalone = ledger.open_remote("liveavatar", None)
    age(path, 600)
    ledger.heartbeat(running, [standalone, closed_row])
    conversations = {c.id: c.heartbeat_age for c in ledger.conversations()}
    remote = {r.id: r.heartbeat_age for r in ledger.remote_sessions(include_closed=True)}
    assert conversations[running] < 5 and conversations[ended] > 500  # type: ignore[operator]
    assert remote[open_row] < 5 and remote[standalone] < 5 and remote[closed_row] > 500  # type: ignore[operator]
    assert [r.state for r in ledger.remote_sessions(include_closed=True) if r.id == closed_row] == ["closed"]


async def test_start_heartbeat_keeps_the_rows_alive_until_stopped(path: Path, here: str) -> None:
    ledger = SessionLedger(path)
    cid = ledger.start_conversation("offline")
    remote = RemoteSessions(ledger, cid)
    remote.opening("heygen").bind("h1", closer)
    remote.start_heartbeat(0.05)
    age(path, 600)
    await asyncio.sleep(0.3)
    assert ledger.orphans() == [] and not ledger.conversations()[0].died
    remote.stop_heartbeat()
    assert not remote.heartbeat_running
    await asyncio.sleep(0.1)  # a beat that was on its way has landed
    age(path, 600)
    await asyncio.sleep(0.3)
    assert [r.remote_id for r in ledger.orphans()] == ["h1"] and ledger.conversations()[0].died


async def test_opening_starts_a_heartbeat_that_ends_with_the_sessions(
    path: Path,
    here: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEKIT_HEARTBEAT_S", "0.05")
    ledger = SessionLedger(path)
    remote = RemoteSessions(ledger)  # a backend used on its own, with no runner around it
    assert not remote.heartbeat_running
    remote.opening("liveavatar").bind("la1", closer)
    assert remote.heartbeat_running
    age(path, 600)
    await asyncio.sleep(0.3)
    assert ledger.orphans() == []
    assert await remote.close_all() == ["la1"]
    await asyncio.sleep(0.2)
    assert not remote.heartbeat_running


def test_opening_outside_an_event_loop_has_no_heartbeat(path: Path) -> None:
    remote = RemoteSessions(SessionLedger(path), "c1")
    remote.opening("heygen")
    remote.start_heartbeat()
    assert not remote.heartbeat_running


async def test_the_runner_beats_while_a_conversation_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voicekit.engine.runner import ChatRequest, run_chat

    monkeypatch.setenv("VOICEKIT_HEARTBEAT_S", "0.05")
    ledger = SessionLedger(path)
    seen: dict[str, float | None] = {}

    async def lines() -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        age(path, 600)
        await asyncio.sleep(0.3)
        seen["age"] = ledger.conversations()[0].heartbeat_age
        yield "hello"

    outcome = await run_chat(ChatRequest(profile="offline", text=True, fast=True, text_lines=lines(), ledger=ledger))
    assert seen["age"] is not None and seen["age"] < 5
    [conv] = ledger.conversations()
    assert (conv.id, conv.status) == (outcome.conversation_id, "ended")
    await asyncio.sleep(0)  # let the cancelled heartbeat finish
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "voicekit-ledger-heartbeat"]


@pytest.fixture
def heygen() -> Iterator[FakeHeyGen]:
    with FakeHeyGen(api_key=KEY) as fake:
        yield fake  # type: ignore[misc]


def test_sessions_cli_judges_other_hosts_by_their_heartbeat(
    path: Path,
    heygen: FakeHeyGen,
    monkeypatch: pytest.MonkeyPatch,
    here: str,
) -> None:
    for name, value in {
        "VOICEKIT_LEDGER": str(path),
        "HEYGEN_API_KEY": KEY,
        "HEYGEN_BASE_URL": heygen.base_url,
    }.items():  # type: ignore[attr-defined]
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LIVEAVATAR_API_KEY", raising=False)
    ids = [
        httpx.post(
            f"{heygen.base_url}/v1/streaming.new",
            headers={"x-api-key": KEY},  # type: ignore[attr-defined]
            json={"version": "v2", "avatar_id": "default"},
        ).json()["data"]["session_id"]
        for _ in range(2)
    ]
    ledger = SessionLedger(path)
    monkeypatch.setenv("VOICEKIT_HOST_ID", "host-b")
    silent_conv, live_conv = ledger.start_conversation("silent"), ledger.start_conversation("live")
    silent, live = ledger.open_remote("heygen", silent_conv), ledger.open_remote("heygen", live_conv)
    ledger.bind_remote(silent, ids[0])
    ledger.bind_remote(live, ids[1])
    monkeypatch.setenv("VOICEKIT_HOST_ID", here)
    sql(path, "UPDATE remote_sessions SET heartbeat_at = heartbeat_at - 120 WHERE id = ?", silent)
    sql(path, "UPDATE conversations SET heartbeat_at = heartbeat_at - 120 WHERE id = ?", silent_conv)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})
        return result.exit_code, result.stdout

    code, out = run("list", "--json", "--backend", "heygen")
    assert code == 0
    report = json.loads(out)
    views = {v["remote_id"]: v for v in report["remote_sessions"]}
    assert views[ids[0]]["orphaned"] is True and views[ids[0]]["host"] == "host-b"
    assert views[ids[0]]["orphan_reason"] == f"no heartbeat from process {os.getpid()} on host-b for 2m"
    assert views[ids[1]]["orphaned"] is False  # before heartbeats, any other host's row was an orphan
    assert {c["profile"]: c["status"] for c in report["conversations"]} == {"silent": "died", "live": "running"}
    code, out = run("list", "--backend", "heygen")
    assert "orphan (no heartbeat from process" in " ".join(out.split())
    assert run("list", "--json", "--stale-after", "600")[1].count('"orphaned": true') == 0

    assert run("close", "--stale", "--stale-after", "600") == (0, "nothing to close\n")
    code, out = run("close", "--stale")
    assert (code, out.strip()) == (0, f"closed heygen session {ids[0]} (left open by process {os.getpid()} on host-b)")
    assert heygen.sessions[ids[0]].status == "closed" and heygen.sessions[ids[1]].status != "closed"
    assert [r.remote_id for r in ledger.remote_sessions()] == [ids[1]]


def test_concurrent_writers_lose_nothing(path: Path, tmp_path: Path) -> None:
    seconds = run_writers({"VOICEKIT_LEDGER": str(path)}, tmp_path, workers=8, rows=50)
    check_writers(SessionLedger(path), workers=8, rows=50)
    print(f"8 writers x 50 conversations on SQLite: {seconds:.2f} s")


def test_help_imports_no_database_driver() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voicekit", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "typer" in imported  # the trace is there
    assert not imported & {"sqlite3", "_sqlite3", "psycopg", "voicekit.ledger.store", "voicekit.ledger.ledger"}
