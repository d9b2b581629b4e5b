"""What a loaded profile is: its backends' specs, turn-taking and audio settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voicekit.errors import ProfileError
from voicekit.options import RetryPolicy
from voicekit.profiles.document import ROLES, YPath, shown, where

TOP_LEVEL_KEYS = ("description", "extends", "abstract", "language", "stt", "llm", "output", "turns", "audio")


class ProfileValidationError(ProfileError):
    """A profile with one or more problems; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class BackendSpec:
    """The backend a profile picks for one role, its options, its retry policy and the
    backends to fall back to (``fallback:``, in order), each a spec of its own."""

    role: str  # "stt" | "llm" | "output"
    use: str  # the backend's registered name
    options: dict[str, Any] = field(repr=False)  # everything but use/retry/fallback, secrets resolved
    location: str  # e.g. "profiles/heygen-ru.yaml:4 (stt)", for messages
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy.model_validate({}))
    fallback: tuple[BackendSpec, ...] = ()
    path: YPath = ()  # where it is in the profile: ("stt",) or ("stt", "fallback", 0)

    def chain(self) -> list[BackendSpec]:
        """The backend and its fallbacks, in the order they are tried."""
        return [self, *self.fallback]


class TurnsConfig(BaseModel):
    """Turn-taking: whether the user can interrupt the bot, and how speech is timed."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["half_duplex", "full_duplex"] = Field(
        "half_duplex", description="half_duplex: the mic is muted while the bot speaks; full_duplex: barge-in"
    )
    interruptions: bool | None = Field(None, description="Shorthand: true is full_duplex, false is half_duplex")
    min_interruption_ms: int = Field(200, ge=0, description="User speech must last this long to barge in")
    end_of_speech_ms: int = Field(400, gt=0, description="VAD silence that ends user speech")

    @model_validator(mode="before")
    @classmethod
    def _interruptions_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("interruptions"), bool):
            mode = "full_duplex" if data["interruptions"] else "half_duplex"
            if data.get("mode", mode) != mode:
                raise ValueError(
                    f"interruptions: {str(data['interruptions']).lower()} contradicts mode: {data['mode']}"
                )
            data = {**data, "mode": mode}
        return data


class AudioConfig(BaseModel):
    """Audio handling around the backends: voice activity detection and the sink."""

    model_config = ConfigDict(extra="forbid")

    vad: Literal["webrtc", "silero", "none"] = Field("webrtc", description="Voice activity detector")
    vad_mode: int = Field(3, ge=0, le=3, description="webrtc aggressiveness, 0 (least) to 3 (most)")
    output_rate: int | None = Field(None, gt=0, description="Sink sample rate; default: the output backend's rate")
    frame_ms: int = Field(20, gt=0, le=100, description="Audio frame length in milliseconds")


@dataclass(frozen=True)
class Profile:
    """A loaded profile: ``extends`` merged, overrides applied, secrets resolved."""

    name: str
    path: Path | None
    description: str
    language: str | None
    stt: BackendSpec | None
    llm: BackendSpec
    output: BackendSpec | None
    turns: TurnsConfig
    audio: AudioConfig
    data: dict[str, Any] = field(repr=False)  # the merged document
    _origins: Mapping[YPath, str] = field(default_factory=dict, repr=False, compare=False)
    _from_env: frozenset[YPath] = field(default=frozenset(), repr=False, compare=False)
    _placeholders: frozenset[YPath] = field(default=frozenset(), repr=False, compare=False)

    def spec(self, role: str) -> BackendSpec | None:
        """The backend spec for ``role`` ("stt", "llm" or "output")."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        return getattr(self, role)  # type: ignore[no-any-return]

    def where(self, path: YPath) -> str:
        """Where ``path`` (e.g. ``("stt", "model")``) was set, for messages."""
        if self._origins:
            return where(self._origins, path)
        return shown(self.path) if self.path else self.name
