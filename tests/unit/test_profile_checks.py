"""Profiles: nested backends, fallbacks, capabilities from options, ranges, and the module path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pluggy
import pytest
from pydantic import Field

from tests.fakes.profile_backends import AudioLLM, FakeLLM, FakeOutput, FakeSTT, isolate, write
from voicekit import hookspecs
from voicekit.errors import UnknownBackendError
from voicekit.options import BackendOptions, NestedOutput
from voicekit.profiles import ProfileValidationError, build_backend, build_chain, load_profile, validate_profile
from voicekit.registry import Registry, load_registry
from voicekit.roles import LLM, BackendContext, Capabilities, Output

PROFILES_PACKAGE = Path(__file__).resolve().parents[2] / "voicekit" / "profiles"


class VoiceOutput(FakeOutput):
    """The profile tests' voice, in English and Russian only."""

    capabilities = Capabilities(languages=("en", "ru"), produces_audio=True)


class WrapperOutput(Output):
    """An output that speaks through another one, given as a nested spec."""

    class Options(BackendOptions):
        voice: NestedOutput | None = Field(None, description="The voice it wraps")
        gain: float = Field(1.0, ge=0, le=4, description="Loudness")


class MirrorOutput(Output):
    """A broken plugin: its default voice is itself, forever."""

    class Options(BackendOptions):
        voice: NestedOutput = Field(default_factory=lambda: {"use": "mirror"}, description="Itself")


class HearingLLM(LLM):
    """Takes audio, answers in text: needs an output, never an stt."""

    class Options(BackendOptions):
        model: str = "hear"

    capabilities = Capabilities(accepts_audio=True, produces_audio=False)


class ModalLLM(LLM):
    """What it can do depends on its options, as a live model's does."""

    class Options(BackendOptions):
        mode: Literal["audio", "text"] = "audio"

    capabilities = Capabilities(accepts_audio=True, produces_audio=True)

    @classmethod
    def capabilities_for(cls, options: Any) -> Capabilities:
        return cls.capabilities if options.mode == "audio" else Capabilities()


class _Plugin:
    @hookspecs.hookimpl
    def register_stt(self, register: hookspecs.Register) -> None:
        register("fakestt", FakeSTT)

    @hookspecs.hookimpl
    def register_llm(self, register: hookspecs.Register) -> None:
        register("fakellm", FakeLLM)
        register("audiollm", AudioLLM)
        register("hearing", HearingLLM)
        register("modal", ModalLLM)

    @hookspecs.hookimpl
    def register_output(self, register: hookspecs.Register) -> None:
        register("fakeout", VoiceOutput)
        register("wrapper", WrapperOutput)
        register("mirror", MirrorOutput)


@pytest.fixture
def registry() -> Registry:
    pm = pluggy.PluginManager("voicekit")
    pm.add_hookspecs(hookspecs)
    pm.register(_Plugin(), name="checksplugin")
    return load_registry(pm)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolate(tmp_path, monkeypatch)


CASCADE = "language: en\nstt: fakestt\n"


def problems(dirs: dict[str, Path], registry: Registry, text: str, overrides: tuple[str, ...] = ()) -> list[str]:
    write(dirs["project"], "p.yaml", text)
    return validate_profile(load_profile("p", list(overrides)), registry)


# --- nested backends -----------------------------------------------------------------------------

NESTED = (
    CASCADE
    + """llm: fakellm
output:
  use: wrapper
  voice:
    use: fakeout
    voise: anna
"""
)


def test_nested_spec_is_checked_like_a_top_level_one(dirs: dict[str, Path], registry: Registry) -> None:
    expected = [
        "profiles/p.yaml:6: output.voice.voice: missing required option",
        "profiles/p.yaml:8: output.voice.voise: unknown option (did you mean 'voice'?)",
    ]
    assert problems(dirs, registry, NESTED) == expected
    with pytest.raises(ProfileValidationError) as info:  # chat's start-up says the same
        build_backend(load_profile("p"), "output", registry)
    assert info.value.problems == expected


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "output.voice.use=fakeot",
            "--set output.voice.use=fakeot: output.voice.use: unknown output backend 'fakeot' "
            "(did you mean 'fakeout'?); known: fakeout, mirror, wrapper",
        ),
        (
            "output.voice={voice: anna}",
            "--set output.voice={voice: anna}: output.voice: expected a backend spec like {use: <backend>, ...}: "
            "'use' is missing",
        ),
        (
            "output.voice={use: fakeout, voice: anna, fallback: [{use: fakeout}]}",
            "--set output.voice={use: fakeout, voice: anna, fallback: [{use: fakeout}]}: output.voice.fallback: "
            "fallback is read in a profile's stt, llm and output sections only, not in a nested backend",
        ),
        (
            "output.voice={use: wrapper, voice: {use: fakeout, voice: a, voice_settings: {stabilty: 1}}}",
            "--set output.voice={use: wrapper, voice: {use: fakeout, voice: a, voice_settings: {stabilty: 1}}}: "
            "output.voice.voice.voice_settings.stabilty: unknown option (did you mean 'stability'?)",
        ),
    ],
)
def test_nested_problems(dirs: dict[str, Path], registry: Registry, override: str, expected: str) -> None:
    assert problems(dirs, registry, NESTED, (override,)) == [expected]


def test_nested_language_is_checked(dirs: dict[str, Path], registry: Registry) -> None:
    found = problems(
        dirs, registry, NESTED, ("output.voice={use: fakeout, voice: a}", "language=de", "stt.language=en")
    )
    assert found == [
        "--set language=de: language: output.voice backend 'fakeout' does not support language 'de' (it offers en, ru)"
    ]


def test_nested_values_are_never_echoed(dirs: dict[str, Path], registry: Registry) -> None:
    found = problems(dirs, registry, NESTED.replace("use: fakeout", "api_key: sk-very-secret"))
    assert found == [
        "profiles/p.yaml:6: output.voice: expected a backend spec like {use: <backend>, ...}: 'use' is missing"
    ]


def test_nested_placeholders_wait_for_the_environment(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "p.yaml", NESTED.replace("voise: anna", "voice: ${VOICE_NAME}"))
    assert validate_profile(load_profile("p", resolve_secrets=False), registry) == []
    profile = load_profile("p", env={"VOICE_NAME": "anna"})
    wrapper = build_backend(profile, "output", registry, BackendContext(conversation_id="c1"))
    assert wrapper.context.path == ("output",)
    # at run time the wrapper builds its voice through the context: same checks, its own place
    voice = wrapper.context.build("output", wrapper.options.voice, key="voice")
    assert isinstance(voice, VoiceOutput) and voice.options.voice == "anna" and voice.name == "fakeout"
    assert voice.context.path == ("output", "voice") and voice.context.conversation_id == "c1"
    assert voice.context.language == "en"
    with pytest.raises(ProfileValidationError) as info:
        wrapper.context.build("output", {"use": "fakeout", "voise": "x", "voice": "v"}, key="voice")
    assert info.value.problems == ["profiles/p.yaml:6: output.voice.voise: unknown option (did you mean 'voice'?)"]


def test_a_default_that_nests_itself_is_reported(dirs: dict[str, Path], registry: Registry) -> None:
    [problem] = problems(dirs, registry, NESTED, ("output=mirror",))
    assert problem.startswith("--set output=mirror: output.voice.voice.voice.")
    assert problem.endswith(": backends nested too deep (does a default nest itself?)")


def test_nested_shorthand_is_a_backend_name(dirs: dict[str, Path], registry: Registry) -> None:
    found = problems(dirs, registry, NESTED, ("output.voice=fakeout",))
    assert found == ["--set output.voice=fakeout: output.voice.voice: missing required option"]


# --- fallbacks -------------------------------------------------------------------------------------

FALLBACK = (
    CASCADE
    + """output: {use: fakeout, voice: anna}
llm:
  use: fakellm
  retry: {attempts: 2}
  fallback:
    - use: fakellm
      model: backup
    - use: fakellm
      modle: other
"""
)


def test_fallback_options_are_checked_with_file_and_line(dirs: dict[str, Path], registry: Registry) -> None:
    expected = ["profiles/p.yaml:11: llm.fallback[1].modle: unknown option (did you mean 'model'?)"]
    assert problems(dirs, registry, FALLBACK) == expected
    profile = load_profile("p")
    with pytest.raises(ProfileValidationError) as info:
        build_backend(profile, "llm", registry)  # what chat builds: the primary, its fallbacks checked
    assert info.value.problems == expected
    good = load_profile("p", ["llm.fallback=[{use: fakellm, model: backup}]"])
    assert validate_profile(good, registry) == []
    primary, backup = build_chain(good, "llm", registry)
    assert (primary.options.model, backup.options.model) == ("m1", "backup")
    assert backup.context.path == ("llm", "fallback", 0) and backup.context.retry.attempts == 2


def test_unknown_fallback_backend(dirs: dict[str, Path], registry: Registry) -> None:
    found = problems(dirs, registry, FALLBACK, ("llm.fallback=[{use: fakelm}]",))
    assert found == [
        "--set llm.fallback=[{use: fakelm}]: llm.fallback[0].use: unknown llm backend 'fakelm' "
        "(did you mean 'fakellm'?); known: audiollm, fakellm, hearing, modal"
    ]
    with pytest.raises(UnknownBackendError):
        build_backend(load_profile("p", ["llm.fallback=[{use: fakelm}]"]), "llm", registry)


@pytest.mark.parametrize(
    ("text", "fallback", "takes"),
    [
        (
            CASCADE + "llm: fakellm\noutput: {use: fakeout, voice: a}\n",
            "audiollm",
            "takes audio and llm 'fakellm' does not;",
        ),
        ("llm: audiollm\n", "fakellm", "does not take audio and llm 'audiollm' does;"),
    ],
)
def test_fallback_must_take_the_same_input(
    dirs: dict[str, Path], registry: Registry, text: str, fallback: str, takes: str
) -> None:
    override = f"llm.fallback=[{{use: {fallback}}}]"
    [problem] = problems(dirs, registry, text, (override,))
    assert problem.startswith(f"--set {override}: llm.fallback[0]: llm '{fallback}' {takes}")
    assert "switching between a speech-to-speech model and an stt -> llm cascade mid-conversation" in problem
    with pytest.raises(ProfileValidationError) as info:
        build_backend(load_profile("p", [override]), "llm", registry)
    assert info.value.problems == [problem]


def test_every_llm_of_the_chain_gets_what_it_needs(dirs: dict[str, Path], registry: Registry) -> None:
    override = "llm.fallback=[{use: audiollm}, {use: hearing}]"
    hearing = "output: missing, and llm 'hearing' does not speak; add output: {use: ...}"
    assert problems(dirs, registry, "llm: audiollm\n", (override,)) == [f"--set {override}: llm.fallback[1]: {hearing}"]
    with_output = "llm: audiollm\noutput: {use: fakeout, voice: a}\n"
    assert problems(dirs, registry, with_output, (override,)) == []


def test_capabilities_come_from_the_configured_options(dirs: dict[str, Path], registry: Registry) -> None:
    assert problems(dirs, registry, "llm: modal\n") == []
    assert problems(dirs, registry, "llm: modal\n", ("llm.mode=text",)) == [
        "profiles/p.yaml: stt: missing, and llm 'modal' does not take audio; add stt: {use: ...}",
        "profiles/p.yaml: output: missing, and llm 'modal' does not speak; add output: {use: ...}",
    ]
    llm = build_backend(load_profile("p", ["llm.mode=text"]), "llm", registry)
    assert llm.capabilities == Capabilities()  # the built backend agrees with validate


def test_retry_numbers_name_their_range(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "p.yaml", FALLBACK)
    with pytest.raises(ProfileValidationError) as info:
        load_profile("p", ["llm.retry.attempts=0", "llm.fallback[0]=x"])
    assert info.value.problems[0] == "--set llm.retry.attempts=0: llm.retry.attempts: must be from 1 to 20 (got 0)"


# --- the module path ---------------------------------------------------------------------------------

ORDER = ("document", "find", "read", "model", "load", "validate", "build")


@pytest.mark.parametrize("index", range(len(ORDER)), ids=ORDER)
def test_each_module_imports_only_the_ones_before_it(index: int) -> None:
    tree = ast.parse((PROFILES_PACKAGE / f"{ORDER[index]}.py").read_text())
    imported = {
        node.module.removeprefix("voicekit.profiles.")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("voicekit.profiles.")
    }
    assert imported <= set(ORDER[:index]), f"{ORDER[index]} imports {sorted(imported - set(ORDER[:index]))}"
    assert {p.stem for p in PROFILES_PACKAGE.glob("*.py")} == {"__init__", *ORDER}


def test_package_init_only_reexports() -> None:
    tree = ast.parse((PROFILES_PACKAGE / "__init__.py").read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}, kinds


def test_roles_are_defined_once() -> None:
    import voicekit.profiles.document
    import voicekit.registry
    import voicekit.roles

    assert voicekit.registry.ROLES is voicekit.roles.ROLES
    assert not hasattr(voicekit.profiles.document, "ROLES")


def test_old_module_paths_keep_every_name() -> None:
    code = (
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import voicekit.profile_files as f, voicekit.profile_yaml as y\n"
        "from voicekit.profiles import find, read, document\n"
        "assert f.find_profile is find.find_profile and f.load_chain is read.load_chain\n"
        "assert f.list_profiles is read.list_profiles and f.ProfileInfo is read.ProfileInfo\n"
        "assert y.Doc is document.Doc and y.model_problems is document.model_problems\n"
        "assert y.apply_override is read.apply_override and y.substitute_secrets is read.substitute_secrets\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


class _Unused(BackendOptions):
    """Only here to prove a plain dict option is not taken for a nested backend."""

    extra_voice: dict[str, Any] = Field(default_factory=dict, description="Not a backend")


def test_only_typed_options_are_nested() -> None:
    from voicekit.profiles.validate import nested_options

    assert nested_options(WrapperOutput.Options) == {"voice": ("voice", "output")}
    assert nested_options(_Unused) == {}
