"""Running the real ``voicekit`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def voicekit(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    prelude: str = "",
    stdin_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``voicekit ARGS``; ``prelude`` is Python run first in the same process, ``stdin_text`` its input."""
    code = f"{prelude}\nfrom voicekit.cli import main\nmain()"
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin_text,
        stdin=subprocess.DEVNULL if stdin_text is None else None,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )
