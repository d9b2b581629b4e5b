"""What a loaded profile is: its backends' specs, turn-taking and audio settings.

Plain data, made by :mod:`voicekit.profiles.load` from a read document; nothing here
looks at backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voicekit.errors import ProfileError
from voicekit.options import RetryPolicy
from voicekit.profiles.document import YPath, is_secret_key, shown, where
from voicekit.profiles.read import has_placeholder
from voicekit.redaction import redact_url
from voicekit.roles import ROLES
from voicekit.tools.config import PROFILE_KEYS as TOOL_KEYS

TOP_LEVEL_KEYS = (
    "description", "extends", "abstract", "language", "stt", "llm", "output", "turns", "audio", *TOOL_KEYS,
)  # fmt: skip


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

    def as_dict(self) -> dict[str, Any]:
        """``{"use": name, **options}``, the form :class:`voicekit.profiles.build.SpecBuilder` takes."""
        return {"use": self.use, **self.options}


class TurnsConfig(BaseModel):
    """Turn-taking: whether the user can interrupt the bot, and how speech is timed.

    In a profile, ``interruptions: true`` is short for ``mode: full_duplex`` (``false``:
    half_duplex); :func:`voicekit.profiles.read.expand_shorthand` expands it.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["half_duplex", "full_duplex"] = Field(
        "half_duplex", description="half_duplex: the mic is muted while the bot speaks; full_duplex: barge-in"
    )
    min_interruption_ms: int = Field(
        200, ge=0, le=5000, description="User speech must last this long to barge in (and to count as speech)"
    )
    end_of_speech_ms: int = Field(400, ge=50, le=10_000, description="VAD silence that ends user speech")
    detector: str | dict[str, Any] = Field(
        "silence",
        description="End-of-turn detector: silence (the STT's final ends the turn), smart_turn (an audio model "
        "judges each pause), or a plugin's; {use: NAME, option: value} passes options",
    )
    complete_wait_ms: int = Field(
        200, ge=0, le=5000, description="Silence after speech before the turn ends when the detector says complete"
    )
    incomplete_wait_ms: int = Field(
        1500, ge=0, le=10_000, description="Silence after speech before the turn ends when the detector says incomplete"
    )
    max_wait_ms: int = Field(
        3000, ge=0, le=20_000, description="Longest silence waited (a transcript ending on 'the', 'to', 'and' …)"
    )
    transcript_rules: bool = Field(
        True, description="A transcript ending on an article, preposition or conjunction is not the end of a turn"
    )
    preemptive: bool = Field(
        False, description="Start the reply at a pause on what was heard so far; it is heard only if the turn ends"
    )
    backchannels: dict[str, list[str]] | None = Field(
        None, description="Per language, words that do not interrupt the bot (default: uh-huh, yeah, mm; ага, угу, да)"
    )
    false_interruption_ms: int = Field(
        0, ge=0, le=10_000, description="The bot stopped by speech with no words within this long goes on (0: off)"
    )

    @field_validator("detector")
    @classmethod
    def _detector_named(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        name = value.get("use") if isinstance(value, dict) else value
        if not isinstance(name, str) or not name:
            raise ValueError("detector needs a name: detector: smart_turn, or detector: {use: smart_turn, ...}")
        return value

    @model_validator(mode="after")
    def _waits_in_order(self) -> TurnsConfig:
        if not self.complete_wait_ms <= self.incomplete_wait_ms <= self.max_wait_ms:
            raise ValueError(
                f"complete_wait_ms ({self.complete_wait_ms}) ≤ incomplete_wait_ms ({self.incomplete_wait_ms}) "
                f"≤ max_wait_ms ({self.max_wait_ms}) must hold"
            )
        return self

    @property
    def detector_name(self) -> str:
        return str(self.detector.get("use") if isinstance(self.detector, dict) else self.detector)

    @property
    def detector_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.detector.items() if k != "use"} if isinstance(self.detector, dict) else {}


class AudioConfig(BaseModel):
    """Audio handling around the backends: voice activity detection and the sink."""

    model_config = ConfigDict(extra="forbid")

    vad: Literal["webrtc", "silero", "none"] = Field("webrtc", description="Voice activity detector")
    vad_mode: int = Field(3, ge=0, le=3, description="webrtc aggressiveness, 0 (least) to 3 (most)")
    output_rate: int | None = Field(
        None, ge=8000, le=48_000, description="Sink sample rate in Hz; default: the output backend's rate"
    )


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


def redacted(profile_or_data: Profile | Mapping[str, Any]) -> dict[str, Any]:
    """A copy with secrets replaced by ``"***"``: values of keys such as ``api_key``,
    ``token``, ``secret`` or ``password``, values read from the environment, and the
    credentials inside URLs (a password in ``https://user:password@host``, a ``?key=``
    query parameter). Unresolved ``${NAME}`` placeholders are not secrets and are shown
    as they are."""
    if isinstance(profile_or_data, Profile):
        data: Any = profile_or_data.data
        from_env = profile_or_data._from_env
    else:
        data, from_env = profile_or_data, frozenset()

    def walk(value: Any, path: YPath, secret: bool) -> Any:
        if path in from_env:
            return "***"
        if isinstance(value, Mapping):
            return {k: walk(v, (*path, k), secret or is_secret_key(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i), secret) for i, v in enumerate(value)]
        if secret and value is not None and not has_placeholder(value):
            return "***"
        if isinstance(value, str) and "://" in value:
            return redact_url(value)  # https://user:password@host, ...?key=...
        return value

    return walk(data, (), False)  # type: ignore[no-any-return]
