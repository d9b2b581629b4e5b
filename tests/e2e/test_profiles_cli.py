"""Profiles: lookup order, listing, redaction, the `voicekit profiles` commands, shipped profiles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.fakes.profile_backends import GOOD, SECRETS, isolate, problem_of, write
from voicekit.commands.profiles import app
from voicekit.errors import ProfileError
from voicekit.profiles import (
    build_backend,
    check_profile,
    find_profile,
    list_profiles,
    load_profile,
    profile_dirs,
    redacted,
)
from voicekit.registry import load_registry

REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolate(tmp_path, monkeypatch)


# --- lookup -----------------------------------------------------------------------------------


def test_profile_dirs_order(dirs: dict[str, Path]) -> None:
    found = profile_dirs()
    assert [origin for origin, _ in found] == ["project", "user", "package"]
    assert found[0][1] == dirs["project"] and found[1][1] == dirs["user"]
    assert (found[2][1] / "offline.yaml").is_file()


def test_lookup_precedence_project_user_package(dirs: dict[str, Path]) -> None:
    assert find_profile("offline") == profile_dirs()[2][1] / "offline.yaml"
    write(dirs["user"], "offline.yaml", "description: user\nllm: fakellm\n")
    assert find_profile("offline") == dirs["user"] / "offline.yaml"
    write(dirs["project"], "offline.yml", "description: project\nllm: fakellm\n")
    assert find_profile("offline") == dirs["project"] / "offline.yml"
    assert load_profile("offline").description == "project"
    infos = {info.name: info for info in list_profiles()}
    assert infos["offline"].origin == "project" and infos["offline"].description == "project"
    assert infos["heygen-ru"].origin == "package"
    assert infos["base"].abstract is True and infos["offline"].abstract is False


def test_list_reports_unreadable_profiles(dirs: dict[str, Path]) -> None:
    write(dirs["user"], "broken.yaml", "llm: [\n")
    info = {i.name: i for i in list_profiles()}["broken"]
    assert info.origin == "user" and info.error is not None and "broken.yaml:2:1: invalid YAML" in info.error


def test_paths_are_loaded_directly(dirs: dict[str, Path], tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere", "x.yaml", "llm: fakellm\n")
    assert find_profile(str(path)) == path
    assert load_profile(path).name == "x"
    assert load_profile("../elsewhere/x.yaml").path == Path("../elsewhere/x.yaml")
    with pytest.raises(ProfileError, match=r"^profile file not found: nope/x\.yaml$"):
        find_profile("nope/x.yaml")


def test_unknown_name_suggests(dirs: dict[str, Path]) -> None:
    with pytest.raises(ProfileError) as info:
        find_profile("ofline")
    message = problem_of(info)
    assert message.startswith("no profile named 'ofline' (did you mean 'offline'?); looked in profiles, ")
    known = message.split("; known: ")[1].split(", ")
    assert known == sorted(known) and {"base", "gemini-live", "google-chirp3", "heygen-ru", "offline"} <= set(known)


# --- redaction --------------------------------------------------------------------------------


def test_redacted_data_hides_secret_keys_only() -> None:
    data = {
        "llm": {"api_key": "k", "max_tokens": 100, "client_secret": "s", "model": "m", "token": None},
        "output": {"password": 12, "credentials": {"user": "u", "key": "x"}, "voice_id": "v"},
        "stt": {"session_token": "t", "tokens": ["a"], "apiKey": "z"},
    }
    assert redacted(data) == {
        "llm": {"api_key": "***", "max_tokens": 100, "client_secret": "***", "model": "m", "token": None},
        "output": {"password": "***", "credentials": {"user": "***", "key": "***"}, "voice_id": "v"},
        "stt": {"session_token": "***", "tokens": ["a"], "apiKey": "***"},
    }
    assert data["llm"]["api_key"] == "k"  # a copy


def test_redacted_profile_hides_values_from_the_environment(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "s.yaml", SECRETS)
    env = {"LLM_KEY": "k-llm", "USER_NAME": "Ann", "STT_KEY": "k-stt", "EP_MS": "120"}
    shown = redacted(load_profile("s", env=env))
    assert shown["llm"] == {"use": "fakellm", "api_key": "***", "system": "***"}
    assert shown["stt"] == {"use": "fakestt", "api_key": "***", "endpointing_ms": "***"}
    placeholders = redacted(load_profile("s", resolve_secrets=False))
    assert placeholders["llm"]["api_key"] == "${LLM_KEY}" and placeholders["stt"]["api_key"] == "${STT_KEY}"


# --- the CLI group ----------------------------------------------------------------------------

runner = CliRunner()


def test_cli_list(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "mine.yaml", "description: My own profile\nllm: fakellm\n")
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("mine"))
    assert line.split()[:2] == ["mine", "project"] and "My own profile" in line
    rows = json.loads(runner.invoke(app, ["list", "--json"]).output)
    by_name = {row["name"]: row for row in rows}
    assert by_name["mine"]["origin"] == "project" and by_name["offline"]["origin"] == "package"
    assert by_name["mine"]["path"] == str(dirs["project"] / "mine.yaml")


def test_cli_show_is_merged_overridden_and_redacted(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "p.yaml", "extends: offline\nllm: {use: fakellm, api_key: '${NOT_SET}', token: abc}\n")
    result = runner.invoke(app, ["show", "p", "--set", "llm.model=big", "-s", "language=ru"])
    assert result.exit_code == 0, result.output
    first, rest = result.output.split("\n", 1)
    assert first == f"# {dirs['project'] / 'p.yaml'}"
    data = yaml.safe_load(rest)
    assert data["llm"] == {"use": "fakellm", "api_key": "${NOT_SET}", "token": "***", "model": "big"}
    assert (
        data["language"] == "ru" and data["stt"] == {"use": "pocketsphinx"} and data["turns"]["mode"] == "half_duplex"
    )
    assert "abc" not in result.output


def test_cli_show_unknown_profile_raises(dirs: dict[str, Path]) -> None:
    result = runner.invoke(app, ["show", "nosuch"])
    assert result.exit_code != 0 and isinstance(result.exception, ProfileError)


def test_cli_validate(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "defaults.yaml", "abstract: true\naudio: {vad: webrtc}\n")
    write(dirs["project"], "bad.yaml", "llm: {use: nosuchllm}\nturns: {mod: full_duplex}\n")
    ok = runner.invoke(app, ["validate", "defaults"])
    assert ok.exit_code == 0 and ok.output == "defaults: ok\n"
    bad = runner.invoke(app, ["validate", "defaults", "bad"])
    assert bad.exit_code == 1
    assert bad.output.splitlines() == [
        "defaults: ok",
        "profiles/bad.yaml:2: turns.mod: unknown key (did you mean 'mode'?)",
    ]
    unknown = runner.invoke(app, ["validate", "bad", "--set", "turns.mod=null", "--set", "turns=null"])
    [line] = unknown.output.splitlines()
    assert line.startswith("profiles/bad.yaml:1: llm.use: unknown llm backend 'nosuchllm'") and "known: " in line
    everything = runner.invoke(app, ["validate", "--all"])
    assert everything.exit_code == 1 and "defaults: ok" in everything.output and "base: ok" in everything.output
    assert "profiles/bad.yaml:2: turns.mod" in everything.output
    assert runner.invoke(app, ["validate"]).exit_code == 2


SCRIPTED = """
description: scripted backends, for tests
language: en
stt: {use: scripted, transcripts: [hello there]}
llm: {use: scripted, replies: [Hi!]}
output: {use: scripted, sample_rate: 16000}
"""


def test_cli_validate_against_the_real_registry(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "scripted.yaml", SCRIPTED)
    result = runner.invoke(app, ["validate", "scripted"])
    assert (result.exit_code, result.output) == (0, "scripted: ok\n")
    typo = runner.invoke(app, ["validate", "scripted", "--set", "stt.min_silence=200"])
    assert typo.exit_code == 1
    assert typo.output == (
        "--set stt.min_silence=200: stt.min_silence: unknown option (did you mean 'min_silence_ms'?)\n"
    )
    profile = load_profile("scripted")
    stt = build_backend(profile, "stt", load_registry(), None)
    assert type(stt).__name__ == "ScriptedSTT" and stt.options.transcripts == ["hello there"]
    assert stt.context.language == "en"


def test_cli_module_imports_only_typer() -> None:
    code = (
        "import sys, voicekit.commands.profiles\n"
        "print([m for m in ('yaml', 'rich', 'pydantic', 'voicekit.profiles', 'voicekit.registry') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the shipped profiles against the real registry ---------------------------------------------


def test_offline_profile_validates_clean(dirs: dict[str, Path]) -> None:
    assert check_profile("offline", load_registry()) == []


def test_shipped_profiles_load(dirs: dict[str, Path]) -> None:
    offline = load_profile("offline")
    assert offline.language == "en" and offline.turns.mode == "half_duplex"
    assert (offline.stt and offline.stt.use, offline.llm.use, offline.output and offline.output.use) == (
        "pocketsphinx",
        "echo",
        "espeak",
    )
    assert "echo" in offline.description and "offline" in offline.description.lower()
    heygen = load_profile("heygen-ru", resolve_secrets=False)
    assert heygen.language == "ru" and heygen.turns.mode == "full_duplex"
    assert heygen.stt is not None and (heygen.stt.use, heygen.stt.options["model"]) == ("deepgram", "nova-3")
    assert (heygen.llm.use, heygen.output and heygen.output.use) == ("gemini", "liveavatar")
    live = load_profile("gemini-live", resolve_secrets=False)
    assert live.stt is None and live.output is None and live.llm.use == "gemini_live"
    assert live.turns.mode == "full_duplex"
    chirp = load_profile("google-chirp3", resolve_secrets=False)
    assert chirp.stt is not None and chirp.stt.use == "google" and chirp.language == "ru-RU"
    assert chirp.output is not None and chirp.output.options["voice"] == "ru-RU-Chirp3-HD-Aoede"


@pytest.mark.parametrize("path", sorted(REPO_PROFILES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_validates_clean(dirs: dict[str, Path], path: Path) -> None:
    assert check_profile(path, load_registry()) == []


def test_profile_equality_ignores_bookkeeping(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    first, second = load_profile("good"), load_profile("good")
    assert first == second and first.spec("llm") is first.llm
    with pytest.raises(ValueError, match="unknown role 'tts'"):
        first.spec("tts")
