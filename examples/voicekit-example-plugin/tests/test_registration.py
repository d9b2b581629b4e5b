"""Installed, the plugin registers its voices and its command with voicekit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from voicekit.registry import load_registry

from voicekit_example.beep import BeepOutput
from voicekit_example.reverse import ReverseOutput


def test_backends_registered() -> None:
    registry = load_registry()
    assert "example" not in registry.broken, registry.broken
    assert registry.entry("output", "beep").plugin == "example"
    assert registry.backend_class("output", "beep") is BeepOutput
    assert registry.backend_class("output", "reverse") is ReverseOutput


def test_command_registered(tmp_path: Path) -> None:
    env = {**os.environ, "VOICEKIT_LEDGER": str(tmp_path / "ledger.db")}
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "example-hello", "--name", "Ada"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Hello, Ada! voicekit-example 0.1.0 adds the voices: beep, reverse" in done.stdout
