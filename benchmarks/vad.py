"""Accuracy and cost of each voice activity detector on synthesized speech in noise.

A recording is built from espeak-ng sentences (English and Russian) separated by
silences of 0.4-1.5 s; the known speech segments are where each sentence's audio is
not silent. Pink noise is added at several SNRs (speech power over the speech
segments / noise power). Every detector runs through
:class:`voicekit.audio.vad.VoiceActivityDetector` with the engine's defaults
(``min_speech_ms``/``min_silence_ms``) and is scored by:

- frame-level precision / recall / F1 (10 ms frames) against the known segments;
- segments found vs. true, and the median start/end error of matched segments;
- cost: µs per 32 ms chunk fed to ``process`` (model loading excluded), median and p99.

Prints one JSON line. Example: ``python benchmarks/vad.py --snr 20 10 5 --repeat 2``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicekit.audio.vad import create_vad
from voicekit.events import SpeechEnded
from voicekit.testing.speech import synthesize

RATE = 16000
SENTENCES = [
    ("en", "What time is it?"),
    ("en", "The weather is nice today, let's go for a walk."),
    ("ru", "Привет, как у тебя дела?"),
    ("en", "Please turn on the lights in the kitchen."),
    ("en", "Yes."),
    ("ru", "Сегодня хорошая погода."),
    ("en", "Set an alarm for seven in the morning, and remind me to call my mother."),
    ("en", "How far is the moon?"),
]
GAPS_S = [0.8, 1.2, 0.7, 1.5, 0.9, 1.0, 0.7, 1.2]
DETECTORS: dict[str, dict[str, Any]] = {
    "webrtc-0": {"kind": "webrtc", "mode": 0},
    "webrtc-1": {"kind": "webrtc", "mode": 1},
    "webrtc-2": {"kind": "webrtc", "mode": 2},
    "webrtc-3": {"kind": "webrtc", "mode": 3},
    "silero-lite": {"kind": "silero", "runtime": "lite"},
    "silero-pysilero": {"kind": "silero", "runtime": "pysilero"},
}


def build_recording() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The clean recording and its true speech segments in seconds."""
    parts: list[np.ndarray] = [np.zeros(int(RATE * 0.7), dtype=np.float32)]
    truth: list[tuple[float, float]] = []
    position = parts[0].size
    for (language, text), gap in zip(SENTENCES, GAPS_S, strict=True):
        speech = np.frombuffer(synthesize(text, language, pad_ms=0), dtype=np.int16).astype(np.float32)
        loud = np.flatnonzero(np.abs(speech) > 0.01 * np.abs(speech).max())
        speech = speech[loud[0] : loud[-1] + 1]
        truth.append((position / RATE, (position + speech.size) / RATE))
        parts += [speech, np.zeros(int(RATE * gap), dtype=np.float32)]
        position += speech.size + int(RATE * gap)
    return np.concatenate(parts), truth


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return np.asarray(noise / noise.std(), dtype=np.float32)


def with_noise(clean: np.ndarray, truth: list[tuple[float, float]], snr_db: float | None, seed: int) -> bytes:
    if snr_db is None:
        return bytes(clean.astype(np.int16).tobytes())
    mask = labels(truth, clean.size / RATE)
    speech_power = float(np.mean(clean[: mask.size * 160].reshape(-1, 160)[mask] ** 2))
    noise = pink_noise(clean.size, np.random.default_rng(seed)) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return bytes(np.clip(clean + noise, -32768, 32767).astype(np.int16).tobytes())


def labels(segments: list[tuple[float, float]], duration_s: float) -> np.ndarray:
    """10 ms frame labels: True inside a segment."""
    out = np.zeros(int(duration_s * 100), dtype=bool)
    for start, end in segments:
        out[round(start * 100) : round(end * 100)] = True
    return out


def score(found: list[tuple[float, float]], truth: list[tuple[float, float]], duration_s: float) -> dict[str, Any]:
    hyp, ref = labels(found, duration_s), labels(truth, duration_s)
    tp = int(np.sum(hyp & ref))
    precision = tp / max(1, int(hyp.sum()))
    recall = tp / max(1, int(ref.sum()))
    starts, ends = [], []
    for t_start, t_end in truth:
        overlapping = [(s, e) for s, e in found if s < t_end and e > t_start]
        if overlapping:
            starts.append(abs(overlapping[0][0] - t_start) * 1000)
            ends.append(abs(overlapping[-1][1] - t_end) * 1000)
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(2 * precision * recall / max(1e-9, precision + recall), 3),
        "segments": len(found),
        "true_segments": len(truth),
        "start_err_ms": round(statistics.median(starts), 1) if starts else None,
        "end_err_ms": round(statistics.median(ends), 1) if ends else None,
    }


def run_detector(
    options: dict[str, Any], pcm: bytes, min_speech_ms: int, min_silence_ms: int
) -> tuple[Any, list[float]]:
    vad = create_vad(min_speech_ms=min_speech_ms, min_silence_ms=min_silence_ms, **options)
    vad.process(bytes(2048))  # load and warm the model outside the timing
    vad.reset()
    chunk = 1024  # 32 ms
    costs: list[float] = []
    timer = time.perf_counter_ns
    segments: list[tuple[float, float]] = []

    def collect(events: list[Any]) -> None:
        for event in events:
            if isinstance(event, SpeechEnded):
                assert vad.speech_start_s is not None and vad.speech_end_s is not None
                segments.append((vad.speech_start_s, vad.speech_end_s))

    for offset in range(0, len(pcm), chunk):
        piece = pcm[offset : offset + chunk]
        t0 = timer()
        events = vad.process(piece)
        costs.append((timer() - t0) / 1000)
        collect(events)
    collect(vad.flush())
    return segments, costs


_AVERAGED = ("precision", "recall", "f1", "start_err_ms", "end_err_ms", "segments")


def _mean(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.mean(present), 3) if present else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--snr", type=float, nargs="*", default=[20.0, 10.0, 5.0], help="SNRs in dB (clean is always run)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="noise seeds per SNR")
    parser.add_argument("--min-speech-ms", type=int, default=200)
    parser.add_argument("--min-silence-ms", type=int, default=400)
    parser.add_argument("--only", nargs="*", default=list(DETECTORS), help="detectors to run")
    args = parser.parse_args()

    clean, truth = build_recording()
    duration = clean.size / RATE
    conditions: list[tuple[str, float | None]] = [("clean", None)] + [(f"snr{snr:g}", snr) for snr in args.snr]
    results: dict[str, Any] = {}
    for name in args.only:
        per_condition: dict[str, Any] = {}
        all_costs: list[float] = []
        for label, snr in conditions:
            scores = []
            for seed in range(args.repeat if snr is not None else 1):
                pcm = with_noise(clean, truth, snr, seed)
                found, costs = run_detector(DETECTORS[name], pcm, args.min_speech_ms, args.min_silence_ms)
                all_costs += costs
                scores.append(score(found, truth, duration))
            per_condition[label] = {**scores[0], **{key: _mean(s[key] for s in scores) for key in _AVERAGED}}
        all_costs.sort()
        results[name] = {
            "us_per_32ms_chunk": round(statistics.median(all_costs), 1),
            "us_p99": round(all_costs[int(len(all_costs) * 0.99)], 1),
            **per_condition,
        }
    print(
        json.dumps(
            {
                "benchmark": "vad",
                "audio_s": round(duration, 2),
                "true_segments": len(truth),
                "min_speech_ms": args.min_speech_ms,
                "min_silence_ms": args.min_silence_ms,
                "detectors": results,
            }
        )
    )


if __name__ == "__main__":
    main()
