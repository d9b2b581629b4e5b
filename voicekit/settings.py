"""voicekit's own settings: one pydantic-settings model, read from the environment and ``config.toml``.

Every setting has a key in ``config.toml`` (in the user config directory; ``voicekit
config path`` prints it) and a variable ``VOICEKIT_<KEY>`` that wins over the file:

```toml
# ~/.config/voicekit/config.toml
profile = "deepgram-elevenlabs"   # voicekit chat and bench without --profile
serve_profile = "gemini-live"     # voicekit serve without --profile
input_device = "USB"              # microphone name or index
history = true                    # keep each conversation's transcript and metrics
```

``config_dir`` and ``data_dir`` come from the environment only (the first says where
``config.toml`` is). A ``.env`` file in the working directory is loaded into the
environment by the CLI before anything reads it (:func:`load_dotenv`), without
replacing variables that are already set. Nothing here imports pydantic-settings until a
setting is read, so ``voicekit --help`` does not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicekit.settings_model import Settings

CONFIG_FILE = "config.toml"
ENV_PREFIX = "VOICEKIT_"


def config_dir() -> Path:
    """The user config directory: ``VOICEKIT_CONFIG_DIR``, else the platform's.

    Known without reading the model (which needs it to find ``config.toml``), so that the
    key store and profile lookup stay cheap; the model's ``config_dir`` is the same value.
    """
    return _config_file(os.environ).parent


def data_dir() -> Path:
    """The user data directory (ledger, history): ``VOICEKIT_DATA_DIR``, else the platform's."""
    return settings().data_dir


def config_path() -> Path:
    """Where ``config.toml`` is (it need not exist)."""
    return config_dir() / CONFIG_FILE


@dataclass(frozen=True)
class _Key:
    env: tuple[tuple[str, str], ...]
    config: tuple[str, float] | None


_cache: dict[_Key, Settings] = {}


def settings() -> Settings:
    """The settings in force now. Read again whenever a ``VOICEKIT_*`` variable or
    ``config.toml`` changed; raises :class:`voicekit.errors.ConfigError` on a bad value."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))
    path = _config_file(dict(env))
    try:
        stamp: tuple[str, float] | None = (str(path), path.stat().st_mtime)
    except OSError:
        stamp = None
    key = _Key(env, stamp)
    found = _cache.get(key)
    if found is None:
        from voicekit.settings_model import load

        found = load(path if stamp is not None else None)
        _cache.clear()
        _cache[key] = found
    return found


def _config_file(env: Mapping[str, str]) -> Path:
    directory = env.get(f"{ENV_PREFIX}CONFIG_DIR", "").strip()
    if directory:
        return Path(directory).expanduser() / CONFIG_FILE
    from platformdirs import user_config_path

    return user_config_path("voicekit", appauthor=False) / CONFIG_FILE


# --- .env ------------------------------------------------------------------------------------

#: names the CLI took from a ``.env`` file, and the file (for ``keys list`` and ``doctor``)
loaded_from_dotenv: dict[str, Path] = {}


def load_dotenv(directory: Path | None = None) -> Path | None:
    """Load ``.env`` from ``directory`` (the working directory) into the environment.

    Variables already set keep their value. Returns the file, or ``None`` when there is none.
    """
    path = (directory or Path.cwd()) / ".env"
    if not path.is_file():
        return None
    from dotenv import dotenv_values

    from voicekit.errors import ConfigError

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from exc
    for name, value in values.items():
        if value is not None and name not in os.environ:
            os.environ[name] = value
            loaded_from_dotenv[name] = path
    return path


def describe(values: Settings) -> dict[str, Any]:
    """Every setting with its value and where it came from, for ``voicekit config show``."""
    from voicekit.settings_model import describe as describe_model

    return describe_model(values)
