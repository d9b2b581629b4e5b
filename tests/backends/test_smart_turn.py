"""smart-turn v3.2 through onnxruntime with numpy features: parity with Pipecat, and the detector's API.

The model file comes out of the pipecat-ai 1.14.0 wheel (tests/smart_turn_model.py). The
parity test runs Pipecat's own ``LocalSmartTurnAnalyzerV3`` in a side environment
(``benchmarks/peers``: its own virtualenv, made on first use, never voicekit's) on the same
audio and compares the probabilities.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks.peers import peer_python
from tests.smart_turn_model import smart_turn_model
from voicekit.engine.end_of_turn import TurnAudio
from voicekit.errors import ProfileError
from voicekit.plugins.turn.smart_turn import SmartTurnDetector, model_input
from voicekit.plugins.turn.whisper_features import log_mel, mel_filters
from voicekit.testing import synthesize

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def detector() -> SmartTurnDetector:
    found = SmartTurnDetector(SmartTurnDetector.Options(model_path=str(smart_turn_model())))
    found.load()
    return found


def clips() -> dict[str, np.ndarray]:
    """Speech of several lengths, whole and cut mid-sentence, silence and noise."""
    out: dict[str, np.ndarray] = {}
    for i, text in enumerate(
        ["what is the weather like today", "i would like to order", "please book a table for two and"]
    ):
        pcm = np.frombuffer(synthesize(text, pad_ms=200), dtype="<i2").astype(np.float32) / 32768
        out[f"{i}-whole"] = pcm
        out[f"{i}-cut"] = pcm[: pcm.size * 2 // 3]
    long = np.concatenate([out["0-whole"]] * 6)  # longer than the model's 8 s window
    out["long"] = long
    out["noise"] = (np.random.default_rng(7).standard_normal(16000) * 0.05).astype(np.float32)
    return out


def test_features_have_whispers_shape_and_range() -> None:
    filters = mel_filters()
    assert filters.shape == (80, 201) and (filters >= 0).all()
    features = log_mel(np.zeros(1600, dtype=np.float32) + 0.1 * np.sin(np.arange(1600)))
    assert features.shape == (80, 800) and features.dtype == np.float32
    assert features.max() - features.min() <= 2.0 + 1e-6  # clamped to 8 decades, scaled by 1/4
    assert model_input(np.ones(200_000, dtype=np.float32)).shape == (1, 80, 800)


def test_the_detector_judges_a_turn(detector: SmartTurnDetector) -> None:
    pcm = synthesize("tell me a joke about cats", pad_ms=200)
    verdict = detector.judge(TurnAudio(pcm, "tell me a joke about cats", "en"))
    assert verdict.probability is not None and 0.0 <= verdict.probability <= 1.0
    assert verdict.complete == (verdict.probability > 0.5)
    assert verdict.compute_ms is not None and verdict.compute_ms > 0


def test_a_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"smart-turn-v3\.2-cpu\.onnx"):
        SmartTurnDetector().check()
    with pytest.raises(ProfileError, match="no such file"):
        SmartTurnDetector(SmartTurnDetector.Options(model_path=str(tmp_path / "none.onnx"))).check()


@pytest.mark.slow
def test_probabilities_equal_pipecats_local_smart_turn_v3(detector: SmartTurnDetector, tmp_path: Path) -> None:
    audio = clips()
    archive = tmp_path / "clips.npz"
    np.savez(archive, **audio)
    python = peer_python("pipecat")  # Pipecat 1.14 in its own environment (made the first time)
    script = ROOT / "benchmarks" / "peers" / "pipecat_smart_turn.py"
    done = subprocess.run(
        [str(python), str(script), str(smart_turn_model()), str(archive)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    ours = [detector.probability(audio[key]) for key in sorted(audio)]
    assert len(theirs) == len(ours) == len(audio)
    worst = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    assert worst <= 0.01, f"voicekit {ours} vs Pipecat {theirs}"
    assert max(ours) - min(ours) > 0.1, "the clips should not all look alike to the model"
