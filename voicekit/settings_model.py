"""The pydantic-settings model behind :mod:`voicekit.settings` (imported only when a setting is read)."""

from __future__ import annotations

import difflib
import os
import threading
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from voicekit.errors import ConfigError
from voicekit.settings import ENV_PREFIX

_loading = threading.Lock()  # Settings.toml_file is set for the duration of one load

#: set in the environment only: the first says where config.toml is
ENV_ONLY = ("config_dir", "data_dir")


def _platform_config_dir() -> Path:
    from voicekit.settings import config_dir

    return config_dir()


def _platform_data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path("voicekit", appauthor=False)


class Settings(BaseSettings):
    """Every setting of voicekit itself (backends' options live in profiles).

    Read from ``VOICEKIT_<KEY>`` variables first, then ``config.toml``, then these defaults.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)
    toml_file: ClassVar[Path | None] = None

    config_dir: Path = Field(
        default_factory=_platform_config_dir, description="Profiles, keys.json and config.toml (environment only)"
    )
    data_dir: Path = Field(
        default_factory=_platform_data_dir, description="The ledger and the conversation history (environment only)"
    )
    profile: str = Field("offline", description="Profile of chat and bench when --profile is not given")
    serve_profile: str = Field("gemini-live", description="Profile of serve when --profile is not given")
    input_device: str | None = Field(None, description="Microphone name or index (see 'voicekit devices')")
    output_device: str | None = Field(None, description="Speaker name or index")
    history: bool = Field(True, description="Keep each conversation's transcript and metrics in the data dir")
    history_max_mb: float = Field(200.0, ge=0, description="Oldest conversations are dropped beyond this size")
    ledger: str | None = Field(
        None, description="Ledger: a SQLite file or a postgresql:// URL; default data_dir/ledger.sqlite3"
    )
    ledger_url: str | None = Field(None, description="PostgreSQL ledger a fleet shares (wins over ledger)")
    host_id: str | None = Field(None, description="This host's name in the ledger; default: the hostname")
    stale_after_s: float = Field(90.0, gt=0, description="A remote session without a heartbeat this long is an orphan")
    heartbeat_s: float | None = Field(None, gt=0, description="Seconds between heartbeats; default stale_after_s / 3")
    bench_turn_timeout: float = Field(30.0, gt=0, description="Longest wait for the bot's answer in a bench turn (s)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)

    @property
    def ledger_target(self) -> str | Path:
        """Where the ledger is: ``ledger_url``, else ``ledger`` (file or URL), else the data dir's file."""
        for value in (self.ledger_url, self.ledger):
            if value and value.strip():
                text = value.strip()
                return text if text.startswith(("postgresql://", "postgres://")) else Path(text).expanduser()
        return self.data_dir / "ledger.sqlite3"

    @property
    def heartbeat_interval_s(self) -> float:
        return self.heartbeat_s if self.heartbeat_s is not None else self.stale_after_s / 3

    @property
    def history_dir(self) -> Path:
        return self.data_dir / "history"


def load(toml_file: Path | None) -> Settings:
    """Read the settings; a bad value is one :class:`ConfigError` line naming the variable or the file."""
    table: dict[str, Any] = {}
    if toml_file is not None:
        import tomllib

        try:
            table = tomllib.loads(toml_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{toml_file}: not a valid TOML file: {exc}") from exc
        for key in ENV_ONLY:
            if key in table:
                raise ConfigError(f"{toml_file}: {key} cannot be set here; set {ENV_PREFIX}{key.upper()} instead")
    with _loading:
        Settings.toml_file = toml_file
        try:
            return Settings()  # type: ignore[call-arg]  # every field has a default or a source
        except ValidationError as exc:
            raise ConfigError(_first_problem(exc, toml_file, table)) from None
        finally:
            Settings.toml_file = None


def _first_problem(exc: ValidationError, toml_file: Path | None, table: dict[str, Any]) -> str:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""
    env = f"{ENV_PREFIX}{key.upper()}"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        known = ", ".join(k for k in Settings.model_fields if k not in ENV_ONLY)
        return f"{toml_file}: {key}: unknown setting{hint}; known: {known}"
    if env in os.environ:
        return f"{env}={os.environ[env]!r}: {error['msg']}"
    return f"{toml_file}: {key} = {table.get(key)!r}: {error['msg']}"


def describe(values: Settings) -> dict[str, Any]:
    """``{key: {"value", "source", "description"}}`` for ``voicekit config show``."""
    from voicekit.settings import config_path

    path = config_path()
    table: dict[str, Any] = {}
    if path.is_file():
        import tomllib

        table = tomllib.loads(path.read_text(encoding="utf-8"))
    rows: dict[str, Any] = {}
    for key, info in Settings.model_fields.items():
        env = f"{ENV_PREFIX}{key.upper()}"
        if env in os.environ:
            source = env
        elif key in table:
            source = str(path)
        else:
            source = "default"
        value = getattr(values, key)
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, str) and "://" in value:
            value = _without_password(value)
        rows[key] = {"value": value, "source": source, "description": info.description or ""}
    return rows


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
