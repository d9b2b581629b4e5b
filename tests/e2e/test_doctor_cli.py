"""``voicekit doctor``, ``profiles validate``, ``plugins list/show`` and the online model check:
one readiness answer (SDK, key, ``${NAME}``), in subprocesses, against the vendors' fakes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.cli_helpers import voicekit
from tests.fakes.deepgram import FakeDeepgram
from tests.fakes.elevenlabs import DEFAULT_KEY as ELEVENLABS_KEY
from tests.fakes.elevenlabs import ElevenLabsFake
from tests.fakes.gemini_rest import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_rest import GeminiFake
from voicekit.plugins.stt.deepgram import DeepgramSTT

# Python run before voicekit in the subprocess: the Deepgram SDK cannot be imported, as if uninstalled.
NO_DEEPGRAM_SDK = """
import sys
class _Uninstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "deepgram" or name.startswith("deepgram."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Uninstalled())
"""
NO_KEYS = {"DEEPGRAM_API_KEY": "", "GEMINI_API_KEY": "", "GOOGLE_API_KEY": "", "ELEVENLABS_API_KEY": ""}
KEYS = {"DEEPGRAM_API_KEY": "k1", "GEMINI_API_KEY": "k2", "ELEVENLABS_API_KEY": "k3"}


def test_doctor_offline_is_ready() -> None:
    done = voicekit("doctor", "--profile", "offline")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stt: pocketsphinx: SDK installed (voicekit[offline])" in done.stdout
    assert "ledger:" in done.stdout and "ready: voicekit chat can start" in done.stdout


def test_doctor_names_missing_keys_and_where_to_put_them() -> None:
    done = voicekit("doctor", "--profile", "deepgram-elevenlabs", env=NO_KEYS)
    assert done.returncode == 1
    assert "stt: backend 'deepgram': no API key; set DEEPGRAM_API_KEY or run 'voicekit keys set DEEPGRAM_API_KEY'" in (
        done.stdout
    )
    assert "3 problems stop chat" in done.stdout
    found = voicekit("doctor", "--profile", "deepgram-elevenlabs", env=KEYS)
    assert found.returncode == 0, found.stdout
    assert "key DEEPGRAM_API_KEY from environment" in found.stdout


def test_missing_sdk_is_reported_by_doctor_validate_and_plugins_list() -> None:
    doctor = voicekit("doctor", "--profile", "deepgram-elevenlabs", env=KEYS, prelude=NO_DEEPGRAM_SDK)
    assert doctor.returncode == 1
    assert "stt: backend 'deepgram' needs deepgram-sdk: pip install 'voicekit[deepgram]'" in doctor.stdout

    validate = voicekit("profiles", "validate", "deepgram-elevenlabs", env=KEYS, prelude=NO_DEEPGRAM_SDK)
    assert validate.returncode == 0, validate.stdout  # valid, so only a warning without --strict
    assert "warning: stt: backend 'deepgram' needs deepgram-sdk: pip install 'voicekit[deepgram]'" in validate.stdout
    assert "deepgram-elevenlabs: ok" not in validate.stdout
    assert "deepgram-elevenlabs: valid, but not ready here (1 problem above" in validate.stdout
    strict = voicekit("profiles", "validate", "--strict", "deepgram-elevenlabs", env=KEYS, prelude=NO_DEEPGRAM_SDK)
    assert strict.returncode == 1 and "error: stt: backend 'deepgram' needs deepgram-sdk" in strict.stdout

    listed = voicekit("plugins", "list", "--json", prelude=NO_DEEPGRAM_SDK)
    rows = {(r["role"], r["name"]): r for r in json.loads(listed.stdout)["backends"]}
    assert rows[("stt", "deepgram")]["status"] == "missing"
    assert rows[("stt", "deepgram")]["pip"] == "pip install 'voicekit[deepgram]'"
    assert rows[("stt", "pocketsphinx")]["status"] == "installed" and rows[("llm", "echo")]["origin"] == "built in"


def test_validate_all_warns_about_unset_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEAVATAR_API_KEY", raising=False)
    monkeypatch.delenv("LIVEAVATAR_AVATAR_ID", raising=False)
    done = voicekit("profiles", "validate", "--all", env=KEYS)
    assert done.returncode == 0, done.stdout
    assert "heygen-ru: ok" not in done.stdout and "offline: ok" in done.stdout
    unset = "output.avatar_id: environment variable LIVEAVATAR_AVATAR_ID is not set"
    assert any(
        line.startswith("warning: profiles/heygen-ru.yaml:") and line.endswith(unset)
        for line in done.stdout.splitlines()
    )
    assert "warning: output: backend 'liveavatar': no API key; set LIVEAVATAR_API_KEY" in done.stdout


def test_plugins_show_prints_every_option() -> None:
    done = voicekit("plugins", "show", "deepgram")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("stt: deepgram  (built in, voicekit.plugins.stt.deepgram:DeepgramSTT)")
    for name in DeepgramSTT.Options.model_fields:
        assert any(line.split()[:1] == [name] for line in lines), f"option {name} not shown"
    timeout = next(line for line in lines if line.startswith("timeout_s "))
    assert "float" in timeout and "10.0" in timeout and "0 < x ≤ 600" in timeout
    api_key = next(line for line in lines if line.startswith("api_key "))
    assert "(env: DEEPGRAM_API_KEY)" in api_key
    assert "extra: pip install 'voicekit[deepgram]'" in done.stdout
    as_json = json.loads(voicekit("plugins", "show", "espeak", "--json").stdout)
    assert as_json["role"] == "output" and {o["name"] for o in as_json["options"]} >= {"voice"}
    ambiguous = voicekit("plugins", "show", "scripted")
    assert ambiguous.returncode == 2 and "pick one with --role" in ambiguous.stderr
    unknown = voicekit("plugins", "show", "deepgrm")
    assert unknown.returncode == 2 and "did you mean 'deepgram'" in unknown.stderr


def test_profiles_show_defaults_fills_every_option() -> None:
    import yaml

    done = voicekit("profiles", "show", "deepgram-elevenlabs", "--defaults")
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(done.stdout)
    assert set(data["stt"]) >= set(DeepgramSTT.Options.model_fields) | {"use", "retry"}
    assert data["stt"]["endpointing_ms"] == 300 and data["stt"]["keepalive_s"] == 4.0  # the profile's, the default
    from voicekit.profiles.model import TurnsConfig

    assert set(data["turns"]) == set(TurnsConfig.model_fields)
    assert data["turns"]["mode"] == "full_duplex" and data["turns"]["end_of_speech_ms"] == 400
    assert data["audio"]["output_rate"] is None and data["llm"]["retry"]["attempts"] == 3
    plain = yaml.safe_load(voicekit("profiles", "show", "deepgram-elevenlabs").stdout)
    assert "keepalive_s" not in plain["stt"]


def _cloud_profile(path: Path, dg: FakeDeepgram, gemini: GeminiFake, eleven: ElevenLabsFake, model: str) -> Path:
    path.write_text(
        f"stt: {{use: deepgram, model: nova-3, base_url: '{dg.url}'}}\n"
        f"llm: {{use: gemini, model: {model}, base_url: '{gemini.base_url}'}}\n"
        f"output: {{use: elevenlabs, base_url: '{eleven.base_url}'}}\n"
    )
    return path


async def test_doctor_online_checks_the_configured_models(tmp_path: Path) -> None:
    async with FakeDeepgram() as dg, GeminiFake() as gemini, ElevenLabsFake() as eleven:
        env = {"DEEPGRAM_API_KEY": dg.api_key, "GEMINI_API_KEY": GEMINI_KEY, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}
        good = _cloud_profile(tmp_path / "good.yaml", dg, gemini, eleven, "gemini-3.8-flash")
        done = await asyncio.to_thread(voicekit, "doctor", "--profile", str(good), "--online", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "stt: deepgram: online: 'nova-3' offered" in done.stdout
        assert "llm: gemini: online: 'gemini-3.8-flash' offered" in done.stdout
        assert "output: elevenlabs: online: 'JBFqnCBsd6RMkjVDRZzb' offered" in done.stdout
        assert dg.rest_requests[0] == "/v1/projects" and gemini.list_requests

        stale = _cloud_profile(tmp_path / "stale.yaml", dg, gemini, eleven, "gemini-2.5-flash")
        done = await asyncio.to_thread(voicekit, "doctor", "--profile", str(stale), "--online", env=env)
        assert done.returncode == 1
        assert (
            "llm: the service does not offer the model 'gemini-2.5-flash' to this key; "
            "see 'voicekit models list --backend gemini'" in done.stdout
        )

        refused = await asyncio.to_thread(
            voicekit, "doctor", "--profile", str(good), "--online", env={**env, "ELEVENLABS_API_KEY": "wrong"}
        )
        assert refused.returncode == 1 and "ElevenLabs rejected the API key (HTTP 401)" in refused.stdout


async def test_models_list_asks_the_service(tmp_path: Path) -> None:
    async with FakeDeepgram() as dg, GeminiFake() as gemini, ElevenLabsFake() as eleven:
        profile = _cloud_profile(tmp_path / "p.yaml", dg, gemini, eleven, "gemini-3.8-flash")
        env = {"DEEPGRAM_API_KEY": dg.api_key, "GEMINI_API_KEY": GEMINI_KEY, "ELEVENLABS_API_KEY": ELEVENLABS_KEY}
        args = ("models", "list", "--backend", "gemini", "--profile", str(profile))
        done = await asyncio.to_thread(voicekit, *args, "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert [m["id"] for m in json.loads(done.stdout)] == [
            "gemini-3.8-flash",
            "gemini-3.5-flash-lite",
            "gemini-3.1-flash-lite",
        ]
        table = await asyncio.to_thread(voicekit, *args, env=env)
        assert "gemini-3.8-flash (configured)" in table.stdout and "3 models" in table.stdout
        voices = await asyncio.to_thread(
            voicekit,
            "models",
            "list",
            "--backend",
            "elevenlabs",
            "--profile",
            str(profile),
            env=env,
        )
        assert "George" in voices.stdout and "2 voices" in voices.stdout
        offline = await asyncio.to_thread(voicekit, "models", "list", "--backend", "espeak")
        assert offline.returncode == 2 and "cannot list the models of its service" in offline.stderr
