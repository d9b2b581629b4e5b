"""The ``turns:`` section of a profile: bounded options, the detector, and the README's example."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pydantic
import pytest

from tests.fakes.profile_backends import isolate, write
from tests.unit.test_profile_docs import block, section
from voicekit.engine.end_of_turn import BACKCHANNELS, SilenceDetector, TurnAudio, TurnDetector, TurnVerdict
from voicekit.engine.runner import make_turn_detector, turn_policy
from voicekit.errors import ProfileError, UnknownBackendError
from voicekit.hookspecs import hookimpl
from voicekit.profiles import check_profile, load_profile
from voicekit.profiles.model import TurnsConfig
from voicekit.registry import get_plugin_manager, load_registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolate(tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("complete_wait_ms", -1, "greater than or equal to 0"),
        ("incomplete_wait_ms", 20_000, "less than or equal to 10000"),
        ("false_interruption_ms", 10_001, "less than or equal to 10000"),
    ],
)
def test_numbers_are_bounded_and_errors_show_the_range(key: str, value: int, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        TurnsConfig.model_validate({key: value})


def test_waits_must_grow() -> None:
    with pytest.raises(pydantic.ValidationError, match="complete_wait_ms"):
        TurnsConfig(complete_wait_ms=2000, incomplete_wait_ms=1000)
    with pytest.raises(pydantic.ValidationError, match="needs a name"):
        TurnsConfig.model_validate({"detector": {"model_path": "x"}})


def test_the_policy_comes_from_the_profile() -> None:
    profile = SimpleNamespace(
        turns=TurnsConfig(preemptive=True, complete_wait_ms=100, false_interruption_ms=800),
        language="ru-RU",
    )
    policy = turn_policy(profile)
    assert policy.preemptive and policy.timings.complete_s == 0.1 and policy.false_interruption_s == 0.8
    assert policy.backchannels == BACKCHANNELS["ru"] and policy.language == "ru-RU"
    custom = SimpleNamespace(turns=TurnsConfig(backchannels={"en": ["aha"]}), language="en")
    assert turn_policy(custom).backchannels == ("aha",)


def test_unknown_and_unusable_detectors_are_one_line_in_validate(dirs: dict[str, Path]) -> None:
    registry = load_registry()
    write(dirs["project"], "typo.yaml", "extends: offline\nturns: {detector: smart_trun}\n")
    assert check_profile("typo", registry) == [
        "unknown turn detector 'smart_trun' (did you mean 'smart_turn'?); known: silence, smart_turn"
    ]
    write(dirs["project"], "nomodel.yaml", "extends: offline\nturns: {detector: smart_turn}\n")
    (problem,) = check_profile("nomodel", registry)
    assert "smart-turn-v3.2-cpu.onnx" in problem and "model_path" in problem
    write(dirs["project"], "badopt.yaml", "extends: offline\nturns: {detector: {use: smart_turn, treshold: 0.4}}\n")
    (problem,) = check_profile("badopt", registry)
    assert "turns.detector.treshold" in problem and "badopt.yaml" in problem


def test_a_plugin_detector_is_registered_through_the_hook(dirs: dict[str, Path]) -> None:
    class Everything(TurnDetector):
        name = "everything"

        def judge(self, turn: TurnAudio) -> TurnVerdict:
            return TurnVerdict(True, 1.0)

    class Plugin:
        @hookimpl
        def register_turn_detectors(self, register):  # type: ignore[no-untyped-def]
            register("everything", Everything)

    pm = get_plugin_manager(load_entry_points=False)
    pm.register(Plugin(), name="turn-plugin")
    registry = load_registry(pm)
    write(dirs["project"], "mine.yaml", "extends: offline\nturns: {detector: everything}\n")
    profile = load_profile("mine")
    detector = make_turn_detector(profile, registry)
    assert isinstance(detector, Everything) and detector.judges_pauses
    assert isinstance(make_turn_detector(load_profile("offline"), registry), SilenceDetector)
    with pytest.raises(UnknownBackendError):
        make_turn_detector(profile, load_registry(get_plugin_manager(load_entry_points=False)))


def test_readme_turn_taking_example(dirs: dict[str, Path]) -> None:
    text = block(section(ROOT / "README.md", "## Turn-taking"), "yaml", "# profiles/patient.yaml")
    write(dirs["project"], "patient.yaml", text)
    profile = load_profile("patient")
    turns = profile.turns
    assert turns.detector_name == "smart_turn" and turns.preemptive and turns.false_interruption_ms == 1500
    assert (turns.complete_wait_ms, turns.incomplete_wait_ms, turns.max_wait_ms) == (200, 1500, 3000)
    with pytest.raises(ProfileError, match="no such file"):  # the example's model file is not here
        make_turn_detector(profile, load_registry())


def test_the_hook_reference_example_runs() -> None:
    import numpy as np

    from tests.unit.test_hook_docs import reference_section

    body = reference_section().split("### `register_turn_detectors`", 1)[1]
    code = block(body, "python", "from voicekit.engine.end_of_turn import")
    namespace: dict[str, object] = {"__name__": "voicekit_docs_turn_detector"}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    pm = get_plugin_manager(load_entry_points=False)
    pm.register(SimpleNamespace(register_turn_detectors=namespace["register_turn_detectors"]), name="docs")
    registry = load_registry(pm)
    detector = registry.turn_detector("loud_ending").load()()
    quiet = TurnAudio(bytes(32000), "hello")
    loud = TurnAudio((np.sin(np.arange(16000)) * 20000).astype("<i2").tobytes(), "hello")
    assert detector.judge(quiet).complete and not detector.judge(loud).complete
