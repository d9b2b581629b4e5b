"""``turns: {detector: smart_turn}``: Pipecat's smart-turn v3 audio model judges each pause.

smart-turn v3.x (BSD-2-Clause, by Daily) is an 8 MB ONNX classifier on Whisper's encoder: it
hears the last 8 s of the user's turn and gives the probability that they finished. It runs
through onnxruntime on Whisper log-mel features computed in numpy
(:mod:`voicekit.plugins.turn.whisper_features`): no torch, no transformers. Turn-taking asks
it only in pauses, on a worker thread; a judgement takes tens of milliseconds on one core.

The model file comes from ``model_path`` (the ``smart-turn-v3.2-cpu.onnx`` that Pipecat
publishes and ships); :func:`model_file` is where a shared model cache will be asked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from voicekit.engine.end_of_turn import TurnAudio, TurnDetector, TurnVerdict
from voicekit.errors import ProfileError
from voicekit.options import BackendOptions
from voicekit.plugins.turn.whisper_features import SAMPLE_RATE, log_mel
from voicekit.sdk import import_sdk

WINDOW_S = 8  # the model hears the last 8 s of the turn


class SmartTurnOptions(BackendOptions):
    """Options of ``turns: {detector: {use: smart_turn, ...}}``."""

    model_path: str | None = Field(
        None, description="The smart-turn v3 ONNX file (smart-turn-v3.2-cpu.onnx from Pipecat's release)"
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="Probability above which the turn counts as complete")
    threads: int = Field(1, ge=1, le=16, description="CPU threads onnxruntime may use for one judgement")


def model_file(options: SmartTurnOptions) -> Path:
    """Where the model file is: ``model_path`` for now (the one place a model cache lookup goes)."""
    if options.model_path:
        path = Path(options.model_path).expanduser()
        if not path.is_file():
            raise ProfileError(f"turns.detector.model_path: no such file: {path}")
        return path
    raise ProfileError(
        "turns.detector: smart_turn needs the model file: download smart-turn-v3.2-cpu.onnx (it ships in the "
        "pipecat-ai wheel as pipecat/audio/turn/smart_turn/data/) and set "
        "turns: {detector: {use: smart_turn, model_path: /path/to/smart-turn-v3.2-cpu.onnx}}"
    )


def model_input(audio: np.ndarray) -> np.ndarray:
    """The model's input for a turn's audio: its last 8 s (silence in front of a shorter
    one), as Whisper features with a batch axis: ``(1, 80, 800)``."""
    window = WINDOW_S * SAMPLE_RATE
    clip = np.asarray(audio, dtype=np.float32)[-window:]
    if clip.size < window:
        clip = np.concatenate([np.zeros(window - clip.size, dtype=np.float32), clip])
    return log_mel(clip, seconds=WINDOW_S)[None, :, :]


class SmartTurnDetector(TurnDetector):
    """smart-turn v3 over onnxruntime; see the module docstring."""

    Options: ClassVar[type[SmartTurnOptions]] = SmartTurnOptions  # type: ignore[assignment]
    name: ClassVar[str] = "smart_turn"
    options: SmartTurnOptions

    def __init__(self, options: Any = None, *, language: str | None = None) -> None:
        super().__init__(options, language=language)
        self._session: Any = None

    def check(self) -> None:
        model_file(self.options)
        import_sdk("onnxruntime", package="onnxruntime", extra="turn", backend="smart_turn")

    def load(self) -> None:
        if self._session is not None:
            return
        path = model_file(self.options)
        ort = import_sdk("onnxruntime", package="onnxruntime", extra="turn", backend="smart_turn")
        settings = ort.SessionOptions()
        settings.inter_op_num_threads = 1
        settings.intra_op_num_threads = self.options.threads
        settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), sess_options=settings, providers=["CPUExecutionProvider"])

    def probability(self, audio: np.ndarray) -> float:
        """The model's probability that the turn in ``audio`` (float, 16 kHz) is complete."""
        self.load()
        (output,) = self._session.run(None, {"input_features": model_input(audio)})[:1]
        return float(np.asarray(output).reshape(-1)[0])

    def judge(self, turn: TurnAudio) -> TurnVerdict:
        started = time.perf_counter()
        p = self.probability(turn.samples())
        took = (time.perf_counter() - started) * 1000
        return TurnVerdict(p > self.options.threshold, round(p, 4), round(took, 2))

    def close(self) -> None:
        self._session = None
