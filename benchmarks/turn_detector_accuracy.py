"""How well each end-of-turn signal tells a finished sentence from one cut mid-way.

Three signals, measured separately and together: the smart-turn v3 audio model
(probability > 0.5 = complete), the transcript rules (a transcript ending on an article,
preposition or conjunction is incomplete), and both (complete only when both say so).

Clips: ``--wav-dir DIR`` takes recorded speech, ``NAME.wav`` (16 kHz mono) with its words in
``NAME.txt``, each a complete sentence; an incomplete twin of each is made by cutting the audio
and the words at the same share (the nearest word boundary in the text, the same proportion
of the audio). Without it, espeak-ng speaks a built-in list: synthetic prosody, reported as such
and not a fair test of the audio model (never tune thresholds on it).

``python benchmarks/turn_detector_accuracy.py [--wav-dir DIR] [--model-path FILE]`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicekit.engine.end_of_turn import ends_open  # noqa: E402
from voicekit.plugins.turn.smart_turn import SmartTurnDetector  # noqa: E402

COMPLETE = (
    "what is the weather like today",
    "please book a table for two",
    "i would like to order a large pizza please",
    "can you play some music",
    "remind me to call my mother tomorrow",
    "tell me a joke about cats",
    "how far is the airport from here",
    "set an alarm for seven in the morning",
)
INCOMPLETE = (
    "what is the weather like in",
    "please book a table for",
    "i would like to order",
    "can you play some",
    "remind me to call",
    "tell me a joke about",
    "how far is the airport from",
    "set an alarm for seven and",
)


def espeak_clips() -> list[tuple[np.ndarray, str, bool]]:
    from voicekit.testing import synthesize

    def speak(text: str) -> np.ndarray:
        return np.frombuffer(synthesize(text, "en", pad_ms=200), dtype="<i2").astype(np.float32) / 32768

    return [(speak(t), t, True) for t in COMPLETE] + [(speak(t), t, False) for t in INCOMPLETE]


def recorded_clips(folder: Path) -> list[tuple[np.ndarray, str, bool]]:
    from voicekit.audio.wav import load_pcm

    out: list[tuple[np.ndarray, str, bool]] = []
    for wav in sorted(folder.glob("*.wav")):
        words = wav.with_suffix(".txt").read_text().split()
        audio = np.frombuffer(load_pcm(wav), dtype="<i2").astype(np.float32) / 32768
        out.append((audio, " ".join(words), True))
        keep = max(1, len(words) * 3 // 5)
        out.append((audio[: int(audio.size * keep / len(words))], " ".join(words[:keep]), False))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav-dir", type=Path)
    parser.add_argument("--model-path")
    args = parser.parse_args(argv)
    model_path = args.model_path
    if model_path is None:
        from tests.smart_turn_model import smart_turn_model

        model_path = str(smart_turn_model())
    detector = SmartTurnDetector(SmartTurnDetector.Options(model_path=model_path))
    clips = recorded_clips(args.wav_dir) if args.wav_dir else espeak_clips()
    rows = []
    for audio, text, complete in clips:
        p = detector.probability(audio)
        rows.append((complete, p > 0.5, not ends_open(text, "en")))

    def accuracy(says: list[bool]) -> float:
        return round(sum(s == r[0] for s, r in zip(says, rows, strict=True)) / len(rows), 3)

    audio_says = [r[1] for r in rows]
    words_say = [r[2] for r in rows]
    both_say = [a and w for a, w in zip(audio_says, words_say, strict=True)]
    cut_called_complete = sum(1 for r in rows if not r[0] and r[1])
    print(
        json.dumps(
            {
                "clips": len(rows),
                "source": str(args.wav_dir) if args.wav_dir else "espeak-ng (synthetic)",
                "audio_model_accuracy": accuracy(audio_says),
                "transcript_rules_accuracy": accuracy(words_say),
                "combined_accuracy": accuracy(both_say),
                "cut_sentences_called_complete_by_audio": f"{cut_called_complete}/{sum(1 for r in rows if not r[0])}",
            }
        )
    )


if __name__ == "__main__":
    main()
