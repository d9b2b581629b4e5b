"""Session ledger tests' helpers: a private PostgreSQL server, and ledger writers run as processes.

:class:`PostgresCluster` runs the Debian ``postgresql`` package's own ``initdb`` and
``pg_ctl`` on a data directory in /tmp, a free port on 127.0.0.1 and a socket directory
beside the data (as the ``postgres`` user when the tests run as root, since PostgreSQL
refuses to run as root). Nothing is mocked: the ledger talks to a real server.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = (
    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run the README's test command "
    "(make test), which installs it, or `apt-get install postgresql` as root"
)


def postgres_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A throwaway PostgreSQL server; :meth:`database` makes a fresh, empty database."""

    user = "voicekit"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.password = secrets.token_hex(8)
        self.port = 0
        self.base = Path(tempfile.mkdtemp(prefix="voicekit-pg-"))
        self.data, self.sockets, self.log = self.base / "data", self.base / "run", self.base / "server.log"
        self._as_user: list[str] = []
        self._count = 0

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=timeout, cwd=self.base)

    def start(self) -> None:
        self.sockets.mkdir()
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:  # the server will not run as root
            owner = pwd.getpwnam("postgres")
            for path in (self.base, self.sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            runuser = shutil.which("runuser")
            if not runuser:
                raise RuntimeError("runuser is missing (util-linux): cannot start PostgreSQL as 'postgres'")
            self._as_user = [runuser, "-u", "postgres", "--"]
        init = self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        for _ in range(3):  # the free port may be taken between finding and binding it
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
            )
            started = self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
            if started.returncode == 0:
                return
        raise RuntimeError(f"pg_ctl start failed: {started.stderr[-1000:]}\n{self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text()[-2000:]
        return ""

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        return f"postgresql://{self.user}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._count += 1
        name = f"ledger_{os.getpid()}_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.port:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


# --- ledger writers in their own processes ----------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from voicekit.ledger import SessionLedger

    worker, rows, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    while not os.path.exists(go):  # all writers start together
        time.sleep(0.002)
    ledger = SessionLedger()  # a new ledger: the tables are created by whoever comes first
    for i in range(rows):
        cid = ledger.start_conversation(f"profile-{worker}", f"w{worker}-{i}")
        row = ledger.open_remote("heygen", cid, {"i": i})
        ledger.bind_remote(row, f"r{worker}-{i}", {"i": i})
        ledger.heartbeat(cid)
        if i % 2:
            ledger.close_remote(row)
        ledger.end_conversation(cid, turns=i, recording=None)
    ledger.close()
    print("wrote", rows, flush=True)
    """
)


def run_writers(env: dict[str, str], tmp: Path, *, workers: int = 8, rows: int = 50, timeout: float = 120) -> float:
    """``workers`` processes write ``rows`` conversations and remote sessions each, all at once; seconds taken."""
    go = tmp / "go"
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(k), str(rows), str(go)],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(workers)
    ]
    time.sleep(0.5)  # let them import; then release them together
    start = time.monotonic()
    go.touch()
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0 or f"wrote {rows}" not in out:
            failures.append(err[-1500:])
    assert not failures, "a writer failed:\n" + "\n".join(failures)
    return time.monotonic() - start


def check_writers(ledger: Any, *, workers: int = 8, rows: int = 50) -> None:
    """Every row the writers wrote is there, with its last state."""
    conversations = {c.id: c for c in ledger.conversations(limit=workers * rows * 2)}
    assert len(conversations) == workers * rows
    for k in range(workers):
        for i in range(rows):
            conv = conversations[f"w{k}-{i}"]
            assert (conv.profile, conv.status, conv.turns) == (f"profile-{k}", "ended", i)
    remote = ledger.remote_sessions(include_closed=True)
    assert len(remote) == workers * rows
    by_remote = {r.remote_id: r for r in remote}
    assert len(by_remote) == workers * rows
    for k in range(workers):
        for i in range(rows):
            row = by_remote[f"r{k}-{i}"]
            assert row.conversation_id == f"w{k}-{i}" and row.meta == {"i": i}
            assert row.state == ("closed" if i % 2 else "open")


# --- a "host" of the fleet: a process with open avatar sessions and a heartbeat -------------

_HOST = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from voicekit.roles import BackendContext
    from voicekit.ledger import RemoteSessions, SessionLedger

    AVATAR = "3c90c3cc-0d44-4b50-8888-8dd25736052a"

    async def main():
        ledger = SessionLedger()
        cid = ledger.start_conversation(sys.argv[1])
        remote = RemoteSessions(ledger, cid)
        remote.start_heartbeat()  # as the runner does for a conversation
        context = BackendContext(language="en", conversation_id=cid, remote_sessions=remote)
        outputs = []
        for backend in sys.argv[2:]:
            if backend == "heygen":
                from voicekit.plugins.output.avatar.heygen import HeyGenOutput as cls
                options = cls.Options(connect_room=False)
            else:
                from voicekit.plugins.output.avatar.liveavatar import LiveAvatarOutput as cls
                options = cls.Options(connect_room=False, avatar_id=AVATAR)
            out = cls(options, context)
            out.name = backend
            await out.start()
            outputs.append(out)
        print(json.dumps({"conversation": cid, "pid": os.getpid(),
                          "sessions": [o.session_id for o in outputs]}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # until told to stop
        for out in outputs:
            await out.aclose()
        await remote.close_all()
        remote.stop_heartbeat()
        ledger.end_conversation(cid, turns=0, recording=None)
        print("done", flush=True)

    asyncio.run(main())
    """
)


class FleetHost:
    """One process of the fleet, under its own ``VOICEKIT_HOST_ID``."""

    def __init__(self, host: str, profile: str, backends: list[str], env: dict[str, str]) -> None:
        self.host = host
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOST, profile, *backends],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env, "VOICEKIT_HOST_ID": host, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise AssertionError(f"host {host} did not open its sessions: {self.proc.communicate(timeout=10)[1]}")
        info = json.loads(line)
        self.conversation: str = info["conversation"]
        self.pid: int = info["pid"]
        self.sessions: list[str] = info["sessions"]

    def pause(self) -> None:
        """Freeze it: the process is still there, but it sends no heartbeat (a hung or cut-off host)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def finish(self) -> str:
        """Let it close its sessions and end; its output."""
        out, err = self.proc.communicate("stop\n", timeout=60)
        assert self.proc.returncode == 0, err[-1500:]
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
