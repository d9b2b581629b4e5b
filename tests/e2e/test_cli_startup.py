"""``voicekit --help`` stays cheap: no vendor SDK, no engine, whatever is installed."""

from __future__ import annotations

import subprocess
import sys

from tests.cli_helpers import ROOT

VENDOR = {
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
    "psycopg",
    "starlette",
    "uvicorn",
    "espeakng_loader",
    "webrtcvad",
    "pyaudio",
}
ENGINE = {"asyncio", "pydantic", "numpy", "yaml", "sqlite3", "soxr"}


def test_help_imports_no_vendor_sdk_and_no_engine() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voicekit", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "chat" in out.stdout and "sessions" in out.stdout and "serve" in out.stdout
    modules = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in out.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not modules & VENDOR, sorted(modules & VENDOR)
    assert not modules & ENGINE, sorted(modules & ENGINE)
