"""A broken session ledger: errors that name it and say what to do, an offline chat that goes
on without it, ``voicekit sessions repair``, and exit codes that a failing ledger never changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, voicekit
from voicekit.ledger.ledger import SessionLedger

SCRIPTED = """\
llm: {use: scripted, replies: ["Fine."]}
output: {use: silent}
"""


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold even for root (no CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.fail("running as root needs setpriv (util-linux) to test read-only files")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def filled_ledger(path: Path, conversations: int = 200) -> None:
    ledger = SessionLedger(path)
    row = ledger.open_remote("heygen", "conv0000")
    ledger.bind_remote(row, "remote-abc")
    for i in range(conversations):
        ledger.start_conversation("offline", f"conv{i:04d}")
    ledger.close()


def damage(path: Path) -> None:
    """Scribble over page 3 (the index of conversation ids): the file fails its integrity
    check, while its tables can still be read."""
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_conversations_1'"
        ).fetchone() == (3,)
    data = bytearray(path.read_bytes())
    for offset in range(2 * 4096, 3 * 4096):
        data[offset] = (offset * 7919) & 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A ledger file broken in one way, and a word of what its error must say."""
    path = tmp_path / "ledger.sqlite3"
    kind = request.param
    if kind == "corrupt":
        path.write_bytes(b"these are not the rows you are looking for " * 40)
        yield path, "sessions repair"
    elif kind == "truncated":
        filled_ledger(path)
        path.write_bytes(path.read_bytes()[:5000])
        yield path, "sessions repair"
    elif kind == "directory":
        path.mkdir()
        yield path, "is a directory"
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("broken", ["corrupt", "truncated", "directory"], indirect=True)
def test_a_broken_ledger_is_named_with_its_variable_and_the_fix(broken: tuple[Path, str]) -> None:
    path, advice = broken
    line = one_line_error(voicekit("sessions", "list", env={"VOICEKIT_LEDGER": str(path)}))
    assert str(path) in line and "VOICEKIT_LEDGER" in line and advice in line, line


@pytest.mark.parametrize("broken", ["corrupt", "truncated", "directory"], indirect=True)
def test_an_offline_chat_runs_on_a_broken_ledger_with_a_warning(broken: tuple[Path, str], tmp_path: Path) -> None:
    path, advice = broken
    profile = tmp_path / "scripted.yaml"
    profile.write_text(SCRIPTED)
    result = subprocess.run(
        [sys.executable, "-m", "voicekit", "chat", "--profile", str(profile), "--text"],
        input="hello\n",
        capture_output=True,
        text=True,
        env={**os.environ, "VOICEKIT_LEDGER": str(path), "COLUMNS": "400"},
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "bot: Fine." in result.stdout
    warning = next(line for line in result.stdout.splitlines() if line.startswith("warning: the session ledger"))
    assert str(path) in warning and advice in warning and "not recorded" in warning, result.stdout


def test_a_billable_session_is_refused_without_a_working_ledger(tmp_path: Path) -> None:
    from voicekit.ledger.remote import RemoteSessions
    from voicekit.ledger.store import LedgerError
    from voicekit.ledger.unavailable import UnavailableLedger

    broken = tmp_path / "ledger.sqlite3"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(LedgerError) as failed:
        SessionLedger(broken)
    sessions = RemoteSessions(UnavailableLedger(failed.value), "conv1")
    with pytest.raises(LedgerError, match=r"heygen: a billable session is opened only with a working session ledger"):
        sessions.opening("heygen")


def test_a_read_only_or_locked_ledger_says_so(tmp_path: Path) -> None:
    from voicekit.ledger.store import LedgerError, SQLiteStore

    path = tmp_path / "ledger.sqlite3"
    filled_ledger(path, 3)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = SQLiteStore(path, timeout_s=0.2, source="VOICEKIT_LEDGER")
        with pytest.raises(LedgerError, match=r"is locked by another process .*fuser"):
            store.write([("UPDATE conversations SET turns = 1", ())])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    folder = tmp_path / "ro"
    folder.mkdir()
    filled_ledger(folder / "ledger.sqlite3", 3)
    for file in folder.iterdir():
        file.chmod(0o444)
    folder.chmod(0o555)
    env = {**os.environ, "VOICEKIT_LEDGER": str(folder / "ledger.sqlite3"), "COLUMNS": "400"}
    try:
        repair = subprocess.run(
            [*unprivileged(), sys.executable, "-m", "voicekit", "sessions", "repair"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        line = one_line_error(repair)
        assert "read-only" in line and "writable" in line and "VOICEKIT_LEDGER" in line, line
        profile = tmp_path / "scripted.yaml"
        profile.write_text(SCRIPTED)
        chat = subprocess.run(
            [*unprivileged(), sys.executable, "-m", "voicekit", "chat", "--profile", str(profile), "--text"],
            input="hello\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert chat.returncode == 0 and "bot: Fine." in chat.stdout, chat.stderr
        assert "read-only" in chat.stdout and "not recorded" in chat.stdout, chat.stdout
    finally:
        folder.chmod(0o755)


def test_sessions_repair_moves_a_damaged_ledger_aside_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    env = {"VOICEKIT_LEDGER": str(path)}
    nothing = voicekit("sessions", "repair", env=env)
    assert nothing.returncode == 0 and "healthy" in nothing.stdout
    filled_ledger(path)
    healthy = voicekit("sessions", "repair", env=env)
    assert healthy.returncode == 0 and "healthy: nothing to repair" in healthy.stdout
    damage(path)
    repaired = voicekit("sessions", "repair", env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert "was damaged" in repaired.stdout and "1 remote session(s) were still open" in repaired.stdout
    moved = [p for p in tmp_path.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1 and moved[0].name in repaired.stdout
    ledger = SessionLedger(path)
    (remote,) = ledger.remote_sessions()
    assert remote.remote_id == "remote-abc" and remote.backend == "heygen"
    kept = ledger.conversations(1000)
    assert 0 < len(kept) <= 200 and all(row.id.startswith("conv") for row in kept)
    listed = voicekit("sessions", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "remote-abc" in listed.stdout


def test_sessions_repair_refuses_what_a_new_file_would_not_fix(tmp_path: Path) -> None:
    folder = tmp_path / "ledger.sqlite3"
    folder.mkdir()
    line = one_line_error(voicekit("sessions", "repair", env={"VOICEKIT_LEDGER": str(folder)}))
    assert "is a directory" in line and folder.is_dir()
    line = one_line_error(
        voicekit("sessions", "repair", env={"VOICEKIT_LEDGER_URL": "postgresql://bob:hunter22@db.example/voicekit"})
    )
    assert "PostgreSQL" in line and "hunter22" not in line and "bob:***@" in line


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_sessions_list_limit_is_at_least_one(limit: str) -> None:
    result = voicekit("sessions", "list", "--limit", limit)
    assert result.returncode == 2 and "--limit" in result.stderr


# --- signals keep their exit codes whatever the ledger does -------------------------------------------


def typed_chat(tmp_path: Path, ledger: Path, *extra: str) -> subprocess.Popen[str]:
    profile = tmp_path / "scripted.yaml"
    profile.write_text(SCRIPTED)
    return subprocess.Popen(
        [*unprivileged(), sys.executable, "-m", "voicekit", "chat", "--profile", str(profile), "--text", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "VOICEKIT_LEDGER": str(ledger), "VOICEKIT_HEARTBEAT_S": "0.2", "COLUMNS": "400"},
        cwd=ROOT,
    )


def wait_until_answered(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("hello\n")
    proc.stdin.flush()
    seen = ""
    deadline = time.monotonic() + 60
    while "bot: Fine." not in seen:
        assert time.monotonic() < deadline and proc.poll() is None, seen
        seen += proc.stdout.readline()
    return seen


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_ledger_that_turns_read_only_mid_chat_does_not_change_a_signal_exit_code(
    tmp_path: Path, signum: int, code: int
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    ledger = folder / "ledger.sqlite3"
    proc = typed_chat(tmp_path, ledger)
    try:
        wait_until_answered(proc)
        for file in folder.iterdir():
            file.chmod(0o444)
        folder.chmod(0o555)
        time.sleep(0.6)  # a few heartbeats fail meanwhile
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        folder.chmod(0o755)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and "could not record the end" in stderr, stderr


def test_sighup_writes_the_metrics_and_closes_the_row(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    record = tmp_path / "rec"
    proc = typed_chat(tmp_path, ledger, "--record", str(record))
    try:
        wait_until_answered(proc)
        proc.send_signal(signal.SIGHUP)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129, stderr
    metrics = json.loads((record / "metrics.json").read_text())
    assert metrics["conversation_id"] and metrics["turns"]
    (row,) = SessionLedger(ledger).conversations()
    assert row.status == "interrupted" and row.reason == "SIGHUP" and row.ended_at is not None
