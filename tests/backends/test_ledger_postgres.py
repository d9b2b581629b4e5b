"""The session ledger on a real PostgreSQL server, shared by a fleet of processes on several "hosts".

A private server is started once for these tests (``initdb`` + ``pg_ctl`` from the Debian
``postgresql`` package); each test gets a new empty database. Hosts are processes with
their own ``VOICEKIT_HOST_ID``; the avatar sessions they open are real ones on the HeyGen
and LiveAvatar fakes, opened by the real backends.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cli_helpers import voicekit
from tests.fakes.heygen import FakeHeyGen
from tests.fakes.liveavatar import FakeLiveAvatar
from tests.ledger_helpers import (
    INSTALL_HINT,
    FleetHost,
    PostgresCluster,
    check_writers,
    free_port,
    postgres_bin_dir,
    run_writers,
)
from voicekit.errors import VoicekitError
from voicekit.ledger import RemoteSessions, SessionLedger, orphan_warning
from voicekit.ledger.store import SCHEMA_VERSION

pytestmark = pytest.mark.postgres

KEY = "test-key"


@pytest.fixture(scope="session")
def cluster() -> Iterator[PostgresCluster]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail(INSTALL_HINT)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("there is no 'postgres' user to run the test server as: " + INSTALL_HINT)
    server = PostgresCluster(bin_dir)
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.fail(f"could not start a PostgreSQL server for the tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    url = cluster.database()
    monkeypatch.setenv("VOICEKIT_LEDGER_URL", url)
    return url


def tables(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        return {
            name: conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None  # type: ignore[index]
            for name in ("conversations", "remote_sessions", "voicekit_schema")
        }


def test_a_new_database_gets_the_tables_and_a_schema_version(pg_url: str, cluster: PostgresCluster) -> None:
    ledger = SessionLedger()
    assert ledger.url == pg_url and ledger.path is None
    assert cluster.password not in ledger.where and ledger.where.startswith("postgresql://voicekit:***@127.0.0.1:")
    assert tables(pg_url) == {"conversations": True, "remote_sessions": True, "voicekit_schema": True}
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id, version FROM voicekit_schema").fetchall() == [(1, SCHEMA_VERSION)]
    cid = ledger.start_conversation("offline")
    again = SessionLedger()  # finds the schema made, writes next to the first
    assert [c.id for c in again.conversations()] == [cid]
    assert not Path(os.environ["VOICEKIT_LEDGER"]).exists()  # the URL wins over the SQLite file
    ledger.close()
    again.close()


def test_orphan_warning_creates_nothing_on_an_empty_database(pg_url: str) -> None:
    assert orphan_warning() is None
    assert tables(pg_url) == {"conversations": False, "remote_sessions": False, "voicekit_schema": False}


def test_fleet_shares_one_ledger_and_only_the_silent_host_is_an_orphan(
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeHeyGen(api_key=KEY) as heygen, FakeLiveAvatar(api_key=KEY) as liveavatar:
        env = {
            "HEYGEN_API_KEY": KEY,
            "HEYGEN_BASE_URL": heygen.base_url,  # type: ignore[attr-defined]
            "LIVEAVATAR_API_KEY": KEY,
            "LIVEAVATAR_BASE_URL": liveavatar.base_url,  # type: ignore[attr-defined]
            "VOICEKIT_HEARTBEAT_S": "0.25",
        }
        hosts: list[FleetHost] = []
        try:
            a = FleetHost("host-a", "support-en", ["heygen"], env)
            hosts.append(a)
            b = FleetHost("host-b", "support-ru", ["heygen", "liveavatar"], env)
            hosts.append(b)
            _check_fleet(a, b, heygen, liveavatar, env, monkeypatch)
        finally:
            for host in hosts:
                host.kill()


def _third_host(*args: str, env: dict[str, str]) -> dict | list:  # type: ignore[type-arg]
    """``voicekit ARGS --json`` from a third host of the fleet."""
    result = voicekit(*args, "--json", "--stale-after", "2", env={**env, "VOICEKIT_HOST_ID": "host-c"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _check_fleet(
    a: FleetHost,
    b: FleetHost,
    heygen: FakeHeyGen,
    liveavatar: FakeLiveAvatar,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_heygen, (b_heygen, b_liveavatar) = a.sessions[0], b.sessions

    report = _third_host("sessions", "list", env=env)
    assert report["errors"] == {}  # type: ignore[call-overload]
    conversations = {c["id"]: c for c in report["conversations"]}  # type: ignore[call-overload]
    assert {cid: (c["profile"], c["host"], c["status"]) for cid, c in conversations.items()} == {
        a.conversation: ("support-en", "host-a", "running"),
        b.conversation: ("support-ru", "host-b", "running"),
    }
    sessions = {s["remote_id"]: s for s in report["remote_sessions"]}  # type: ignore[call-overload]
    assert {sid: (s["backend"], s["host"], s["conversation_id"], s["orphaned"]) for sid, s in sessions.items()} == {
        a_heygen: ("heygen", "host-a", a.conversation, False),
        b_heygen: ("heygen", "host-b", b.conversation, False),  # another host, alive: not an orphan
        b_liveavatar: ("liveavatar", "host-b", b.conversation, False),
    }

    b.pause()  # host-b hangs: its process is there, its heartbeat is not
    paused = time.monotonic()
    time.sleep(2.6)
    report = _third_host("sessions", "list", env=env)
    sessions = {s["remote_id"]: s for s in report["remote_sessions"]}  # type: ignore[call-overload]
    assert sessions[a_heygen]["orphaned"] is False and sessions[a_heygen]["heartbeat_age"] < 2
    for sid in (b_heygen, b_liveavatar):
        assert sessions[sid]["orphaned"] is True and sessions[sid]["heartbeat_age"] > 2
        assert sessions[sid]["orphan_reason"].startswith(f"no heartbeat from process {b.pid} on host-b for ")
    statuses = {c["id"]: c["status"] for c in report["conversations"]}  # type: ignore[call-overload]
    assert statuses == {a.conversation: "running", b.conversation: "died"}

    monkeypatch.setenv("VOICEKIT_HOST_ID", "host-c")
    monkeypatch.setenv("VOICEKIT_STALE_AFTER_S", "2")
    warning = orphan_warning()
    assert warning is not None and warning.startswith("2 remote sessions (heygen, liveavatar) ")

    closed = _third_host("sessions", "close", "--stale", env=env)
    assert time.monotonic() - paused < 30  # host-a kept beating all along (its threshold is 2 s)
    assert sorted((c["backend"], c["remote_id"], c["ok"]) for c in closed) == sorted(  # type: ignore[union-attr]
        [("heygen", b_heygen, True), ("liveavatar", b_liveavatar, True)]
    )
    assert all(f"(left open by process {b.pid} on host-b)" in c["message"] for c in closed)  # type: ignore[union-attr]
    assert heygen.sessions[b_heygen].status == "closed" and liveavatar.sessions[b_liveavatar].state == "stopped"
    assert heygen.sessions[a_heygen].status != "closed"  # the live host's session is left alone
    ledger = SessionLedger()
    assert [(r.remote_id, r.host) for r in ledger.remote_sessions()] == [(a_heygen, "host-a")]
    assert orphan_warning() is None

    b.resume()  # its heartbeat comes back, but never reopens what was closed
    time.sleep(0.8)
    assert [r.remote_id for r in ledger.remote_sessions()] == [a_heygen]
    assert "done" in a.finish() and "done" in b.finish()
    assert heygen.sessions[a_heygen].status == "closed"
    assert ledger.remote_sessions() == []
    assert {c.id: c.status for c in ledger.conversations()} == {a.conversation: "ended", b.conversation: "ended"}
    ledger.close()


def test_concurrent_writers_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    seconds = run_writers({"VOICEKIT_LEDGER_URL": pg_url}, tmp_path, workers=8, rows=50)
    ledger = SessionLedger()
    check_writers(ledger, workers=8, rows=50)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM voicekit_schema").fetchone() == (1,)
    ledger.close()
    print(f"8 writers x 50 conversations on PostgreSQL: {seconds:.2f} s")


async def test_heartbeat_task_refreshes_rows_by_the_servers_clock(pg_url: str) -> None:
    import asyncio

    ledger = SessionLedger()
    cid = ledger.start_conversation("offline")
    remote = RemoteSessions(ledger, cid)
    session = remote.opening("heygen")
    session.bind("r-1", closer=_noop)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as if the last beat were 10 minutes ago
        conn.execute("UPDATE conversations SET heartbeat_at = heartbeat_at - 600")
        conn.execute("UPDATE remote_sessions SET heartbeat_at = heartbeat_at - 600")
    assert [r.orphaned for r in ledger.remote_sessions()] == [True]
    remote.start_heartbeat(0.05)
    await asyncio.sleep(0.4)
    [row] = ledger.remote_sessions()
    assert not row.orphaned and row.heartbeat_age is not None and row.heartbeat_age < 1
    assert ledger.conversations()[0].heartbeat_age < 1  # type: ignore[operator]
    await remote.close_all()
    remote.stop_heartbeat()
    assert not remote.heartbeat_running
    ledger.close()


async def _noop() -> None:
    return None


def test_a_dropped_connection_is_opened_again(pg_url: str) -> None:
    ledger = SessionLedger()
    ledger.start_conversation("first")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # the server (or a proxy) drops our connection
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'voicekit'"
        ).fetchall()
    assert killed == [(True,)]
    ledger.start_conversation("second")
    assert sorted(c.profile for c in ledger.conversations()) == ["first", "second"]
    ledger.close()


def test_unreachable_or_refused_ledger_is_one_clear_line(
    cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"postgresql://voicekit:hunter2@127.0.0.1:{free_port()}/ledger"
    monkeypatch.setenv("VOICEKIT_LEDGER_URL", nowhere)
    started = time.monotonic()
    with pytest.raises(VoicekitError) as caught:
        SessionLedger()
    message = str(caught.value)
    assert time.monotonic() - started < 5
    assert message.startswith(
        f"cannot reach the session ledger at postgresql://voicekit:***@127.0.0.1:"
        f"{nowhere.split(':')[3]} (from VOICEKIT_LEDGER_URL): "
    )
    assert "hunter2" not in message and "\n" not in message
    monkeypatch.setenv("VOICEKIT_LEDGER_URL", cluster.url(password="wrong-password"))
    with pytest.raises(VoicekitError, match="password authentication failed") as caught:
        SessionLedger()
    assert "wrong-password" not in str(caught.value)
    assert orphan_warning() is None  # at CLI start an unreachable ledger is no reason to fail
