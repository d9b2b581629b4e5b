"""Soak ``voicekit serve``: real-time clients alone, then beside hostile ones, for a long time.

Two runs, each against a fresh ``voicekit serve`` process with the scripted profile of
``serve_load.py`` (the services take 300 ms of every turn):

1. **baseline**: ``--clients`` legitimate clients (default 100) streaming real-time audio,
   as in ``serve_load.py``;
2. **hostile**: the same clients, and ``--hostile`` attackers (default 20) run from a
   separate process (so their own CPU does not slow the measuring clients' event loop),
   each repeating one attack for the whole run: malformed JSON (100,000 brackets, a
   5,000-digit id), floods of typed text, pings and faster-than-real-time audio, clients
   that never say client-ready or never read, half-open HTTP requests, and abrupt
   disconnects in the middle of a turn.

For each run it reports the legitimate clients' added latency per turn (p50/p95: first bot
audio − end of speech − the 300 ms of the services), dropped legitimate connections, the
server's RSS over time (and its growth after the warm-up, the first quarter of the run),
and, once every client has left, the conversations ``/healthz`` still counts and the ledger
rows still ``running`` (both must be 0). The hostile run adds how its attacks ended
(close codes).

Prints a JSON line per run, then a summary line. Full run (about 25 minutes):
``python benchmarks/serve_soak.py --clients 100 --hostile 20 --duration 600``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil
import serve_load as load
import websockets

from voicekit.audio.pcm import tone
from voicekit.clock import now
from voicekit.engine.metrics import percentile
from voicekit.serve.wire import AudioFrame, MessageFrame, encode

# --- the attackers (run in their own process) -----------------------------------------------------


def rtvi(kind: str, data: Any = None, id_: Any = "h") -> bytes:
    return encode(MessageFrame(json.dumps({"label": "rtvi-ai", "type": kind, "id": id_, "data": data})))


DEEP = encode(MessageFrame("[" * 30_000 + "]" * 30_000))
LONG_ID = encode(MessageFrame('{"label": "rtvi-ai", "type": "client-message", "id": ' + "7" * 5000 + "}"))
BIG_AUDIO = encode(AudioFrame(bytes(1 << 20), 48000, 2))  # 5.5 s of audio per message
READY = rtvi("client-ready", {"version": "2.1.0"})


class Attacker:
    """One hostile client repeating one attack; counts how each attempt ended."""

    def __init__(self, kind: str, url: str, until: float, outcomes: collections.Counter[str]) -> None:
        self.kind, self.url, self.until, self.outcomes = kind, url, until, outcomes

    async def run(self) -> None:
        attack = getattr(self, f"_{self.kind}")
        while now() < self.until:
            try:
                await attack()
            except websockets.ConnectionClosed as exc:
                self.outcomes[f"{self.kind}: closed {exc.rcvd.code if exc.rcvd else 'abruptly'}"] += 1
            except (TimeoutError, OSError, websockets.InvalidStatus) as exc:
                self.outcomes[f"{self.kind}: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.2)

    async def _closed_by_server(self, ws: Any) -> None:
        code = None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in ws:
                pass
        code = ws.close_code
        self.outcomes[f"{self.kind}: closed {code}"] += 1

    async def _send_until_closed(self, ws: Any, message: bytes, pause: float = 0.0) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while now() < self.until:
                await ws.send(message)
                await asyncio.sleep(pause)
        await self._closed_by_server(ws)

    async def _deep_json(self) -> None:
        async with websockets.connect(self.url, open_timeout=10, max_size=None) as ws:
            await ws.send(READY)
            await ws.send(DEEP)
            await self._closed_by_server(ws)

    async def _long_id(self) -> None:
        async with websockets.connect(self.url, open_timeout=10, max_size=None) as ws:
            await ws.send(READY)
            await ws.send(LONG_ID)
            await self._closed_by_server(ws)

    async def _text_flood(self) -> None:
        async with websockets.connect(self.url, open_timeout=10, max_size=None) as ws:
            await ws.send(READY)
            await self._send_until_closed(ws, rtvi("send-text", {"content": "x" * 4000}))

    async def _ping_flood(self) -> None:
        async with websockets.connect(self.url, open_timeout=10, max_size=None) as ws:
            await ws.send(READY)
            await self._send_until_closed(ws, rtvi("client-message", {"t": "ping"}))

    async def _audio_flood(self) -> None:
        async with websockets.connect(self.url, open_timeout=10, max_size=None) as ws:
            await ws.send(READY)
            await self._send_until_closed(ws, BIG_AUDIO)

    async def _never_ready(self) -> None:
        async with websockets.connect(self.url, open_timeout=10, max_size=None) as ws:
            await self._closed_by_server(ws)

    async def _never_reads(self) -> None:
        # a tiny receive queue and no reads: the socket stops taking the server's messages
        async with websockets.connect(self.url, open_timeout=10, max_size=None, max_queue=1) as ws:
            await ws.send(READY)
            with contextlib.suppress(websockets.ConnectionClosed):
                while now() < self.until:
                    await ws.send(rtvi("send-text", {"content": "tell me a long story"}))
                    await asyncio.sleep(1.5)
            self.outcomes[f"{self.kind}: closed {ws.close_code}"] += 1

    async def _half_open(self) -> None:
        sockets = [
            await asyncio.open_connection(self.url.split("//")[1].split("/")[0].split(":")[0], self.port)
            for _ in range(25)
        ]
        for _, writer in sockets:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answers = await asyncio.gather(*(asyncio.wait_for(r.read(), 60) for r, _ in sockets), return_exceptions=True)
        for answer in answers:
            status = answer[9:12].decode() if isinstance(answer, bytes) and answer else type(answer).__name__
            self.outcomes[f"{self.kind}: {status}"] += 1
        for _, writer in sockets:
            writer.close()

    async def _abrupt(self) -> None:
        ws = await websockets.connect(self.url, open_timeout=10, max_size=None)
        await ws.send(READY)
        speech = tone(600, 16000, hz=300, amplitude=0.3) + bytes(16000)
        for i in range(0, len(speech), 640):
            await ws.send(encode(AudioFrame(speech[i : i + 640], 16000, 1)))
            await asyncio.sleep(0.02)
        await asyncio.sleep(random.uniform(0.1, 0.6))  # in the middle of the bot's reply
        ws.transport.abort()
        self.outcomes[f"{self.kind}: aborted"] += 1

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])


KINDS = [
    "deep_json",
    "long_id",
    "text_flood",
    "ping_flood",
    "audio_flood",
    "never_ready",
    "never_reads",
    "half_open",
    "abrupt",
]


async def attack(url: str, hostile: int, duration: float, kinds: list[str]) -> dict[str, Any]:
    outcomes: collections.Counter[str] = collections.Counter()
    until = now() + duration
    attackers = [Attacker(kinds[i % len(kinds)], url, until, outcomes) for i in range(hostile)]
    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(a.run() for a in attackers), return_exceptions=True)
    used = (time.process_time() - cpu) / (time.monotonic() - started)
    return {**dict(sorted(outcomes.items())), "cpu_cores": round(used, 2)}


# --- one run ------------------------------------------------------------------------------------------


async def soak(n: int, hostile: int, duration: float, kinds: list[str] = KINDS) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="voicekit-serve-soak-", dir=os.environ.get("SOAK_DIR")))
    profile = workdir / "soak.yaml"
    profile.write_text(load.PROFILE)
    ledger = workdir / "ledger.sqlite3"
    proc, url = await load.start_server(profile, ledger, max_sessions=n + hostile + 10, session_timeout_s=7200)
    http_url = url.replace("ws://", "http://").removesuffix("/ws")
    server = psutil.Process(proc.pid)
    attacker: asyncio.subprocess.Process | None = None
    try:
        clients = [load.LoadClient(i, random.randrange(load.CYCLE)) for i in range(n)]
        for i in range(0, n, 10):
            await asyncio.gather(*(c.open(url) for c in clients[i : i + 10]))
        await asyncio.gather(
            *(asyncio.wait_for(c.ready.wait(), 60) for c in clients if not c.failed), return_exceptions=True
        )
        if hostile:
            attacker = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--attack",
                url,
                "--hostile",
                str(hostile),
                "--duration",
                str(duration),
                "--attacks",
                ",".join(kinds),
                stdout=asyncio.subprocess.PIPE,
            )
        speech = tone(load.SPEECH_FRAMES * 20, 16000, hz=300, amplitude=0.3)
        frames = [speech[i : i + load.FRAME] for i in range(0, len(speech), load.FRAME)]
        frames += [bytes(load.FRAME)] * load.SILENCE_FRAMES
        script = [encode(AudioFrame(frame, 16000, 1)) for frame in frames]
        ticks = int(duration / 0.02)
        rss: list[tuple[float, float]] = []
        cpu0, wall0, own0 = server.cpu_times(), time.monotonic(), time.process_time()
        start = now()
        phases = [[c for c in clients if c.index % load.PHASES == p] for p in range(load.PHASES)]
        next_sample = start
        for step in range(ticks * load.PHASES):
            tick, phase = divmod(step, load.PHASES)
            due = start + tick * 0.02 + phase * 0.02 / load.PHASES
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            if now() >= next_sample:
                rss.append((now() - start, server.memory_info().rss / 2**20))
                next_sample += 5.0
            for c in phases[phase]:
                if c.failed or c.ws is None or tick < c.offset:
                    continue
                index = (tick - c.offset) % load.CYCLE
                with contextlib.suppress(websockets.ConnectionClosed):
                    await c.ws.send(script[index])
                if index == load.SPEECH_FRAMES - 1 and tick + load.SILENCE_FRAMES < ticks:
                    c.speech_ends.append(now())
        cpu1, wall1, own1 = server.cpu_times(), time.monotonic(), time.process_time()
        await asyncio.sleep(0.5)
        dropped = [c for c in clients if c.failed or c.ws is None or c.ws.close_code is not None]
        added: list[float] = []
        missing = 0
        for c in clients:
            a, m = c.turn_latencies()
            added += a
            missing += m
        outcomes: dict[str, Any] = {}
        if attacker is not None:
            out, _ = await asyncio.wait_for(attacker.communicate(), duration + 120)
            outcomes = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
        attacker_cpu = outcomes.pop("cpu_cores", 0.0)
        for c in clients:
            if c.ws is not None:
                with contextlib.suppress(Exception):
                    await c.ws.close()
        sessions_after = await _sessions_left(http_url)
        warm = [mb for t, mb in rss if t >= duration / 4]
        half = len(warm) // 2
        growth = (sum(warm[half:]) / max(1, len(warm) - half)) - (sum(warm[:half]) / max(1, half)) if half else 0.0
        return {
            "benchmark": "serve_soak",
            "run": "hostile" if hostile else "baseline",
            "clients": n,
            "hostile": hostile,
            "duration_s": duration,
            "dropped": len(dropped),
            "drop_reasons": sorted({str(c.failed)[:80] for c in dropped})[:5],
            "turns": len(added),
            "missing_turns": missing,
            "added_p50_ms": round(percentile(added, 50), 1) if added else None,
            "added_p95_ms": round(percentile(added, 95), 1) if added else None,
            "server_cpu_cores": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (wall1 - wall0), 2),
            "clients_cpu_cores": round((own1 - own0) / (wall1 - wall0), 2),
            "attackers_cpu_cores": attacker_cpu,
            "rss_mb_after_warmup": round(warm[0], 1) if warm else None,
            "rss_mb_end": round(rss[-1][1], 1) if rss else None,
            "rss_mb_max": round(max(mb for _, mb in rss), 1) if rss else None,
            "rss_growth_mb_after_warmup": round(growth, 1),  # mean of the last half minus the first, after warm-up
            "sessions_after": sessions_after,
            "ledger_running_after": await _running_rows(ledger),
            "attacks": outcomes,
        }
    finally:
        if attacker is not None and attacker.returncode is None:
            attacker.kill()
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
            if proc.returncode is None:
                proc.kill()


async def _sessions_left(http_url: str, wait_s: float = 40.0) -> int:
    """Conversations /healthz still counts once every client has left (waits for them to close)."""
    deadline = now() + wait_s
    async with httpx.AsyncClient(base_url=http_url) as http:
        while True:
            sessions = int((await http.get("/healthz")).json()["sessions"])
            if sessions == 0 or now() > deadline:
                return sessions
            await asyncio.sleep(0.5)


async def _running_rows(ledger: Path, wait_s: float = 30.0) -> int:
    """Ledger rows still ``running`` once the server has written what it was closing (waits for it)."""
    deadline = now() + wait_s
    while True:
        with contextlib.closing(sqlite3.connect(ledger, timeout=30)) as db:
            running = int(db.execute("SELECT count(*) FROM conversations WHERE status = 'running'").fetchone()[0])
        if running == 0 or now() > deadline:
            return running
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="legitimate real-time clients")
    parser.add_argument("--hostile", type=int, default=20, help="hostile clients in the second run")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of each run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--attacks", default=",".join(KINDS), help=f"attacks to run, comma-separated (default: all: {','.join(KINDS)})"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="only the run with hostile clients")
    parser.add_argument("--attack", metavar="URL", help=argparse.SUPPRESS)  # the attackers' own process
    args = parser.parse_args()
    random.seed(args.seed)
    kinds = [kind for kind in args.attacks.split(",") if kind]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    if args.attack:
        print(json.dumps(asyncio.run(attack(args.attack, args.hostile, args.duration, kinds))))
        return
    started = time.monotonic()
    if args.skip_baseline:
        print(json.dumps(asyncio.run(soak(args.clients, args.hostile, args.duration, kinds))))
        return
    baseline = asyncio.run(soak(args.clients, 0, args.duration))
    print(json.dumps(baseline), flush=True)
    hostile = asyncio.run(soak(args.clients, args.hostile, args.duration, kinds))
    print(json.dumps(hostile), flush=True)
    ratio = (hostile["added_p95_ms"] or 0) / (baseline["added_p95_ms"] or 1)
    summary = {
        "p95_added_ms": [baseline["added_p95_ms"], hostile["added_p95_ms"]],
        "p95_ratio": round(ratio, 2),
        "within_20pct": ratio <= 1.2,
        "rss_growth_mb": [baseline["rss_growth_mb_after_warmup"], hostile["rss_growth_mb_after_warmup"]],
        "sessions_after": hostile["sessions_after"],
        "ledger_running_after": hostile["ledger_running_after"],
        "legitimate_dropped": [baseline["dropped"], hostile["dropped"]],
        "wall_s": round(time.monotonic() - started),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
