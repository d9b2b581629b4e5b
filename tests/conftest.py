"""Shared test set-up: an isolated ledger, config and data dir per test, and a PulseAudio null sink."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own ledger, user config dir (keys, config.toml) and data dir (history)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("VOICEKIT_LEDGER", str(home / "ledger.sqlite3"))
    monkeypatch.setenv("VOICEKIT_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("VOICEKIT_DATA_DIR", str(home / "data"))


@pytest.fixture(scope="session")
def pulse_null_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private PulseAudio daemon whose default sink is a null sink and whose default
    source is that sink's monitor: what is played can be recorded back."""
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.fail("pulseaudio is not installed: run the README's test command (make test), which installs it")
    runtime = tmp_path_factory.mktemp("pulse")
    subprocess.run([str(ROOT / "scripts" / "pulse-null-sink.sh"), str(runtime)], check=True, timeout=30)
    env = {
        "XDG_RUNTIME_DIR": str(runtime),
        "PULSE_RUNTIME_PATH": str(runtime / "pulse"),
        "PULSE_SERVER": f"unix:{runtime}/pulse/native",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        pid = int((runtime / "pid").read_text())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
