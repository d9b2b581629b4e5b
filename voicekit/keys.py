"""API keys: the environment first, then the key store.

The key store is ``keys.json`` in the user config directory (``voicekit keys path``), a
JSON object of variable names to values, readable by its owner only (mode 0600).
``voicekit keys set NAME`` writes it; backends read a key through :func:`lookup`, which
looks in the environment (a ``.env`` file the CLI loaded included) before the store, so
a variable always wins over a stored key. Values are never printed or logged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "keys.json"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FoundKey:
    """A key's value and where it came from: ``environment``, ``.env (PATH)`` or ``key store (PATH)``."""

    name: str
    value: str
    source: str


def keys_path() -> Path:
    """The key store's file (it need not exist)."""
    from voicekit.settings import config_dir

    return config_dir() / KEYS_FILE


def stored_keys() -> dict[str, str]:
    """Every stored key; an unreadable store is a :class:`~voicekit.errors.ConfigError`."""
    path = keys_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        from voicekit.errors import ConfigError

        raise ConfigError(f"{path}: cannot read the key store: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        from voicekit.errors import ConfigError

        raise ConfigError(f"{path}: the key store is not valid JSON (line {exc.lineno}); fix or delete it") from exc
    if not isinstance(data, dict):
        from voicekit.errors import ConfigError

        raise ConfigError(f"{path}: the key store must be a JSON object of NAME: value")
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def check_name(name: str) -> str:
    """``name`` if it can be an environment variable's name, else a :class:`~voicekit.errors.ConfigError`."""
    if not _NAME.match(name):
        from voicekit.errors import ConfigError

        raise ConfigError(f"'{name}' is not a variable name (letters, digits and _, e.g. DEEPGRAM_API_KEY)")
    return name


def set_key(name: str, value: str) -> Path:
    """Store ``value`` under ``name``: the file is replaced whole and readable by its owner only."""
    check_name(name)
    keys = stored_keys()
    keys[name] = value
    return _write(keys)


def remove_key(name: str) -> bool:
    """Forget a stored key; whether it was there."""
    keys = stored_keys()
    if name not in keys:
        return False
    del keys[name]
    _write(keys)
    return True


def _write(keys: dict[str, str]) -> Path:
    path = keys_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(sorted(keys.items())), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)  # a umask cannot widen it, but an old file's mode could have been wider
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


#: names the CLI put into the environment from the key store
_from_store: set[str] = set()


def lookup(name: str) -> FoundKey | None:
    """The key named ``name`` from the environment, else the key store; ``None`` when neither has it."""
    value = os.environ.get(name)
    if value:
        from voicekit.settings import loaded_from_dotenv

        dotenv = loaded_from_dotenv.get(name)
        if dotenv is not None:
            return FoundKey(name, value, f".env ({dotenv})")
        if name in _from_store:
            return FoundKey(name, value, f"key store ({keys_path()})")
        return FoundKey(name, value, "environment")
    stored = stored_keys().get(name)
    if stored:
        return FoundKey(name, stored, f"key store ({keys_path()})")
    return None


def load_into_environment() -> None:
    """Put stored keys into the environment where a variable is not set already, so that
    ``${NAME}`` in profiles and every backend see them (the CLI calls this at start-up)."""
    for name, value in stored_keys().items():
        if name not in os.environ:
            os.environ[name] = value
            _from_store.add(name)
