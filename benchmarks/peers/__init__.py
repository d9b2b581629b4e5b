"""Side environments for peer frameworks (Pipecat), used by benchmarks and parity tests only.

voicekit never imports them: each lives in its own virtualenv outside the repository, made
on first use (``python -m benchmarks.peers pipecat`` prints its interpreter), and the code
that runs inside it is a plain script in this folder that talks JSON over files and stdout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import platformdirs

PEERS = {"pipecat": ("pipecat-1.14", ["pipecat-ai==1.14.0"])}


def peers_dir() -> Path:
    return Path(os.environ.get("VOICEKIT_PEERS_DIR") or platformdirs.user_cache_dir("voicekit-peers"))


def peer_python(name: str = "pipecat") -> Path:
    """The interpreter of the peer's environment, made (``pip install``) the first time."""
    folder, requirements = PEERS[name]
    home = peers_dir() / folder
    python = home / "bin" / "python"
    stamp = home / ".installed"
    if stamp.is_file() and python.is_file():
        return python
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True, timeout=1800)
    stamp.write_text(" ".join(requirements) + "\n")
    return python


if __name__ == "__main__":
    print(peer_python(sys.argv[1] if len(sys.argv) > 1 else "pipecat"))
