"""Backends, a registry and lookup directories for the profile tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pluggy
import pytest
from pydantic import BaseModel, Field

from voicekit import hookspecs
from voicekit.errors import ProfileError
from voicekit.options import BackendOptions, CloudOptions
from voicekit.registry import Registry, load_registry
from voicekit.roles import LLM, STT, Capabilities, Output


class FakeSTT(STT):
    """An STT with a few typical options; English and Russian only."""

    class Options(CloudOptions):
        model: str = Field("general", description="Model name")
        endpointing_ms: int = Field(300, description="Silence that ends a segment")
        language: str | None = None

    capabilities = Capabilities(languages=("en", "ru"))


class FakeLLM(LLM):
    class Options(CloudOptions):
        model: str = "m1"
        temperature: float = 0.7
        system: str = ""
        max_tokens: int = 256


class AudioLLM(LLM):
    class Options(BackendOptions):
        model: str = "live"

    capabilities = Capabilities(accepts_audio=True, produces_audio=True)


class VoiceSettings(BaseModel):
    model_config = {"extra": "forbid"}
    stability: float = 0.5
    similarity_boost: float = 0.75


class FakeOutput(Output):
    class Options(BackendOptions):
        voice: str  # required
        voice_settings: VoiceSettings | None = None


class _TestPlugin:
    @hookspecs.hookimpl
    def register_stt(self, register: hookspecs.Register) -> None:
        register("fakestt", FakeSTT)
        register("ghost", "voicekit_tests_no_such_module.ghost:GhostSTT")

    @hookspecs.hookimpl
    def register_llm(self, register: hookspecs.Register) -> None:
        register("fakellm", FakeLLM)
        register("audiollm", AudioLLM)

    @hookspecs.hookimpl
    def register_output(self, register: hookspecs.Register) -> None:
        register("fakeout", FakeOutput)


def make_registry() -> Registry:
    """A registry with only the backends above (names: fakestt, ghost, fakellm, audiollm, fakeout)."""
    pm = pluggy.PluginManager("voicekit")
    pm.add_hookspecs(hookspecs)
    pm.register(_TestPlugin(), name="testplugin")
    return load_registry(pm)


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A project dir (the cwd) and a user config dir, both with an empty profiles/."""
    project, config = tmp_path / "project", tmp_path / "config"
    (project / "profiles").mkdir(parents=True)
    (config / "profiles").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("VOICEKIT_CONFIG_DIR", str(config))
    return {"project": project / "profiles", "user": config / "profiles"}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problem_of(exc_info: pytest.ExceptionInfo[ProfileError]) -> str:
    """The error's message, checked to be one line."""
    message = str(exc_info.value)
    assert "\n" not in message
    return message


GOOD = """
description: a test profile
language: en
stt:
  use: fakestt
  model: nova
  endpointing_ms: 250
llm:
  use: fakellm
  temperature: 0.2
output:
  use: fakeout
  voice: anna
turns:
  mode: full_duplex
"""

SECRETS = """
llm:
  use: fakellm
  api_key: ${LLM_KEY}
  system: "Call me ${USER_NAME}, please"
stt:
  use: fakestt
  api_key: {$env: STT_KEY}
  endpointing_ms: ${EP_MS}
"""
