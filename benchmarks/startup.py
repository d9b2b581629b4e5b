"""Start-up cost: ``voicekit --help`` against ``import typer, rich``, and ``voicekit chat``
until its conversation is ready; the modules ``--help`` imports. Prints one JSON line.

``python benchmarks/startup.py --runs 15``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = (
    "deepgram",
    "google",
    "elevenlabs",
    "livekit",
    "av",
    "pocketsphinx",
    "onnxruntime",
    "grpc",
    "httpx",
    "websockets",
    "pydantic",
    "numpy",
    "asyncio",
)


def wall(cmd: list[str], runs: int, **kwargs: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def imported_modules() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voicekit", "--help"], capture_output=True, text=True, check=True
    )
    return [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    voicekit = str(Path(sys.executable).parent / "voicekit")
    baseline = wall([sys.executable, "-c", "import typer, rich"], args.runs)
    help_ms = wall([voicekit, "--help"], args.runs)
    modules = imported_modules()
    heavy = sorted({m.split(".")[0] for m in modules if m.split(".")[0] in VENDOR})
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(ROOT))
        from voicekit.audio.wav import write_wav

        wav = Path(tmp) / "blip.wav"
        write_wav(wav, bytes(3200), 16000)
        env = {**os.environ, "VOICEKIT_LEDGER": str(Path(tmp) / "ledger.sqlite3")}
        chat_ms = wall(
            [
                voicekit,
                "chat",
                "--profile",
                "offline",
                "--input",
                str(wav),
                "--fast",
                "--output",
                str(Path(tmp) / "out.wav"),
            ],
            max(3, args.runs // 3),
            env=env,
            cwd=ROOT,
        )
    print(
        json.dumps(
            {
                "benchmark": "startup",
                "import_typer_rich_ms": round(baseline, 1),
                "help_ms": round(help_ms, 1),
                "help_ratio": round(help_ms / baseline, 2),
                "help_modules": len(modules),
                "help_heavy_modules": heavy,
                "chat_offline_ready_and_exit_ms": round(chat_ms, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
