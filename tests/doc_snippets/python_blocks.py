"""``python`` blocks: each compiles; an unmarked one runs on its own in a fresh interpreter and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.doc_snippets.blocks import Block, SnippetError

TIMEOUT_S = 60  # a block that hangs (waits on the network, a prompt) fails instead of stalling the suite


def compile_block(block: Block) -> str:
    """``fragment``: compiles; ``signature``: ``def <it>: ...`` compiles. :class:`SnippetError` if not."""
    source = f"def {block.body.strip()}: ...\n" if block.marker == "signature" else block.body
    try:
        compile(source, block.where, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise SnippetError(f"does not compile: line {block.line + (exc.lineno or 0)}: {exc.msg}") from None
    return "a signature that compiles" if block.marker == "signature" else "compiles (a fragment: not run)"


def clean_environment(home: Path) -> dict[str, str]:
    """This environment without API keys, with voicekit's state in ``home`` and the model hub offline."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY") and name not in ("GOOGLE_APPLICATION_CREDENTIALS", "PYTHONPATH")
    }
    env.update(
        VOICEKIT_CONFIG_DIR=str(home / "config"),
        VOICEKIT_DATA_DIR=str(home / "data"),
        VOICEKIT_LEDGER=str(home / "ledger.sqlite3"),
        HF_HUB_OFFLINE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run_block(block: Block, workdir: Path) -> str:
    """Run the block as a script in ``workdir``; what it did, or :class:`SnippetError` with its error line."""
    compile_block(block)
    workdir.mkdir(parents=True)
    script = workdir / "snippet.py"
    script.write_text(block.body, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, script.name],
            cwd=workdir,
            env=clean_environment(workdir),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SnippetError(f"still running after {TIMEOUT_S} s (mark it '<!-- snippet: fragment -->'?)") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        at = re.findall(r'File ".*snippet\.py", line (\d+)', done.stderr)
        where = f"line {block.line + int(at[-1])}: " if at else ""
        raise SnippetError(f"fails when run: {where}{lines[-1]} (a fragment? mark it '<!-- snippet: fragment -->')")
    return "runs on its own"
