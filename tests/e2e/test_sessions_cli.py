"""``voicekit sessions list/close`` against the HeyGen and LiveAvatar fakes, with a temporary ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.fakes.heygen import FakeHeyGen
from tests.fakes.liveavatar import FakeLiveAvatar
from voicekit.commands.sessions import app
from voicekit.ledger import SessionLedger, orphan_warning

ROOT = Path(__file__).resolve().parents[2]
KEY = "test-key"
AVATAR = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


@pytest.fixture
def heygen() -> Iterator[FakeHeyGen]:
    with FakeHeyGen(api_key=KEY) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def liveavatar() -> Iterator[FakeLiveAvatar]:
    with FakeLiveAvatar(api_key=KEY) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def env(
    tmp_path: Path, heygen: FakeHeyGen, liveavatar: FakeLiveAvatar, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    values = {
        "VOICEKIT_LEDGER": str(tmp_path / "ledger.sqlite3"),
        "HEYGEN_API_KEY": KEY,
        "HEYGEN_BASE_URL": heygen.base_url,
        "LIVEAVATAR_API_KEY": KEY,
        "LIVEAVATAR_BASE_URL": liveavatar.base_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def listed(*args: str) -> dict[str, object]:
    code, out, _ = run("list", "--json", *args)
    assert code == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


def open_on_heygen(fake: FakeHeyGen) -> str:
    """A session opened by someone else (not in our ledger)."""
    reply = httpx.post(
        f"{fake.base_url}/v1/streaming.new", headers={"x-api-key": KEY}, json={"version": "v2", "avatar_id": "default"}
    )
    return str(reply.json()["data"]["session_id"])


def open_on_liveavatar(fake: FakeLiveAvatar) -> str:
    reply = httpx.post(
        f"{fake.base_url}/v1/sessions/token", headers={"X-API-KEY": KEY}, json={"mode": "FULL", "avatar_id": AVATAR}
    )
    return str(reply.json()["data"]["session_id"])


def test_list_when_nothing_is_open(env: dict[str, str]) -> None:
    code, out, _ = run("list")
    assert code == 0
    assert "no conversations yet" in out and "no open remote sessions" in out
    report = listed()
    assert report == {"conversations": [], "remote_sessions": [], "errors": {}}


def test_a_backend_without_key_is_one_line_not_a_crash(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, heygen: FakeHeyGen
) -> None:
    monkeypatch.delenv("LIVEAVATAR_API_KEY")
    sid = open_on_heygen(heygen)
    code, out, _ = run("list")
    assert code == 0
    [line] = [line for line in out.splitlines() if line.startswith("liveavatar")]
    assert "not checked" in line and "LIVEAVATAR_API_KEY" in line
    assert sid in out  # the other backend is still listed
    assert listed()["errors"] == {
        "liveavatar": "liveavatar: set the environment variable LIVEAVATAR_API_KEY to list or close its sessions"
    }


def test_list_shows_remote_sessions_of_every_backend(
    env: dict[str, str], heygen: FakeHeyGen, liveavatar: FakeLiveAvatar
) -> None:
    h, la = open_on_heygen(heygen), open_on_liveavatar(liveavatar)
    ledger = SessionLedger(env["VOICEKIT_LEDGER"])
    cid = ledger.start_conversation("heygen-ru")
    row = ledger.open_remote("heygen", cid)
    ledger.bind_remote(row, h)  # as if this (living) process had opened it
    report = listed()
    sessions = {s["remote_id"]: s for s in report["remote_sessions"]}  # type: ignore[attr-defined]
    assert set(sessions) == {h, la}
    assert sessions[h]["backend"] == "heygen" and sessions[h]["conversation_id"] == cid
    assert sessions[h]["orphaned"] is False and sessions[h]["ledger_id"] == row
    assert sessions[la]["backend"] == "liveavatar" and sessions[la]["note"] == "opened elsewhere"
    assert [c["profile"] for c in report["conversations"]] == ["heygen-ru"]  # type: ignore[index]
    assert listed("--backend", "liveavatar")["remote_sessions"][0]["remote_id"] == la  # type: ignore[index]
    code, _, err = run("list", "--backend", "nope")
    assert code == 2 and "nope" in err


def test_close_all_is_idempotent(env: dict[str, str], heygen: FakeHeyGen, liveavatar: FakeLiveAvatar) -> None:
    ids = [open_on_heygen(heygen), open_on_heygen(heygen), open_on_liveavatar(liveavatar)]
    code, out, _ = run("close", "--all")
    assert code == 0
    assert sorted(line.split()[-1] for line in out.splitlines()) == sorted(ids)
    assert heygen.active() == [] and liveavatar.active() == []
    code, out, _ = run("close", "--all")
    assert (code, out.strip()) == (0, "nothing to close")


def test_close_by_id(env: dict[str, str], heygen: FakeHeyGen) -> None:
    sid = open_on_heygen(heygen)
    code, out, _ = run("close", sid)  # found on the service without --backend
    assert (code, out.strip()) == (0, f"closed heygen session {sid}")
    assert heygen.active() == []
    code, out, _ = run("close", sid, "--backend", "heygen")  # gone counts as closed
    assert (code, out.strip()) == (0, f"closed heygen session {sid}")
    code, _, err = run("close", "no-such-session")
    assert code == 1 and "--backend" in err


def test_close_needs_exactly_one_target(env: dict[str, str]) -> None:
    assert run("close")[0] == 2
    assert run("close", "x", "--all")[0] == 2
    assert run("close", "--all", "--stale")[0] == 2


_OPENER = textwrap.dedent(
    """
    import asyncio, sys
    from voicekit.plugins.output.avatar.{module} import {cls}

    async def main():
        out = {cls}({cls}.Options(connect_room=False, {extra}))
        await out.start()
        print(out.session_id, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def _open_and_kill(env: dict[str, str], module: str, cls: str, extra: str = "") -> tuple[str, int]:
    code = _OPENER.format(module=module, cls=cls, extra=extra)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        session_id = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert session_id, "the subprocess did not open a session"
    return session_id, proc.pid


def test_orphans_of_a_killed_process_are_marked_and_closed_by_stale(
    env: dict[str, str],
    heygen: FakeHeyGen,
    liveavatar: FakeLiveAvatar,
) -> None:
    h, h_pid = _open_and_kill(env, "heygen", "HeyGenOutput")
    la, _ = _open_and_kill(env, "liveavatar", "LiveAvatarOutput", f"avatar_id='{AVATAR}'")
    other = open_on_heygen(heygen)  # not ours, not an orphan: --stale leaves it alone
    assert heygen.sessions[h].status == "connected" and liveavatar.sessions[la].state == "started"

    warning = orphan_warning()
    assert warning is not None and "2 remote sessions" in warning and "voicekit sessions close --stale" in warning
    sessions = {s["remote_id"]: s for s in listed()["remote_sessions"]}  # type: ignore[attr-defined]
    assert sessions[h]["orphaned"] is True and sessions[h]["pid"] == h_pid
    assert sessions[la]["orphaned"] is True and sessions[other]["orphaned"] is False
    code, out, _ = run("list")
    assert "orphan" in out and "voicekit sessions close --stale" in out

    code, out, _ = run("close", "--stale")
    assert code == 0
    assert f"closed heygen session {h} (left open by process {h_pid})" in out
    assert f"closed liveavatar session {la}" in out
    assert heygen.sessions[h].status == "closed" and liveavatar.sessions[la].state == "stopped"
    assert heygen.sessions[other].status != "closed"
    assert SessionLedger(env["VOICEKIT_LEDGER"]).remote_sessions() == []
    assert orphan_warning() is None
    assert run("close", "--stale")[1].strip() == "nothing to close"


def test_stale_row_of_a_session_already_gone(env: dict[str, str], heygen: FakeHeyGen) -> None:
    h, _ = _open_and_kill(env, "heygen", "HeyGenOutput")
    httpx.post(f"{heygen.base_url}/v1/streaming.stop", headers={"x-api-key": KEY}, json={"session_id": h})
    [view] = listed()["remote_sessions"]  # type: ignore[misc]
    assert view["status"] == "gone" and view["orphaned"] is True  # type: ignore[index]
    code, out, _ = run("close", "--stale")  # "does not exist" = closed
    assert code == 0 and f"closed heygen session {h}" in out
    assert SessionLedger(env["VOICEKIT_LEDGER"]).remote_sessions() == []


def test_orphan_warning_is_none_without_a_ledger(tmp_path: Path) -> None:
    assert orphan_warning(tmp_path / "missing.sqlite3") is None
    assert not (tmp_path / "missing.sqlite3").exists()
