"""Profiles: YAML files that pick a backend for each role and set how turns work.

```yaml
extends: base                 # another profile, by name or relative path
language: ru
stt:    {use: deepgram, model: nova-3, endpointing_ms: 300}
llm:    {use: gemini, model: gemini-2.5-flash, api_key: ${GEMINI_API_KEY}}
output: {use: liveavatar}
turns:  {mode: full_duplex}
```

Profiles are found in ``./profiles``, then the user config directory
(``$VOICEKIT_CONFIG_DIR/profiles`` when that variable is set), then the ones
installed with voicekit (see :mod:`voicekit.profile_files`). ``extends:`` merges
the profile over its parent (mappings merge, lists and scalars replace; a section
switching to another backend starts afresh).
``--set`` overrides (``stt.model=nova-2``) apply last. Secrets are written
``${NAME}`` or ``{$env: NAME}`` and read from the environment.

Every error names the file and line, the YAML path, the bad key or value and,
when one is close, the key that was probably meant.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voicekit.errors import PluginError, ProfileError, UnknownBackendError, VoicekitError
from voicekit.profile_files import ProfileInfo, find_profile, list_profiles, load_chain, profile_dirs
from voicekit.profile_yaml import (
    ROLES,
    Doc,
    YPath,
    apply_override,
    dotted,
    has_placeholder,
    is_secret_key,
    model_problems,
    shown,
    substitute_secrets,
    suggest,
    where,
)

if TYPE_CHECKING:
    from voicekit.registry import Registry
    from voicekit.roles import Backend, BackendContext

__all__ = [
    "AudioConfig",
    "BackendSpec",
    "Profile",
    "ProfileInfo",
    "ProfileValidationError",
    "TurnsConfig",
    "build_backend",
    "check_profile",
    "find_profile",
    "list_profiles",
    "load_profile",
    "merged_document",
    "profile_dirs",
    "redacted",
    "validate_profile",
]

TOP_LEVEL_KEYS = ("description", "extends", "abstract", "language", "stt", "llm", "output", "turns", "audio")


class ProfileValidationError(ProfileError):
    """A profile with one or more problems; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class BackendSpec:
    """The backend a profile picks for one role, and its options."""

    role: str  # "stt" | "llm" | "output"
    use: str  # the backend's registered name
    options: dict[str, Any] = field(repr=False)  # everything but "use", secrets resolved
    location: str  # e.g. "profiles/heygen-ru.yaml:4 (stt)", for messages


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


def _prepare(name_or_path: str | Path, overrides: Sequence[str]) -> tuple[Path, Doc]:
    if isinstance(name_or_path, Path):
        path = name_or_path
        if not path.is_file():
            raise ProfileError(f"profile file not found: {path}")
    else:
        path = find_profile(name_or_path)
    doc = load_chain(path, [])
    for text in overrides:
        apply_override(doc, text)
    return path, doc


def merged_document(name_or_path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The merged document with overrides applied and secrets left as ``${NAME}``; not validated."""
    _, doc = _prepare(name_or_path, overrides)
    data, _, _ = substitute_secrets(doc, None)
    return data  # type: ignore[no-any-return]


def _structure_problems(doc: Doc, hidden: frozenset[YPath]) -> list[str]:
    data, problems = doc.data, []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"{doc.where((key,))}: {key}: unknown key{suggest(key, TOP_LEVEL_KEYS)}")
    for key in ("description", "language"):
        if data.get(key) is not None and not isinstance(data[key], str):
            hint = " (quote it if it is text)" if isinstance(data[key], bool) else ""
            problems.append(f"{doc.where((key,))}: {key}: expected text, got {data[key]!r}{hint}")
    if not isinstance(data.get("abstract", False), bool):
        problems.append(f"{doc.where(('abstract',))}: abstract: expected true or false")
    for role in ROLES:
        section = data.get(role)
        if section is None:
            if role == "llm" and data.get("abstract") is not True:
                problems.append(f"{doc.where(())}: llm: missing; every profile needs one, e.g. llm: {{use: echo}}")
        elif not isinstance(section, dict):
            problems.append(f"{doc.where((role,))}: {role}: expected a mapping like {{use: <backend>, ...}}")
        elif not isinstance(section.get("use"), str) or not section["use"].strip():
            problems.append(f"{doc.where((role,))}: {role}.use: missing; name the {role} backend, e.g. use: <backend>")
    for key, model in (("turns", TurnsConfig), ("audio", AudioConfig)):
        section = data.get(key)
        if section is not None and not isinstance(section, dict):
            problems.append(f"{doc.where((key,))}: {key}: expected a mapping")
            continue
        try:
            model.model_validate(section or {})
        except ValidationError as exc:
            problems += model_problems(exc, model, (key,), doc.origins, noun="key", hidden=hidden)
    return problems


def _check_document(doc: Doc) -> tuple[frozenset[YPath], list[str]]:
    _, _, placeholders = substitute_secrets(doc, None)
    return placeholders, _structure_problems(doc, placeholders)


def load_profile(
    name_or_path: str | Path,
    overrides: Sequence[str] = (),
    *,
    resolve_secrets: bool = True,
    env: Mapping[str, str] | None = None,
) -> Profile:
    """Find, merge, override, check and (unless told not to) resolve the secrets of a profile.

    Raises :class:`ProfileError` (:class:`ProfileValidationError` listing every
    problem) or :class:`~voicekit.errors.MissingSecretError`.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    path, doc = _prepare(name_or_path, overrides)
    if doc.data.get("abstract") is True:
        raise ProfileError(
            f"{doc.where(('abstract',))}: profile '{path.stem}' is abstract: use it from another profile "
            f"with extends: {path.stem}"
        )
    return _profile_from(path, doc, os.environ if env is None else env, resolve_secrets)


def _profile_from(path: Path, doc: Doc, env: Mapping[str, str], resolve_secrets: bool) -> Profile:
    placeholders, problems = _check_document(doc)
    if problems:
        raise ProfileValidationError(problems)
    if resolve_secrets:
        data, from_env, placeholders = substitute_secrets(doc, env)
    else:
        data, from_env, _ = substitute_secrets(doc, None)

    def spec(role: str) -> BackendSpec | None:
        section = data.get(role)
        if section is None:
            return None
        options = copy.deepcopy({k: v for k, v in section.items() if k != "use"})
        return BackendSpec(role, section["use"].strip(), options, f"{doc.where((role,))} ({role})")

    llm = spec("llm")
    assert llm is not None  # _structure_problems requires it
    return Profile(
        name=path.stem,
        path=path,
        description=data.get("description") or "",
        language=data.get("language"),
        stt=spec("stt"),
        llm=llm,
        output=spec("output"),
        turns=TurnsConfig.model_validate(data.get("turns") or {}),
        audio=AudioConfig.model_validate(data.get("audio") or {}),
        data=data,
        _origins=dict(doc.origins),
        _from_env=from_env,
        _placeholders=placeholders,
    )


# --- backends --------------------------------------------------------------------------


def _backend_class(profile: Profile, spec: BackendSpec, registry: Registry) -> type[Backend]:
    at = f"{profile.where((spec.role, 'use'))}: {spec.role}.use"
    try:
        entry = registry.entry(spec.role, spec.use)
    except UnknownBackendError as exc:
        raise UnknownBackendError(f"{at}: {exc}") from None
    except PluginError as exc:
        raise PluginError(f"{at}: {exc}") from None
    try:
        return entry.load()
    except PluginError as exc:
        raise PluginError(f"{at}: not installed: {exc}") from None


def _options(profile: Profile, spec: BackendSpec, cls: type[Backend]) -> BaseModel | None:
    """The backend's ``Options`` built from the spec (None if only placeholders stop it), or every problem."""
    model: type[BaseModel] | None = getattr(cls, "Options", None)
    if model is None:
        at = profile.where((spec.role, "use"))
        raise ProfileValidationError([f"{at}: {spec.role}.use: backend '{spec.use}' defines no Options model"])
    try:
        return model.model_validate(spec.options)
    except ValidationError as exc:
        role: YPath = (spec.role,)
        hidden = frozenset(p for p in profile._placeholders if p[:1] == role)
        secret = frozenset(p for p in profile._from_env if p[:1] == role)
        problems = model_problems(exc, model, role, profile._origins, hidden=hidden, secret=secret)
        if not problems:  # every error was about an unresolved placeholder
            return None
        raise ProfileValidationError(problems) from None


def build_backend(profile: Profile, role: str, registry: Registry, context: BackendContext | None = None) -> Backend:
    """Create the profile's backend for ``role`` (not started), its options validated.

    The profile's ``language`` goes into the context unless the context has one.
    """
    spec = profile.spec(role)
    if spec is None:
        raise ProfileError(f"{profile.where(())}: {role}: profile '{profile.name}' has no {role} backend")
    unresolved = sorted((p for p in profile._placeholders if p[:1] == (role,)), key=str)
    if unresolved:
        raise ProfileError(
            f"{profile.where(unresolved[0])}: {dotted(unresolved[0])}: secret not resolved "
            f"(the profile was loaded with resolve_secrets=False)"
        )
    cls = _backend_class(profile, spec, registry)
    options = _options(profile, spec, cls)
    assert options is not None  # only placeholders make it None, and there are none
    from voicekit.roles import BackendContext

    context = context or BackendContext()
    if context.language is None and profile.language:
        context = dataclasses.replace(context, language=profile.language)
    return registry.create(role, spec.use, options, context)


def _same_language(wanted: str, offered: Sequence[str]) -> bool:
    def primary(code: str) -> str:
        return code.replace("_", "-").split("-")[0].lower()

    return not offered or any(primary(wanted) == primary(code) for code in offered)


def validate_profile(profile: Profile, registry: Registry) -> list[str]:
    """Every problem with the profile's backends, one line each; ``[]`` when it is fine.

    Checks that each backend exists and imports, that its options are valid, that a
    missing stt/output is covered by an audio-in/audio-out llm, and the language.
    """
    problems: list[str] = []
    classes: dict[str, type[Backend]] = {}
    for role in ROLES:
        spec = profile.spec(role)
        if spec is None:
            continue
        try:
            cls = _backend_class(profile, spec, registry)
        except VoicekitError as exc:
            problems.append(str(exc))
            continue
        classes[role] = cls
        try:
            _options(profile, spec, cls)
        except ProfileValidationError as exc:
            problems += exc.problems
        language = spec.options.get("language", profile.language)
        if isinstance(language, str) and (role, "language") not in profile._placeholders:
            offered = cls.capabilities.languages
            if not _same_language(language, offered):
                at = profile.where((role, "language") if "language" in spec.options else ("language",))
                problems.append(
                    f"{at}: {role} backend '{spec.use}' does not support language '{language}' "
                    f"(it offers {', '.join(offered)})"
                )
    llm = classes.get("llm")
    if llm is not None:
        if profile.stt is None and not llm.capabilities.accepts_audio:
            problems.append(
                f"{profile.where(())}: stt: missing, and llm '{profile.llm.use}' does not take audio; "
                f"add stt: {{use: ...}}"
            )
        if profile.output is None and not llm.capabilities.produces_audio:
            problems.append(
                f"{profile.where(())}: output: missing, and llm '{profile.llm.use}' does not speak; "
                f"add output: {{use: ...}}"
            )
    return problems


def check_profile(name_or_path: str | Path, registry: Registry, overrides: Sequence[str] = ()) -> list[str]:
    """Load without resolving secrets and validate: every problem, one line each.

    An abstract profile (``abstract: true``) is checked as far as it goes.
    """
    try:
        path, doc = _prepare(name_or_path, overrides)
        if doc.data.get("abstract") is True:
            return _check_document(doc)[1]
        profile = _profile_from(path, doc, {}, resolve_secrets=False)
    except ProfileValidationError as exc:
        return exc.problems
    except VoicekitError as exc:
        return [str(exc)]
    return validate_profile(profile, registry)


def redacted(profile_or_data: Profile | Mapping[str, Any]) -> dict[str, Any]:
    """A copy with secrets replaced by ``"***"``: values of keys such as ``api_key``,
    ``token``, ``secret`` or ``password``, and values read from the environment.
    Unresolved ``${NAME}`` placeholders are not secrets and are shown as they are."""
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
        return value

    return walk(data, (), False)  # type: ignore[no-any-return]
