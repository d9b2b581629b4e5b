"""The smart-turn v3.2 model file for tests, read out of the pipecat-ai 1.14.0 wheel.

The wheel is fetched from PyPI with ``pip download pipecat-ai==1.14.0 --no-deps`` once and
kept in a cache folder outside the repository (``VOICEKIT_TEST_CACHE``, default the user cache
dir); the model file is never committed. Its checksum is checked on every use.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import platformdirs

PIPECAT = "pipecat-ai==1.14.0"
MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"


def cache_dir() -> Path:
    return Path(os.environ.get("VOICEKIT_TEST_CACHE") or platformdirs.user_cache_dir("voicekit-tests"))


def _good(path: Path) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == SHA256


def smart_turn_model() -> Path:
    """The model file's path (downloads the wheel the first time)."""
    target = cache_dir() / "smart-turn-v3.2-cpu.onnx"
    if _good(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", folder, PIPECAT],
            check=True,
            capture_output=True,
            timeout=600,
        )
        (wheel,) = Path(folder).glob("pipecat_ai-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    if not _good(target):
        raise RuntimeError(f"{MEMBER} from {PIPECAT} does not have the expected sha256 {SHA256}")
    return target
