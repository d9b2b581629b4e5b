"""Load on ``voicekit serve``: N scripted clients on loopback, each streaming real-time audio.

The server runs as its own process (``voicekit serve`` with a scripted profile: STT final
50 ms after a 100 ms endpoint, LLM first token 100 ms, TTS first audio 50 ms, so the
services take 300 ms of every turn). This process is the N clients: one ticker sends
every client a 20 ms frame per tick (600 ms of speech, then 1.6 s of silence, over and
over; starts spread over one cycle, sends spread over each 20 ms), and a reader per client
timestamps what comes back.

- dropped: connections that failed or closed before the end;
- added latency: arrival of the first bot audio of a turn − the end of the user's speech
  − the 300 ms the services take (so: engine, sockets, pacing and both event loops);
- server-side added: the server's own voice-to-voice from its ``metrics`` (end of speech as
  its STT saw it → first audio sent) − the 200 ms its services take after that point;
- healthz p95: how promptly the server's event loop answers an HTTP request meanwhile;
- CPU and RSS of the server process, in total and per session.

The machine is shared: the load of other processes shows up in every figure, so compare
runs made in the same quiet moment.

Prints one JSON line. ``python benchmarks/serve_load.py --clients 100 --duration 60``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
import websockets

from voicekit.audio.pcm import frame_bytes, tone
from voicekit.clock import now
from voicekit.engine.metrics import percentile
from voicekit.serve.wire import AudioFrame, MessageFrame, decode, encode

PROFILE = """\
description: scripted services for the serve load benchmark
language: en
stt: {use: scripted, transcripts: ["hello there"], min_silence_ms: 100, final_delay_ms: 50}
llm: {use: scripted, replies: ["Okay, that sounds right."], first_token_ms: 100}
output: {use: scripted, first_audio_ms: 50, ms_per_char: 40, chunk_ms: 40}
audio: {vad: none}
"""
SERVICES_MS = 100 + 50 + 100 + 50
SERVER_SERVICES_MS = 50 + 100 + 50  # the server's clock starts when the STT detects the end (100 ms later)
FRAME = frame_bytes(16000, 20)
SPEECH_FRAMES, SILENCE_FRAMES = 30, 80  # 600 ms of speech, 1.6 s of silence (the reply lasts ~1 s)
CYCLE = SPEECH_FRAMES + SILENCE_FRAMES
PHASES = 4


class LoadClient:
    def __init__(self, index: int, offset: int) -> None:
        self.index = index
        self.offset = offset  # ticks before its first frame
        self.ws: Any = None
        self.audio_at: list[float] = []
        self.speech_ends: list[float] = []
        self.failed: str | None = None
        self.server_v2v: list[float] = []  # the server's own voice-to-voice of each turn (ms)
        self.ready = asyncio.Event()

    async def open(self, url: str) -> None:
        try:
            self.ws = await websockets.connect(url, open_timeout=30, max_size=None)
            hello = {"label": "rtvi-ai", "type": "client-ready", "id": str(self.index), "data": {"version": "2.1.0"}}
            await self.ws.send(encode(MessageFrame(json.dumps(hello))))
            asyncio.get_running_loop().create_task(self.read())
        except Exception as exc:  # noqa: BLE001 - counted as dropped
            self.failed = f"connect: {exc!r}"

    async def read(self) -> None:
        try:
            async for data in self.ws:
                if data[:1] == b"\x12":  # an audio frame: only its arrival time matters
                    self.audio_at.append(now())
                    continue
                frame = decode(data)
                if isinstance(frame, MessageFrame):
                    msg = json.loads(frame.data)
                    kind = msg["type"]
                    if kind == "metrics":
                        self.server_v2v += [
                            m["value"] * 1000
                            for m in msg["data"]["processing"]
                            if m["processor"] == "voicekit:voice_to_voice"
                        ]
                    elif kind == "bot-ready":
                        self.ready.set()
                    elif kind == "error":
                        self.failed = f"error: {frame.data}"
        except websockets.ConnectionClosed as exc:
            if self.failed is None:
                self.failed = f"closed: {exc!r}"

    def turn_latencies(self) -> tuple[list[float], int]:
        added: list[float] = []
        missing = 0
        for end in self.speech_ends:
            first = next((t for t in self.audio_at if t > end), None)
            if first is None or first - end > SILENCE_FRAMES * 0.02:
                missing += 1
            else:
                added.append((first - end) * 1000 - SERVICES_MS)
        return added, missing


_DRAINING: set[asyncio.Task[None]] = set()  # the log readers, kept from the garbage collector


async def start_server(
    profile: Path, ledger: Path, *, max_sessions: int, session_timeout_s: float = 3600
) -> tuple[asyncio.subprocess.Process, str]:
    """A ``voicekit serve`` process on a free port, and its websocket URL. Its log is read
    all along: a full pipe would stop the server."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from voicekit.cli import main; main()",
        "serve",
        "--profile",
        str(profile),
        "--port",
        "0",
        "--max-sessions",
        str(max_sessions),
        "--idle-timeout",
        "30",
        "--session-timeout",
        str(session_timeout_s),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "VOICEKIT_LEDGER": str(ledger), "COLUMNS": "300"},
    )
    assert proc.stderr is not None
    seen = ""
    while "listening on" not in seen:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        if not line:
            raise SystemExit(f"the server did not start: {seen}")
        seen += line
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", seen)
    assert match, seen
    _DRAINING.add(asyncio.get_running_loop().create_task(_drain(proc.stderr)))
    return proc, f"ws://127.0.0.1:{match.group(1)}/ws"


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read the server's log so that a full pipe never blocks it (kept in $SERVE_BENCH_LOG if set)."""
    keep = os.environ.get("SERVE_BENCH_LOG")
    with open(keep or os.devnull, "ab") as log:
        while line := await stream.readline():
            log.write(line)


async def probe(url: str, until: float, out: list[float]) -> None:
    """Time /healthz every 100 ms: how promptly the server's event loop answers."""
    import httpx

    async with httpx.AsyncClient(base_url=url) as http:
        while now() < until:
            start = now()
            await http.get("/healthz")
            out.append((now() - start) * 1000)
            await asyncio.sleep(0.1)


async def run(n: int, duration: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="voicekit-serve-load-"))
    profile = workdir / "load.yaml"
    profile.write_text(PROFILE)
    proc, url = await start_server(profile, workdir / "ledger.sqlite3", max_sessions=n + 10)
    server = psutil.Process(proc.pid)
    try:
        await asyncio.sleep(0.5)
        rss_idle = server.memory_info().rss
        clients = [LoadClient(i, random.randrange(CYCLE)) for i in range(n)]
        for i in range(0, n, 10):  # connect in small batches, as users arrive
            await asyncio.gather(*(c.open(url) for c in clients[i : i + 10]))
        await asyncio.gather(
            *(asyncio.wait_for(c.ready.wait(), 60) for c in clients if not c.failed), return_exceptions=True
        )
        speech = tone(SPEECH_FRAMES * 20, 16000, hz=300, amplitude=0.3)
        frames = [speech[i : i + FRAME] for i in range(0, len(speech), FRAME)] + [bytes(FRAME)] * SILENCE_FRAMES
        script = [encode(AudioFrame(frame, 16000, 1)) for frame in frames]  # the same bytes for every client
        ticks = int(duration / 0.02)
        health: list[float] = []
        http_url = url.replace("ws://", "http://").removesuffix("/ws")
        prober = asyncio.create_task(probe(http_url, now() + duration, health))
        cpu0, wall0, own0 = server.cpu_times(), time.monotonic(), time.process_time()
        lag: list[float] = []
        start = now()
        # real clients' frames arrive spread over the 20 ms, not all at once: 4 phases, 5 ms apart
        phases = [[c for c in clients if c.index % PHASES == p] for p in range(PHASES)]
        for step in range(ticks * PHASES):
            tick, phase = divmod(step, PHASES)
            due = start + tick * 0.02 + phase * 0.02 / PHASES
            delay = due - now()
            if delay > 0:
                await asyncio.sleep(delay)
            lag.append(max(0.0, now() - due) * 1000)
            for c in phases[phase]:
                if c.failed or c.ws is None or tick < c.offset:
                    continue
                index = (tick - c.offset) % CYCLE
                with contextlib.suppress(websockets.ConnectionClosed):
                    await c.ws.send(script[index])
                if index == SPEECH_FRAMES - 1 and tick + SILENCE_FRAMES < ticks:
                    c.speech_ends.append(now())
        cpu1, wall1, own1 = server.cpu_times(), time.monotonic(), time.process_time()
        rss_busy = server.memory_info().rss
        await prober
        await asyncio.sleep(0.5)
        dropped = [c for c in clients if c.failed or c.ws is None or c.ws.close_code is not None]
        added: list[float] = []
        missing = 0
        inside = [v - SERVER_SERVICES_MS for c in clients for v in c.server_v2v]
        for c in clients:
            a, m = c.turn_latencies()
            added += a
            missing += m
        for c in clients:
            if c.ws is not None:
                with contextlib.suppress(Exception):
                    await c.ws.close()
        cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (wall1 - wall0)
        return {
            "benchmark": "serve_load",
            "clients": n,
            "duration_s": duration,
            "dropped": len(dropped),
            "drop_reasons": sorted({str(c.failed)[:80] for c in dropped})[:5],
            "turns": len(added),
            "missing_turns": missing,
            "added_p50_ms": round(percentile(added, 50), 1) if added else None,
            "added_p95_ms": round(percentile(added, 95), 1) if added else None,
            "added_max_ms": round(max(added), 1) if added else None,
            "server_side_added_p50_ms": round(percentile(inside, 50), 1) if inside else None,
            "server_side_added_p95_ms": round(percentile(inside, 95), 1) if inside else None,
            "healthz_p95_ms": round(percentile(health, 95), 1) if health else None,
            "server_cpu_cores": round(cpu, 3),
            "server_cpu_per_session_pct": round(cpu / n * 100, 3),
            "server_rss_mb": round(rss_busy / 2**20, 1),
            "rss_per_session_mb": round((rss_busy - rss_idle) / n / 2**20, 2),
            "client_ticker_lag_p95_ms": round(percentile(lag, 95), 2),
            "client_cpu_cores": round((own1 - own0) / (wall1 - wall0), 3),
        }
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
            if proc.returncode is None:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of streaming")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    print(json.dumps(asyncio.run(run(args.clients, args.duration))))


if __name__ == "__main__":
    main()
