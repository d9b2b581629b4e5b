"""The model registry and the cache folder: names, where files go, what counts as cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicekit import models
from voicekit.models import ModelSpec, UnknownModelError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path / "models"))
    return tmp_path / "models"


def test_names_resolve_with_or_without_their_backend() -> None:
    assert models.resolve("whisper:tiny.en").repo == "Systran/faster-whisper-tiny.en"
    assert models.resolve("tiny.en") is models.resolve("whisper:tiny.en")
    assert models.resolve(" piper:en_US-lessac-medium ").name == "piper:en_US-lessac-medium"
    turbo = models.resolve("large-v3-turbo")
    assert "preprocessor_config.json" in turbo.files and "vocabulary.json" in turbo.files
    assert all(spec.family.name in ("whisper", "piper") for spec in models.KNOWN_MODELS)
    assert len({spec.name for spec in models.KNOWN_MODELS}) == len(models.KNOWN_MODELS)


def test_any_piper_voice_name_resolves_to_its_place_in_the_voices_repository() -> None:
    spec = models.resolve("piper:nl_BE-nathalie-x_low")  # not in the known list
    assert spec.repo == "rhasspy/piper-voices"
    assert spec.files == (
        "nl/nl_BE/nathalie/x_low/nl_BE-nathalie-x_low.onnx",
        "nl/nl_BE/nathalie/x_low/nl_BE-nathalie-x_low.onnx.json",
        "nl/nl_BE/nathalie/x_low/MODEL_CARD",
    )
    assert spec.entry == spec.files[0]
    assert models.resolve("de_DE-thorsten-high").family is models.family("piper")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("whisper:tiny.eng", "did you mean 'whisper:tiny.en'?"),
        ("tiny.eng", "did you mean 'tiny.en'?"),
        ("whisper:enormous", "unknown model 'whisper:enormous'"),
        ("piper:lessac", "not a Piper voice name"),
        ("wisper:tiny", "no backend 'wisper' uses downloadable models; these do: whisper, piper"),
    ],
)
def test_unknown_names_fail_with_one_line_and_a_hint(name: str, message: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        models.resolve(name)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_new_model_is_one_line() -> None:
    """The registry's own promise: a turn detector's single ONNX file, described in one expression."""
    turn = models.ModelFamily("turn", module="onnxruntime", extra="turn", role="turns")
    spec = ModelSpec(
        turn, "smart-turn-v3", "pipecat-ai/smart-turn-v3", ("smart-turn-v3.0.onnx",), 8, entry="smart-turn-v3.0.onnx"
    )
    assert spec.name == "turn:smart-turn-v3"
    assert spec.revision == "main"


def test_cache_dir_follows_the_environment(cache: Path) -> None:
    spec = models.resolve("whisper:tiny.en")
    assert models.models_dir() == cache
    assert models.model_dir(spec) == cache / "whisper" / "tiny.en"
    assert models.entry_path(spec) == cache / "whisper" / "tiny.en"
    voice = models.resolve("piper:en_US-lessac-medium")
    assert models.entry_path(voice) == cache / "piper" / "en_US-lessac-medium" / voice.files[0]


def test_default_cache_dir_is_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from platformdirs import user_cache_path

    monkeypatch.delenv(models.MODELS_DIR_ENV, raising=False)
    assert models.models_dir() == user_cache_path("voicekit", appauthor=False) / "models"


def test_a_model_is_cached_when_every_file_is_there(cache: Path) -> None:
    spec = models.resolve("whisper:tiny.en")
    folder = models.model_dir(spec)
    assert not models.is_cached(spec) and models.cached_models() == []
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"x" * 1000)
    (folder / "unrelated.txt").write_bytes(b"y" * 50)
    [entry] = models.cached_models()
    assert entry.spec is spec and not entry.complete and entry.size_bytes == 1000
    for name in spec.files:
        if name != "model.bin":
            (folder / name).write_text("{}")
    assert models.is_cached(spec)
    assert models.cached_models()[0].complete
    assert models.disk_bytes(spec) == 1000 + 2 * (len(spec.files) - 1)


def test_the_cache_lists_piper_voices_beyond_the_known_ones_and_ignores_strangers(cache: Path) -> None:
    spec = models.resolve("piper:nl_BE-nathalie-x_low")
    for name in spec.files:
        path = models.model_dir(spec) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"v")
    (cache / "piper" / "not a voice").mkdir()
    (cache / "whisper" / "my-own-model").mkdir(parents=True)
    assert [(e.spec.name, e.complete) for e in models.cached_models()] == [("piper:nl_BE-nathalie-x_low", True)]


def test_ensure_returns_a_cached_model_without_the_network(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = models.resolve("whisper:tiny.en")
    for name in spec.files:
        (models.model_dir(spec) / name).parent.mkdir(parents=True, exist_ok=True)
        (models.model_dir(spec) / name).write_text("{}")
    assert models.ensure(spec, option="stt.model_path") == models.model_dir(spec)
