"""Profiles: loading, validation messages, extends, secrets and --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.profile_backends import (
    GOOD,
    SECRETS,
    FakeSTT,
    isolate,
    make_registry,
    problem_of,
    write,
)
from voicekit.errors import MissingSecretError, PluginError, ProfileError, UnknownBackendError
from voicekit.profiles import (
    AudioConfig,
    ProfileValidationError,
    TurnsConfig,
    build_backend,
    check_profile,
    load_profile,
    validate_profile,
)
from voicekit.registry import Registry
from voicekit.roles import BackendContext


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolate(tmp_path, monkeypatch)


# --- loading ---------------------------------------------------------------------------------


def test_load_builds_specs_configs_and_locations(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    profile = load_profile("good")
    assert profile.name == "good" and profile.description == "a test profile" and profile.language == "en"
    assert profile.path == dirs["project"] / "good.yaml"
    assert profile.stt is not None and profile.stt.use == "fakestt"
    assert profile.stt.options == {"model": "nova", "endpointing_ms": 250}
    assert profile.stt.location == "profiles/good.yaml:3 (stt)"
    assert profile.llm.location == "profiles/good.yaml:7 (llm)"
    assert profile.output is not None and profile.output.options == {"voice": "anna"}
    assert profile.turns == TurnsConfig(mode="full_duplex")
    assert profile.audio == AudioConfig()
    assert profile.data["stt"]["model"] == "nova"


def test_role_shorthand_and_absent_roles(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "live.yaml", "llm: audiollm\nstt: null\n")
    profile = load_profile("live")
    assert profile.llm.use == "audiollm" and profile.llm.options == {}
    assert profile.stt is None and profile.output is None
    assert profile.turns.mode == "half_duplex"


@pytest.mark.parametrize(("value", "mode"), [("true", "full_duplex"), ("false", "half_duplex")])
def test_interruptions_shorthand(dirs: dict[str, Path], value: str, mode: str) -> None:
    write(dirs["project"], "t.yaml", f"llm: fakellm\nturns:\n  interruptions: {value}\n")
    profile = load_profile("t")
    assert profile.turns.mode == mode and "interruptions" not in profile.data["turns"]
    assert profile.where(("turns", "mode")) == "profiles/t.yaml:3"  # the line of the shorthand
    write(dirs["project"], "u.yaml", "llm: fakellm\nturns: {mode: half_duplex}\n")
    assert load_profile("u", [f"turns.interruptions={value}"]).turns.mode == mode  # an override wins


def test_interruptions_is_a_profile_shorthand_only() -> None:
    with pytest.raises(ValueError, match="interruptions"):
        TurnsConfig.model_validate({"interruptions": True})  # one place expands it: reading the profile


def test_interruptions_contradicting_mode(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "t.yaml", "llm: fakellm\nturns:\n  mode: half_duplex\n  interruptions: true\n")
    with pytest.raises(ProfileError) as info:
        load_profile("t")
    assert problem_of(info) == (
        "profiles/t.yaml:4: turns.interruptions: true contradicts turns.mode: half_duplex (profiles/t.yaml:3)"
    )
    write(dirs["project"], "v.yaml", "llm: fakellm\nturns:\n  interruptions: sometimes\n")
    with pytest.raises(ProfileError, match=r"^profiles/v.yaml:3: turns.interruptions: expected true or false"):
        load_profile("v")
    with pytest.raises(ProfileError, match=r"^--set turns.interruptions=2: turns.interruptions: expected true or"):
        load_profile(write(dirs["project"], "w.yaml", "llm: fakellm\n"), ["turns.interruptions=2"])


def test_missing_llm(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "nollm.yaml", "description: x\nstt: fakestt\n")
    with pytest.raises(ProfileError, match=r"^profiles/nollm\.yaml: llm: missing; every profile needs one"):
        load_profile("nollm")


def test_malformed_yaml_gives_line_and_column(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "bad.yaml", "llm:\n  use: fakellm\n  model: [a, b\nturns: {}\n")
    with pytest.raises(ProfileError) as info:
        load_profile("bad")
    message = problem_of(info)
    assert message.startswith("profiles/bad.yaml:4:6: invalid YAML:"), message
    assert "expected ',' or ']'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("llm: fakellm\nlanugage: en\n", "profiles/p.yaml:2: lanugage: unknown key (did you mean 'language'?)"),
        (
            "llm: fakellm\nturns:\n  end_of_speech: 300\n",
            "profiles/p.yaml:3: turns.end_of_speech: unknown key (did you mean 'end_of_speech_ms'?)",
        ),
        (
            "llm: fakellm\nturns:\n  mode: full_duplx\n",
            "profiles/p.yaml:3: turns.mode: Input should be 'half_duplex' or 'full_duplex' "
            "(did you mean 'full_duplex'?)",
        ),
        (
            "llm: fakellm\naudio:\n  vad: webrtc\n  vad_mode: 7\n",
            "profiles/p.yaml:4: audio.vad_mode: must be from 0 to 3 (got 7)",
        ),
        ("llm: fakellm\naudio:\n  frame_ms: 20\n", "profiles/p.yaml:3: audio.frame_ms: unknown key"),
        (
            "llm: fakellm\nturns:\n  end_of_speech_ms: 20\n",
            "profiles/p.yaml:3: turns.end_of_speech_ms: must be from 50 to 10000 (got 20)",
        ),
        (
            "llm: fakellm\nturns:\n  min_interruption_ms: -1\n",
            "profiles/p.yaml:3: turns.min_interruption_ms: must be from 0 to 5000 (got -1)",
        ),
        (
            "llm: fakellm\naudio:\n  output_rate: 100000\n",
            "profiles/p.yaml:3: audio.output_rate: must be from 8000 to 48000 (got 100000)",
        ),
        ("llm: fakellm\nstt: [fakestt]\n", "profiles/p.yaml:2: stt: expected a mapping like {use: <backend>, ...}"),
        ("llm:\n  model: x\n", "profiles/p.yaml:1: llm.use: missing; name the llm backend, e.g. use: <backend>"),
        ("llm: fakellm\ndescription: [1]\n", "profiles/p.yaml:2: description: expected text, got [1]"),
        (
            "llm: fakellm\nlanguage: no\n",
            "profiles/p.yaml:2: language: expected text, got False (quote it if it is text)",
        ),
        ("llm: fakellm\nturns: fast\n", "profiles/p.yaml:2: turns: expected a mapping"),
    ],
)
def test_structure_errors_name_file_line_path_and_suggestion(dirs: dict[str, Path], text: str, expected: str) -> None:
    write(dirs["project"], "p.yaml", text)
    with pytest.raises(ProfileValidationError) as info:
        load_profile("p")
    assert info.value.problems == [expected]


def test_every_structure_problem_is_reported(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "p.yaml", "descripton: x\nllm: fakellm\nturns:\n  mode: x\n  min_interruption: 1\n")
    with pytest.raises(ProfileValidationError) as info:
        load_profile("p")
    assert [p.split(":")[1] for p in info.value.problems] == ["1", "4", "5"]
    assert str(info.value) == "; ".join(info.value.problems)


def test_duplicate_keys_and_recursive_aliases(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "dup.yaml", "llm: fakellm\nstt:\n  use: fakestt\n  model: a\n  model: b\n")
    with pytest.raises(ProfileError) as info:
        load_profile("dup")
    assert problem_of(info) == "profiles/dup.yaml:5: stt.model: duplicate key (first written on line 4)"
    write(dirs["project"], "anchors.yaml", "x: &opts {model: a}\nllm:\n  <<: *opts\n  use: fakellm\n  model: b\n")
    with pytest.raises(ProfileValidationError, match=r"^profiles/anchors.yaml:1: x: unknown key$"):
        load_profile("anchors")  # a merge key overridden by the mapping's own key is not a duplicate
    write(dirs["project"], "loop.yaml", "llm: &a\n  use: fakellm\n  tools: [*a]\n")
    with pytest.raises(ProfileError, match=r"^profiles/loop.yaml:1: llm.tools\[0\]: an alias refers to itself$"):
        load_profile("loop")


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("- a\n- b\n", "a list")])
def test_profile_must_be_a_mapping(dirs: dict[str, Path], text: str, what: str) -> None:
    write(dirs["project"], "p.yaml", text)
    with pytest.raises(ProfileError, match=f"^profiles/p.yaml: a profile is a YAML mapping .* this one is {what}$"):
        load_profile("p")


# --- backends: validate_profile and build_backend --------------------------------------------


def test_good_profile_validates_clean_and_builds(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    profile = load_profile("good")
    assert validate_profile(profile, registry) == []
    stt = build_backend(profile, "stt", registry, BackendContext(conversation_id="c1"))
    assert isinstance(stt, FakeSTT) and stt.name == "fakestt"
    assert stt.options.endpointing_ms == 250 and stt.options.model == "nova"
    assert stt.context.language == "en" and stt.context.conversation_id == "c1"
    output = build_backend(profile, "output", registry, None)
    assert output.options.voice == "anna" and output.context.language == "en"


def test_build_backend_keeps_the_context_language(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    llm = build_backend(load_profile("good"), "llm", registry, BackendContext(language="ru"))
    assert llm.context.language == "ru" and llm.options.temperature == 0.2


def test_build_backend_without_that_role(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "live.yaml", "llm: audiollm\n")
    with pytest.raises(ProfileError, match=r"^profiles/live.yaml: stt: profile 'live' has no stt backend$"):
        build_backend(load_profile("live"), "stt", registry, None)


def test_unknown_option_suggests_the_field(dirs: dict[str, Path], registry: Registry) -> None:
    write(
        dirs["project"],
        "p.yaml",
        "llm: fakellm\nstt:\n  use: fakestt\n  endpointng_ms: 300\noutput: {use: fakeout, voice: a}\n",
    )
    profile = load_profile("p")
    expected = "profiles/p.yaml:4: stt.endpointng_ms: unknown option (did you mean 'endpointing_ms'?)"
    assert validate_profile(profile, registry) == [expected]
    with pytest.raises(ProfileValidationError) as info:
        build_backend(profile, "stt", registry, None)
    assert info.value.problems == [expected]


def test_option_errors_each_on_a_line(dirs: dict[str, Path], registry: Registry) -> None:
    write(
        dirs["project"],
        "p.yaml",
        """
        stt: fakestt
        llm:
          use: fakellm
          temperature: hot
          api_key: 12
        output:
          use: fakeout
          voice_settings:
            stabilty: 0.3
        """,
    )
    problems = validate_profile(load_profile("p"), registry)
    assert problems == [
        "profiles/p.yaml:5: llm.api_key: Input should be a valid string",  # a secret's value is never echoed
        "profiles/p.yaml:4: llm.temperature: Input should be a valid number, unable to parse string as a number "
        "(got 'hot')",
        "profiles/p.yaml:6: output.voice: missing required option",
        "profiles/p.yaml:9: output.voice_settings.stabilty: unknown option (did you mean 'stability'?)",
    ]


def test_unknown_backend(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "p.yaml", "description: x\nllm:\n  model: a\n  use: fakelm\n")
    profile = load_profile("p")
    expected = (
        "profiles/p.yaml:4: llm.use: unknown llm backend 'fakelm' (did you mean 'fakellm'?); known: audiollm, fakellm"
    )
    assert validate_profile(profile, registry) == [expected]
    with pytest.raises(UnknownBackendError) as info:
        build_backend(profile, "llm", registry, None)
    assert str(info.value) == expected


def test_backend_that_does_not_import(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "p.yaml", "llm: fakellm\noutput: {use: fakeout, voice: a}\nstt:\n  use: ghost\n")
    profile = load_profile("p")
    [problem] = validate_profile(profile, registry)
    assert problem.startswith("profiles/p.yaml:4: stt.use: not installed: stt backend 'ghost' from plugin testplugin")
    assert "No module named 'voicekit_tests_no_such_module'" in problem
    with pytest.raises(PluginError, match=r"^profiles/p.yaml:4: stt.use: not installed"):
        build_backend(profile, "stt", registry, None)


def test_missing_stt_or_output_needs_an_audio_llm(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "text.yaml", "llm: fakellm\n")
    assert validate_profile(load_profile("text"), registry) == [
        "profiles/text.yaml: stt: missing, and llm 'fakellm' does not take audio; add stt: {use: ...}",
        "profiles/text.yaml: output: missing, and llm 'fakellm' does not speak; add output: {use: ...}",
    ]
    write(dirs["project"], "live.yaml", "llm: audiollm\n")
    assert validate_profile(load_profile("live"), registry) == []


def test_language_the_backend_does_not_offer(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "de.yaml", "language: de\nstt: fakestt\nllm: audiollm\n")
    assert validate_profile(load_profile("de"), registry) == [
        "profiles/de.yaml:1: language: stt backend 'fakestt' does not support language 'de' (it offers en, ru)"
    ]
    write(dirs["project"], "ru.yaml", "language: de\nstt: {use: fakestt, language: ru-RU}\nllm: audiollm\n")
    assert validate_profile(load_profile("ru"), registry) == []


# --- extends -----------------------------------------------------------------------------------


def test_extends_chain_deep_merges(dirs: dict[str, Path], registry: Registry) -> None:
    write(
        dirs["user"],
        "root.yaml",
        """
        description: root
        language: en
        stt: {use: fakestt, model: a, endpointing_ms: 100}
        llm:
          use: fakellm
          system: be brief
          stop: [x, y]
          temprature: 1
        output: {use: fakeout, voice: v}
        turns: {end_of_speech_ms: 700, min_interruption_ms: 50}
        """,
    )
    write(dirs["project"], "mid.yaml", "extends: root\nstt: {model: b}\nllm: {stop: [z]}\n")
    write(dirs["project"], "leaf.yaml", "extends: mid\ndescription: leaf\nturns: {interruptions: true}\n")
    profile = load_profile("leaf")
    assert profile.description == "leaf" and profile.language == "en"
    assert profile.stt is not None and profile.stt.options == {"model": "b", "endpointing_ms": 100}
    assert profile.llm.options == {"stop": ["z"], "system": "be brief", "temprature": 1}
    assert profile.turns == TurnsConfig(mode="full_duplex", end_of_speech_ms=700, min_interruption_ms=50)
    assert "extends" not in profile.data
    assert profile.stt.location == "profiles/mid.yaml:2 (stt)"  # the last file that wrote stt:
    # each problem points at the file that wrote the key
    assert validate_profile(profile, registry) == [
        "profiles/mid.yaml:3: llm.stop: unknown option",
        f"{dirs['user'] / 'root.yaml'}:8: llm.temprature: unknown option (did you mean 'temperature'?)",
    ]


def test_extends_by_relative_path(dirs: dict[str, Path]) -> None:
    write(dirs["project"].parent / "shared", "common.yaml", "language: ru\nllm: {use: fakellm, model: x}\n")
    write(dirs["project"], "p.yaml", "extends: ../shared/common.yaml\nllm: {model: y}\n")
    profile = load_profile("p")
    assert profile.language == "ru" and profile.llm.options == {"model": "y"}


def test_child_switching_backend_drops_parent_options(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "a.yaml", "llm: fakellm\nstt: {use: fakestt, endpointing_ms: 100}\n")
    write(dirs["project"], "b.yaml", "extends: a\nstt: {use: other, beam: 3}\n")
    stt = load_profile("b").stt
    assert stt is not None and stt.use == "other" and stt.options == {"beam": 3}
    assert stt.location == "profiles/b.yaml:2 (stt)"


def test_extends_cycle(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "a.yaml", "llm: fakellm\nextends: b\n")
    write(dirs["project"], "b.yaml", "description: b\nextends: c\n")
    write(dirs["project"], "c.yaml", "extends: a\n")
    with pytest.raises(ProfileError) as info:
        load_profile("a")
    assert problem_of(info) == (
        "profiles/c.yaml:1: extends: cycle: profiles/a.yaml -> profiles/b.yaml -> profiles/c.yaml -> profiles/a.yaml"
    )
    write(dirs["project"], "self.yaml", "llm: fakellm\nextends: ./self.yaml\n")
    with pytest.raises(ProfileError, match=r"^profiles/self.yaml:2: extends: cycle: profiles/self.yaml -> profiles"):
        load_profile("self")


def test_extends_unknown_name_and_bad_value(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "base2.yaml", "language: en\n")
    write(dirs["project"], "p.yaml", "llm: fakellm\nextends: bse2\n")
    with pytest.raises(
        ProfileError, match=r"^profiles/p.yaml:2: extends: no profile named 'bse2' \(did you mean 'base2'"
    ):
        load_profile("p")
    write(dirs["project"], "q.yaml", "llm: fakellm\nextends: [a]\n")
    with pytest.raises(ProfileError, match=r"^profiles/q.yaml:2: extends: expected a profile name"):
        load_profile("q")
    write(dirs["project"], "r.yaml", "llm: fakellm\nextends: ./nope.yaml\n")
    with pytest.raises(ProfileError, match=r"^profiles/r.yaml:2: extends: no such file: profiles/nope.yaml$"):
        load_profile("r")


def test_extending_its_own_name_gets_the_hidden_profile(dirs: dict[str, Path]) -> None:
    write(dirs["user"], "mine.yaml", "description: user's\nllm: {use: fakellm, model: u}\n")
    write(dirs["project"], "mine.yaml", "extends: mine\nllm: {temperature: 0.1}\n")
    profile = load_profile("mine")
    assert profile.description == "user's" and profile.llm.options == {"model": "u", "temperature": 0.1}


def test_abstract_profiles(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "defaults.yaml", "abstract: true\nturns: {end_of_speech_ms: 900}\n")
    write(dirs["project"], "real.yaml", "extends: defaults\nllm: audiollm\n")
    with pytest.raises(ProfileError, match=r"^profiles/defaults.yaml:1: profile 'defaults' is abstract"):
        load_profile("defaults")
    profile = load_profile("real")
    assert profile.turns.end_of_speech_ms == 900 and "abstract" not in profile.data
    assert check_profile("defaults", registry) == []
    write(dirs["project"], "broken.yaml", "abstract: true\nturns: {end_of_speech: 900}\n")
    assert check_profile("broken", registry) == [
        "profiles/broken.yaml:2: turns.end_of_speech: unknown key (did you mean 'end_of_speech_ms'?)"
    ]


# --- secrets ----------------------------------------------------------------------------------


def test_both_secret_syntaxes_resolve(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "s.yaml", SECRETS)
    env = {"LLM_KEY": "k-llm", "USER_NAME": "Ann", "STT_KEY": "k-stt", "EP_MS": "120"}
    profile = load_profile("s", env=env)
    assert profile.llm.options["api_key"] == "k-llm"
    assert profile.llm.options["system"] == "Call me Ann, please"
    assert profile.stt is not None and profile.stt.options["api_key"] == "k-stt"
    stt = build_backend(profile, "stt", registry, None)
    assert stt.api_key() == "k-stt" and stt.options.endpointing_ms == 120
    assert "k-llm" not in repr(profile) and "k-stt" not in repr(profile.stt)


def test_secrets_default_to_the_process_environment(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    write(dirs["project"], "s.yaml", "llm: {use: fakellm, api_key: '${VK_TEST_KEY}'}\n")
    monkeypatch.setenv("VK_TEST_KEY", "from-os")
    assert load_profile("s").llm.options["api_key"] == "from-os"


def test_missing_secret_names_variable_file_and_line(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "s.yaml", SECRETS)
    with pytest.raises(MissingSecretError) as info:
        load_profile("s", env={"USER_NAME": "Ann", "EP_MS": "1"})
    assert str(info.value) == (
        "profiles/s.yaml:3: llm.api_key: environment variable LLM_KEY is not set; "
        "profiles/s.yaml:7: stt.api_key: environment variable STT_KEY is not set"
    )


def test_unresolved_secrets_stay_placeholders(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "s.yaml", SECRETS)
    profile = load_profile("s", resolve_secrets=False, env={})
    assert profile.llm.options["api_key"] == "${LLM_KEY}"
    assert profile.stt is not None and profile.stt.options["api_key"] == "${STT_KEY}"
    # an int option holding a placeholder is not a problem before it is resolved
    assert validate_profile(profile, registry) == [
        "profiles/s.yaml: output: missing, and llm 'fakellm' does not speak; add output: {use: ...}"
    ]


def test_build_backend_refuses_unresolved_secrets(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "s.yaml", SECRETS)
    with pytest.raises(ProfileError, match=r"^profiles/s.yaml:3: llm.api_key: secret not resolved"):
        build_backend(load_profile("s", resolve_secrets=False), "llm", registry, None)


def test_bad_env_mapping(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "s.yaml", "llm:\n  use: fakellm\n  api_key: {$env: KEY, default: x}\n")
    with pytest.raises(ProfileError, match=r"^profiles/s.yaml:3: llm.api_key: write \{\$env: NAME\} with one"):
        load_profile("s", env={"KEY": "v"})


# --- --set overrides --------------------------------------------------------------------------


def test_set_overrides_parse_yaml_scalars(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    profile = load_profile(
        "good",
        [
            "stt.model=nova-2",
            "language=ru",
            "llm.temperature=0.3",
            "turns.mode=half_duplex",
            "llm.stream=true",
            "llm.n=3",
            "llm.stop=[a,b]",
            "llm.generation.top_k=5",
            "llm.system=You are: helpful",
            "output=null",
        ],
    )
    assert profile.stt is not None and profile.stt.options["model"] == "nova-2"
    assert profile.language == "ru" and profile.turns.mode == "half_duplex" and profile.output is None
    assert profile.llm.options == {
        "temperature": 0.3,
        "stream": True,
        "n": 3,
        "stop": ["a", "b"],
        "generation": {"top_k": 5},
        "system": "You are: helpful",
    }


def test_set_use_switches_the_backend(dirs: dict[str, Path]) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    assert load_profile("good", "language=ru").language == "ru"  # a lone string is one override
    profile = load_profile("good", ["stt.use=scripted", "stt.script=hello"])
    assert profile.stt is not None and profile.stt.use == "scripted" and profile.stt.options == {"script": "hello"}
    assert profile.stt.location == "--set stt.use=scripted (stt)"
    same = load_profile("good", ["stt.use=fakestt"])
    assert same.stt is not None and same.stt.options == {"model": "nova", "endpointing_ms": 250}
    added = load_profile("good", ["output.use=fakeout", "turns.interruptions=false"])
    assert added.output is not None and added.output.options == {"voice": "anna"}
    assert added.turns.mode == "half_duplex"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stt.model", "--set stt.model: expected KEY=VALUE with a dotted key, e.g. --set stt.model=nova-2"),
        ("stt..model=x", "--set stt..model=x: expected KEY=VALUE with a dotted key"),
        ("=x", "--set =x: expected KEY=VALUE"),
        ("extends=offline", "--set extends=offline: extends cannot be overridden"),
        ("llm.stop=[a,", "--set llm.stop=[a,: the value is not valid YAML"),
        (
            "language.code=ru",
            "--set language.code=ru: cannot set language.code: language (profiles/good.yaml:2) is a str",
        ),
    ],
)
def test_bad_set_syntax(dirs: dict[str, Path], override: str, message: str) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    with pytest.raises(ProfileError) as info:
        load_profile("good", [override])
    assert problem_of(info).startswith(message)


def test_set_typos_are_reported_with_the_override(dirs: dict[str, Path], registry: Registry) -> None:
    write(dirs["project"], "good.yaml", GOOD)
    with pytest.raises(ProfileValidationError) as info:
        load_profile("good", ["lanugage=ru"])
    assert info.value.problems == ["--set lanugage=ru: lanugage: unknown key (did you mean 'language'?)"]
    profile = load_profile("good", ["stt.endpointng_ms=3"])
    assert validate_profile(profile, registry) == [
        "--set stt.endpointng_ms=3: stt.endpointng_ms: unknown option (did you mean 'endpointing_ms'?)"
    ]
