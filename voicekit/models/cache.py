"""Where downloaded models live, what is there, and getting a model a backend needs.

The cache is ``models/`` in the user cache directory (``~/.cache/voicekit/models`` on
Linux; ``VOICEKIT_MODELS_DIR`` moves it), one folder per model:
``whisper/tiny.en/``, ``piper/en_US-lessac-medium/``, holding the model's files with their
paths in the repository they came from. A model is cached when every one of its files
is there: a file appears only once it is complete, so an interrupted pull leaves a model
that is not cached yet, and the files it finished are kept for the next one.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from voicekit.errors import VoicekitError
from voicekit.models.registry import FAMILIES, ModelSpec, UnknownModelError, resolve

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "VOICEKIT_MODELS_DIR"


class ModelUnavailableError(VoicekitError):
    """A backend needs a model that is not cached and cannot be downloaded now."""

    exit_code = 2


def models_dir() -> Path:
    """The root of the model cache (``VOICEKIT_MODELS_DIR``, else the user cache dir)."""
    env = os.environ.get(MODELS_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("voicekit", appauthor=False) / "models"


def model_dir(spec: ModelSpec) -> Path:
    """The folder that holds (or will hold) ``spec``'s files."""
    return models_dir() / spec.family.name / spec.model


def entry_path(spec: ModelSpec) -> Path:
    """What the backend loads: the model's folder, or its one main file."""
    folder = model_dir(spec)
    return folder / spec.entry if spec.entry else folder


def is_cached(spec: ModelSpec) -> bool:
    """Every file of ``spec`` is in the cache."""
    folder = model_dir(spec)
    return all((folder / name).is_file() for name in spec.files)


def disk_bytes(spec: ModelSpec) -> int:
    """Bytes of ``spec``'s files in the cache (complete files only)."""
    folder = model_dir(spec)
    return sum((folder / name).stat().st_size for name in spec.files if (folder / name).is_file())


@dataclass(frozen=True)
class CacheEntry:
    """A model found in the cache folder, complete or not."""

    spec: ModelSpec
    complete: bool
    size_bytes: int


def cached_models() -> list[CacheEntry]:
    """Every model with at least one file in the cache, known models and any Piper voice alike."""
    root = models_dir()
    found: list[CacheEntry] = []
    for fam in FAMILIES:
        folder = root / fam.name
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if not child.is_dir():
                continue
            try:
                spec = resolve(f"{fam.name}:{child.name}")
            except UnknownModelError:
                continue  # not a model voicekit put there
            size = disk_bytes(spec)
            if size:
                found.append(CacheEntry(spec, is_cached(spec), size))
    return found


def ensure(spec: ModelSpec, *, option: str) -> Path:
    """``spec``'s entry path, downloaded into the cache first when it is not there.

    ``option`` is the profile option that takes a local copy instead (``stt.model_path``):
    a model that cannot be downloaded fails with one line naming it and
    ``voicekit models pull``. Blocking: call it off the event loop.
    """
    if is_cached(spec):
        return entry_path(spec)
    from voicekit.models.hub import ModelDownloadError, download

    def announce(size: int) -> None:
        log.warning(
            "%s is not in the model cache: downloading %.0f MB ('voicekit models pull %s' does this ahead)",
            spec.name,
            size / 1e6,
            spec.name,
        )

    try:
        if sys.stderr.isatty():
            from rich.console import Console

            from voicekit.models.hub import download_progress

            with download_progress(Console(stderr=True), transient=True) as progress:
                return download(spec, progress=progress, on_start=announce)
        return download(spec, on_start=announce)
    except ModelDownloadError as exc:
        raise ModelUnavailableError(
            f"{spec.name} is not in the model cache and could not be downloaded ({exc.reason}); "
            f"run 'voicekit models pull {spec.name}' where the network is reachable, "
            f"or set {option} to a local copy of the model"
        ) from exc
