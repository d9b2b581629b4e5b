"""Conventions a command-line user expects: --version, completion, readable help, ``keys``,
``.env``, ``config.toml`` and ``config show``; each through the real ``voicekit`` command."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.cli_helpers import ROOT, voicekit
from voicekit import __version__

COMMANDS = [
    [], ["chat"], ["bench"], ["bench", "compare"], ["serve"], ["devices"], ["doctor"], ["keys", "set"],
    ["keys", "list"], ["keys", "remove"], ["keys", "path"], ["config", "show"], ["config", "path"],
    ["plugins", "list"], ["plugins", "show"], ["profiles", "list"], ["profiles", "show"], ["profiles", "validate"],
    ["sessions", "show"],
]  # fmt: skip


def test_version() -> None:
    done = voicekit("--version")
    assert (done.returncode, done.stdout) == (0, f"voicekit {__version__}\n")


def test_shell_completion_is_on() -> None:
    assert "--install-completion" in voicekit("--help").stdout
    command = str(Path(sys.executable).parent / "voicekit")  # the installed script, as a shell runs it
    script = subprocess.run([command, "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "complete -o default -F _voicekit_completion voicekit" in script.stdout
    env = {**os.environ, "COMP_WORDS": "voicekit pro", "COMP_CWORD": "1", "_VOICEKIT_COMPLETE": "complete_bash"}
    words = subprocess.run([command], capture_output=True, text=True, env=env, timeout=60)
    assert words.stdout.split() == ["profiles"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "voicekit")
def test_help_has_no_python_type_placeholders(command: list[str]) -> None:
    done = voicekit(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert re.findall(r"<[a-z][a-zA-Z\[\] ]*>", done.stdout) == [], done.stdout


def test_keys_set_list_path_and_remove(tmp_path: Path) -> None:
    env = {"DEEPGRAM_API_KEY": "", "GEMINI_API_KEY": "", "GOOGLE_API_KEY": ""}
    stored = voicekit("keys", "set", "deepgram", env=env, stdin_text="sk-secret-123\n")
    path = Path(voicekit("keys", "path").stdout.strip())
    assert stored.returncode == 0 and stored.stdout == f"DEEPGRAM_API_KEY stored in {path}\n"
    assert path.parent == Path(os.environ["VOICEKIT_CONFIG_DIR"]) and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"DEEPGRAM_API_KEY": "sk-secret-123"}
    listed = voicekit("keys", "list", "--json", env=env)
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["DEEPGRAM_API_KEY"]["set"] and rows["DEEPGRAM_API_KEY"]["source"] == f"key store ({path})"
    assert rows["DEEPGRAM_API_KEY"]["backends"] == ["deepgram", "deepgram_flux"] and not rows["GEMINI_API_KEY"]["set"]
    table = voicekit("keys", "list", env=env)
    assert "sk-secret-123" not in table.stdout + table.stderr
    assert re.search(r"^DEEPGRAM_API_KEY +yes +key store", table.stdout, re.MULTILINE), table.stdout
    # a variable in the environment wins over the stored key
    rows = {r["name"]: r for r in json.loads(voicekit("keys", "list", "--json", env={"DEEPGRAM_API_KEY": "x"}).stdout)}
    assert rows["DEEPGRAM_API_KEY"]["source"] == "environment"
    # and the stored key is what a backend uses
    doctor = voicekit("doctor", "--profile", "deepgram-elevenlabs", env=env)
    assert f"stt: deepgram: key DEEPGRAM_API_KEY from key store ({path})" in doctor.stdout
    assert voicekit("keys", "remove", "DEEPGRAM_API_KEY").returncode == 0
    assert json.loads(path.read_text()) == {}
    again = voicekit("keys", "remove", "DEEPGRAM_API_KEY")
    assert again.returncode == 1 and "is not stored" in again.stderr
    bad = voicekit("keys", "set", "not a name", stdin_text="x\n")
    assert bad.returncode == 2 and "is not a variable name" in bad.stderr


def test_keys_set_asks_without_echo() -> None:
    """At a terminal the key is typed at a prompt that does not show it."""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "voicekit", "keys", "set", "ELEVENLABS_API_KEY"],
        cwd=str(ROOT),
        env={**os.environ, "COLUMNS": "120"},
        encoding="utf-8",
        timeout=30,
    )
    child.expect("ELEVENLABS_API_KEY: ")
    child.sendline("typed-secret-456")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert "typed-secret-456" not in (child.before or "")
    assert "ELEVENLABS_API_KEY stored in" in (child.before or "")
    stored = json.loads((Path(os.environ["VOICEKIT_CONFIG_DIR"]) / "keys.json").read_text())
    assert stored == {"ELEVENLABS_API_KEY": "typed-secret-456"}


def test_dotenv_in_the_working_directory_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    (tmp_path / ".env").write_text("GEMINI_API_KEY=from-dotenv\nVOICEKIT_PROFILE=gemini-live\n")
    rows = {r["name"]: r for r in json.loads(voicekit("keys", "list", "--json", cwd=tmp_path).stdout)}
    assert rows["GEMINI_API_KEY"]["source"] == f".env ({tmp_path / '.env'})"
    shown = json.loads(voicekit("config", "show", "--json", cwd=tmp_path).stdout)
    assert shown["profile"] == {
        "value": "gemini-live",
        "source": "VOICEKIT_PROFILE",
        "description": shown["profile"]["description"],
    }
    # a variable already set is not replaced by the file
    rows = {
        r["name"]: r
        for r in json.loads(voicekit("keys", "list", "--json", cwd=tmp_path, env={"GEMINI_API_KEY": "real"}).stdout)
    }
    assert rows["GEMINI_API_KEY"]["source"] == "environment"


def test_config_toml_sets_defaults_and_config_show_says_where_from(tmp_path: Path) -> None:
    config = Path(voicekit("config", "path").stdout.strip())
    assert config == Path(os.environ["VOICEKIT_CONFIG_DIR"]) / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('profile = "no-such-profile"\nserve_profile = "offline"\nhistory = false\n')
    shown = voicekit("config", "show")
    assert shown.returncode == 0
    profile_line = next(line for line in shown.stdout.splitlines() if line.startswith("profile "))
    assert "no-such-profile" in profile_line and str(config) in profile_line
    chat = voicekit("chat", "--text", "--output", str(tmp_path / "o.wav"), stdin_text="hi\n")
    assert chat.returncode == 2 and "no profile named 'no-such-profile'" in chat.stderr  # chat took the default
    config.write_text("histroy = false\n")
    bad = voicekit("config", "show")
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().startswith("error: ") and "histroy: unknown setting (did you mean 'history'?)" in bad.stderr
    )
    assert len(bad.stderr.strip().splitlines()) == 1
