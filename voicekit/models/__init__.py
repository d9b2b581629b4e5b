"""The model cache: weights that local backends (whisper, piper, ...) load, fetched once.

- :mod:`voicekit.models.registry`: the models voicekit knows (``whisper:tiny.en``,
  ``piper:en_US-lessac-medium``, ...), which backend loads each, where it is downloaded from.
- :mod:`voicekit.models.cache`: the cache folder, what is in it, and :func:`ensure`, which a
  backend calls in ``start()`` to get its model's path (downloading it if it must).
- :mod:`voicekit.models.hub`: the download itself, through ``huggingface_hub``.

Who does what: a backend names the model and the option that takes a local copy instead
(``model_path``); this package finds it in the cache or downloads it, and turns every
failure into one line that says ``voicekit models pull NAME``. ``voicekit models`` lists,
pulls and locates models. Importing this package is cheap: the hub client is imported only
when something is downloaded.
"""

from voicekit.models.cache import (
    MODELS_DIR_ENV,
    CacheEntry,
    ModelUnavailableError,
    cached_models,
    disk_bytes,
    ensure,
    entry_path,
    is_cached,
    model_dir,
    models_dir,
)
from voicekit.models.registry import (
    FAMILIES,
    KNOWN_MODELS,
    ModelFamily,
    ModelSpec,
    UnknownModelError,
    family,
    models_of,
    piper_voice,
    resolve,
)

__all__ = [
    "FAMILIES",
    "KNOWN_MODELS",
    "MODELS_DIR_ENV",
    "CacheEntry",
    "ModelFamily",
    "ModelSpec",
    "ModelUnavailableError",
    "UnknownModelError",
    "cached_models",
    "disk_bytes",
    "ensure",
    "entry_path",
    "family",
    "is_cached",
    "model_dir",
    "models_dir",
    "models_of",
    "piper_voice",
    "resolve",
]
