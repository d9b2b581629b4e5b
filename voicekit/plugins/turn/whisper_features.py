"""Whisper's log-mel spectrogram in numpy: the input smart-turn v3 was trained on.

80 mel bands (Slaney scale and area normalisation) over a 400-sample periodic Hann window
every 160 samples (10 ms at 16 kHz), frames centred with reflected padding, power spectrum,
``log10`` floored at 1e-10, clamped to 8 decades below the loudest value and scaled by
``(x + 4) / 4`` — as OpenAI's Whisper and its ports compute it, without torch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log_step = np.log(6.4) / 27.0
    above = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) / log_step
    return np.where(hz >= 1000.0, above, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log_step = np.log(6.4) / 27.0
    above = 1000.0 * np.exp(log_step * (mel - 15.0))
    return np.where(mel >= 15.0, above, linear)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """Triangular filters, shape ``(N_MELS, N_FFT // 2 + 1)``, each scaled to unit area (Slaney)."""
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    filters = np.clip(np.minimum(rising, falling), 0.0, None)
    scaled: np.ndarray = filters * (2.0 / (upper - lower))
    return scaled


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    n = np.arange(N_FFT, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic Hann


def log_mel(audio: np.ndarray, *, seconds: int = 8, normalize: bool = True) -> np.ndarray:
    """Whisper features of ``audio`` (float, 16 kHz), shape ``(80, seconds * 100)``, float32.

    ``audio`` shorter than ``seconds`` is padded with silence at its end, longer is cut there.
    ``normalize`` first scales the waveform to zero mean and unit variance (what the
    smart-turn feature extractor does).
    """
    samples = seconds * SAMPLE_RATE
    x = np.zeros(samples, dtype=np.float32)
    clip = np.asarray(audio, dtype=np.float32)[:samples]
    x[: clip.size] = clip
    if normalize:
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(mel_filters() @ power.T, 1e-10))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    features: np.ndarray = ((mel + 4.0) / 4.0).astype(np.float32)
    return features
