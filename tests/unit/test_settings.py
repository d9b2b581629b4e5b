"""voicekit's own settings: one pydantic-settings model, config.toml, VOICEKIT_* variables, the key store."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from voicekit import keys
from voicekit.bench import BenchRequest
from voicekit.errors import ConfigError
from voicekit.ledger import SessionLedger
from voicekit.ledger.store import default_heartbeat_interval, default_stale_after, host_id
from voicekit.profiles import profile_dirs
from voicekit.settings import config_path, describe, settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_then_config_toml_then_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().profile == "offline" and settings().serve_profile == "gemini-live"
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('profile = "deepgram-elevenlabs"\nhistory = false\nstale_after_s = 120\n')
    values = settings()
    assert (values.profile, values.history, values.stale_after_s) == ("deepgram-elevenlabs", False, 120.0)
    monkeypatch.setenv("VOICEKIT_PROFILE", "gemini-live")
    assert settings().profile == "gemini-live"  # the variable wins over the file
    rows = describe(settings())
    assert rows["profile"]["source"] == "VOICEKIT_PROFILE"
    assert rows["history"]["source"] == str(config_path()) and rows["serve_profile"]["source"] == "default"


def test_bad_settings_are_one_line_naming_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text('profle = "x"\n')
    with pytest.raises(ConfigError, match=r"config.toml: profle: unknown setting \(did you mean 'profile'\?\)"):
        settings()
    config_path().write_text("history_max_mb = -1\n")
    with pytest.raises(ConfigError, match=r"history_max_mb = -1: Input should be greater than or equal to 0"):
        settings()
    config_path().write_text("config_dir = '/elsewhere'\n")
    with pytest.raises(ConfigError, match="set VOICEKIT_CONFIG_DIR instead"):
        settings()
    config_path().unlink()
    monkeypatch.setenv("VOICEKIT_STALE_AFTER_S", "soon")
    with pytest.raises(ConfigError, match="VOICEKIT_STALE_AFTER_S='soon': Input should be a valid number"):
        settings()


def test_the_variables_the_code_reads_go_through_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VOICEKIT_LEDGER", str(tmp_path / "mine.sqlite3"))
    monkeypatch.setenv("VOICEKIT_HOST_ID", "host-9")
    monkeypatch.setenv("VOICEKIT_STALE_AFTER_S", "30")
    monkeypatch.setenv("VOICEKIT_BENCH_TURN_TIMEOUT", "7")
    monkeypatch.setenv("VOICEKIT_CONFIG_DIR", str(tmp_path / "conf"))
    assert SessionLedger().path == tmp_path / "mine.sqlite3"
    assert host_id() == "host-9" and default_stale_after() == 30.0 and default_heartbeat_interval() == 10.0
    assert BenchRequest(["offline"], []).turn_timeout_s == 7.0
    assert profile_dirs()[1][1] == tmp_path / "conf" / "profiles"
    monkeypatch.setenv("VOICEKIT_HEARTBEAT_S", "2.5")
    assert default_heartbeat_interval() == 2.5


def test_no_module_reads_a_voicekit_variable_by_itself() -> None:
    """Every VOICEKIT_* setting is read through voicekit.settings (its two modules excepted)."""
    pattern = re.compile(r"""environ(?:\.get)?\s*[\[(]\s*["']VOICEKIT_""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "voicekit").rglob("*.py")
        if path.name not in ("settings.py", "settings_model.py") and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_key_store_is_private_and_read_after_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    path = keys.set_key("DEEPGRAM_API_KEY", "stored-secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.parent == config_path().parent
    found = keys.lookup("DEEPGRAM_API_KEY")
    assert found is not None and found.value == "stored-secret" and found.source.startswith("key store (")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "from-env")
    found = keys.lookup("DEEPGRAM_API_KEY")
    assert found is not None and (found.value, found.source) == ("from-env", "environment")
    assert keys.remove_key("DEEPGRAM_API_KEY") and not keys.remove_key("DEEPGRAM_API_KEY")
    with pytest.raises(ConfigError, match="is not a variable name"):
        keys.set_key("not a name", "x")


def test_a_backend_reads_its_key_from_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    from voicekit.plugins.stt.deepgram import DeepgramSTT

    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    keys.set_key("DEEPGRAM_API_KEY", "stored-secret")
    backend = DeepgramSTT()
    assert backend.api_key() == "stored-secret" and backend.key_source == "DEEPGRAM_API_KEY (key store)"


def test_unreadable_key_store_says_so() -> None:
    keys.keys_path().parent.mkdir(parents=True, exist_ok=True)
    keys.keys_path().write_text("{not json")
    with pytest.raises(ConfigError, match="the key store is not valid JSON"):
        keys.lookup("SOMETHING_UNSET_9")
    os.chmod(keys.keys_path(), 0o600)
