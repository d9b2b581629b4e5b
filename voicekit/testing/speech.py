"""Spoken test audio, made offline with espeak-ng (the same engine as the ``espeak`` output).

``synthesize("what time is it")`` gives 16 kHz mono int16 PCM with a little silence
on both sides, ready to push into an STT stream or a VAD. Needs the ``offline`` extra.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def synthesize(
    text: str,
    language: str = "en",
    *,
    sample_rate: int = 16000,
    pad_ms: int = 300,
    voice: str | None = None,
    rate: int = 175,
) -> bytes:
    """``text`` spoken by espeak-ng as 16-bit mono PCM at ``sample_rate``.

    :param language: picks the voice (en → en-us, ru → ru) unless ``voice`` is given.
    :param pad_ms: silence added before and after the speech.
    """
    from voicekit.plugins.output._espeakng import get_engine, voice_for

    engine = get_engine()
    pcm = engine.synthesize_all(text, voice=voice or voice_for(language), rate=rate)
    if sample_rate != engine.sample_rate and pcm:
        import soxr

        samples = soxr.resample(np.frombuffer(pcm, dtype=np.int16), engine.sample_rate, sample_rate, quality="HQ")
        pcm = np.asarray(samples, dtype=np.int16).tobytes()
    pad = bytes(int(sample_rate * pad_ms / 1000) * 2)
    return pad + pcm + pad


def silence(ms: float, sample_rate: int = 16000) -> bytes:
    """``ms`` of digital silence as 16-bit mono PCM."""
    return bytes(int(sample_rate * ms / 1000) * 2)


def write_wav(path: str | Path, pcm: bytes, sample_rate: int = 16000) -> Path:
    """Write 16-bit mono PCM to a WAV file; returns the path."""
    path = Path(path)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm)
    return path
