"""Validate a loaded profile against the installed backends: the checks ``chat`` makes too.

A :class:`SpecChecker` checks one backend spec (``{use: name, **options}`` at a YAML
path): the backend is registered and imports, its options are valid, the language is
one it offers, and every nested spec it holds (an option typed
:class:`voicekit.options.NestedBackend`) passes the same checks. The builder that makes
backends for a conversation (:mod:`voicekit.profiles.build`) is a :class:`SpecChecker`
too, so ``voicekit profiles validate`` passes exactly when ``voicekit chat`` gets past
its start-up. What a profile needs besides its LLM is :func:`voicekit.roles.missing_roles`,
for the LLM and each of its fallbacks.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from voicekit.errors import PluginError, UnknownBackendError, VoicekitError
from voicekit.options import NestedBackend
from voicekit.profiles.document import YPath, dotted, model_problems, where
from voicekit.profiles.load import CORE_KEYS, profile_from, structure_problems
from voicekit.profiles.model import Profile, ProfileValidationError
from voicekit.profiles.read import read_profile
from voicekit.roles import ROLES, Capabilities, missing_roles

if TYPE_CHECKING:
    from voicekit.registry import Registry
    from voicekit.roles import Backend


_MAX_DEPTH = 24  # nested backends in a path; deeper is a default that nests itself


@dataclass(frozen=True)
class CheckedSpec:
    """A backend spec that passed: its class, its options and what it can do with them."""

    role: str
    name: str
    cls: type[Backend]
    path: YPath
    options: BaseModel | None  # None: unresolved placeholders hid options that matter
    complete: bool  # the options hold every value of the spec (no placeholder left out)

    @property
    def capabilities(self) -> Capabilities | None:
        """``cls.capabilities_for(options)``; ``None`` when the options are not known."""
        return self.cls.capabilities_for(self.options) if self.options is not None else None


class SpecChecker:
    """Checks ``{"use": name, **options}`` specs found at YAML paths, with every problem on a line.

    ``origins`` maps YAML paths to ``file:line`` (a loaded profile's), so messages point at
    the line; without them messages name the path only (a backend built in Python).
    ``hidden`` are paths holding unresolved ``${NAME}`` placeholders (not problems);
    values at ``secret`` paths are never echoed.
    """

    def __init__(
        self,
        registry: Registry,
        origins: Mapping[YPath, str] | None = None,
        *,
        hidden: frozenset[YPath] = frozenset(),
        secret: frozenset[YPath] = frozenset(),
    ) -> None:
        self.registry = registry
        self.origins = dict(origins or {})
        self.hidden = hidden
        self.secret = secret

    def at(self, path: YPath) -> str:
        """How a message names ``path``: ``file:line: yaml.path``, or only the path outside a profile."""
        return f"{where(self.origins, path)}: {dotted(path)}" if self.origins else dotted(path)

    def backend_class(self, role: str, name: Any, path: YPath) -> type[Backend]:
        """The registered class for ``name``, or an error that names where it was asked for."""
        at = self.at((*path, "use"))
        if not isinstance(name, str) or not name.strip():
            raise ProfileValidationError([f"{at}: missing; name the {role} backend, e.g. use: <backend>"])
        try:
            entry = self.registry.entry(role, name.strip())
        except UnknownBackendError as exc:
            raise UnknownBackendError(f"{at}: {exc}") from None
        except PluginError as exc:
            raise PluginError(f"{at}: {exc}") from None
        try:
            return entry.load()
        except PluginError as exc:
            raise PluginError(f"{at}: not installed: {exc}") from None

    def options(self, cls: type[Backend], name: str, values: Mapping[str, Any], path: YPath) -> CheckedSpec:
        """``cls.Options`` from ``values``; raises :class:`ProfileValidationError` listing every problem."""
        model: type[BaseModel] | None = getattr(cls, "Options", None)
        if model is None:
            raise ProfileValidationError([f"{self.at(path)}: backend '{name}' defines no Options model"])
        hidden = frozenset(p for p in self.hidden if p[: len(path)] == path)
        try:
            return CheckedSpec(cls.role, name, cls, path, model.model_validate(dict(values)), complete=True)
        except ValidationError as exc:
            secret = frozenset(p for p in self.secret if p[: len(path)] == path)
            problems = model_problems(exc, model, path, self.origins, hidden=hidden, secret=secret)
            if problems:
                raise ProfileValidationError(problems) from None
        # Only placeholders stand in the way: what the other options say is still worth checking.
        placeholder_keys = {p[len(path)] for p in hidden if len(p) > len(path)}
        known = {key: value for key, value in values.items() if key not in placeholder_keys}
        try:
            options: BaseModel | None = model.model_validate(known)
        except ValidationError:
            options = None
        return CheckedSpec(cls.role, name, cls, path, options, complete=False)

    def check(self, role: str, spec: Any, path: YPath, *, language: str | None) -> CheckedSpec:
        """Check one spec and the specs nested in it; ``language`` is the default (the profile's)."""
        if not isinstance(spec, Mapping):
            raise ProfileValidationError([f"{self.at(path)}: expected a mapping like {{use: <backend>, ...}}"])
        if len(path) > _MAX_DEPTH:
            raise ProfileValidationError([f"{self.at(path)}: backends nested too deep (does a default nest itself?)"])
        name = spec.get("use")
        cls = self.backend_class(role, name, path)
        name = str(name).strip()
        problems = []
        values = {key: value for key, value in spec.items() if key not in CORE_KEYS}
        if _is_nested(path):
            for key in ("retry", "fallback"):
                if key in spec:
                    problems.append(
                        f"{self.at((*path, key))}: {key} is read in a profile's "
                        "stt, llm and output sections only, not in a nested backend"
                    )
        try:
            checked = self.options(cls, name, values, path)
        except ProfileValidationError as exc:
            raise ProfileValidationError([*problems, *exc.problems]) from None
        problems += self._language_problems(checked, values, language)
        problems += self._nested_problems(checked, language)
        if problems:
            raise ProfileValidationError(problems)
        return checked

    def _language_problems(self, checked: CheckedSpec, values: Mapping[str, Any], default: str | None) -> list[str]:
        key: YPath = (*checked.path, "language") if "language" in values else ("language",)
        language = values.get("language", default)
        caps = checked.capabilities
        if caps is None or not isinstance(language, str) or key in self.hidden:
            return []
        if _same_language(language, caps.languages):
            return []
        return [
            f"{self.at(key)}: {dotted(checked.path)} backend '{checked.name}' does not support language "
            f"'{language}' (it offers {', '.join(caps.languages)})"
        ]

    def _nested_problems(self, checked: CheckedSpec, language: str | None) -> list[str]:
        if checked.options is None:
            return []
        problems = []
        for attribute, (key, role) in nested_options(type(checked.options)).items():
            spec = getattr(checked.options, attribute)
            if spec is None:
                continue
            try:
                self.check(role, spec, (*checked.path, key), language=language)
            except ProfileValidationError as exc:
                problems += exc.problems
            except VoicekitError as exc:
                problems.append(str(exc))
        return problems


def nested_options(model: type[BaseModel]) -> dict[str, tuple[str, str]]:
    """The options of ``model`` that hold a nested backend: attribute → (profile key, role)."""
    found: dict[str, tuple[str, str]] = {}
    for attribute, info in model.model_fields.items():
        for marker in (*info.metadata, *_annotated_metadata(info.annotation)):
            if isinstance(marker, NestedBackend):
                found[attribute] = (info.alias if isinstance(info.alias, str) else attribute, marker.role)
    return found


def _annotated_metadata(annotation: Any) -> list[Any]:
    """Metadata of ``Annotated[...]`` found in ``annotation`` or its arguments (``X | None``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return list(annotation.__metadata__)
    return [meta for arg in typing.get_args(annotation) for meta in _annotated_metadata(arg)]


def _is_nested(path: YPath) -> bool:
    """Whether ``path`` is inside another backend's options, rather than a role section or a fallback."""
    return not (len(path) == 1 or (len(path) == 3 and path[1] == "fallback"))


def _same_language(wanted: str, offered: Sequence[str]) -> bool:
    def primary(code: str) -> str:
        return code.replace("_", "-").split("-")[0].lower()

    return not offered or any(primary(wanted) == primary(code) for code in offered)


# --- what a profile needs ------------------------------------------------------------------


def needs_problems(llm: CheckedSpec, *, has_stt: bool, has_output: bool, at: str) -> list[str]:
    """What the profile lacks for its LLM (:func:`voicekit.roles.missing_roles`), one line each."""
    caps = llm.capabilities
    if caps is None:
        return []
    return [f"{at}: {missing}" for missing in missing_roles(llm.name, caps, has_stt=has_stt, has_output=has_output)]


def fallback_problems(
    chain: Sequence[CheckedSpec], *, has_stt: bool, has_output: bool, at: Callable[[YPath], str]
) -> list[str]:
    """An LLM fallback takes the same input as the LLM it replaces, and needs no role that one does not.

    Both ``validate`` and the builder ask this, so a fallback that could not take over
    mid-conversation fails before the conversation starts.
    """
    if not chain or chain[0].capabilities is None:
        return []
    primary, primary_caps = chain[0], chain[0].capabilities
    needed = missing_roles(primary.name, primary_caps, has_stt=has_stt, has_output=has_output)
    primary_missing = {missing.role for missing in needed}
    problems = []
    for item in chain[1:]:
        caps = item.capabilities
        if caps is None:
            continue
        item_at = at(item.path)
        if caps.accepts_audio != primary_caps.accepts_audio:
            takes, does = ("takes", "does not") if caps.accepts_audio else ("does not take", "does")
            problems.append(
                f"{item_at}: llm '{item.name}' {takes} audio and llm '{primary.name}' {does}; a fallback must take "
                "the same input as the llm it replaces: switching between a speech-to-speech model and an "
                "stt -> llm cascade mid-conversation is not supported"
            )
            continue
        for missing in missing_roles(item.name, caps, has_stt=has_stt, has_output=has_output):
            if missing.role not in primary_missing:
                problems.append(f"{item_at}: {missing}")
    return problems


# --- the profile as a whole -------------------------------------------------------------------


def profile_checker(profile: Profile, registry: Registry) -> SpecChecker:
    """A checker whose messages point at the profile's files and lines."""
    return SpecChecker(registry, profile._origins, hidden=profile._placeholders, secret=profile._from_env)


def validate_profile(profile: Profile, registry: Registry) -> list[str]:
    """Every problem with the profile's backends, one line each; ``[]`` when it is fine.

    Each backend of each role and each of its fallbacks (and every backend nested in their
    options) exists, imports, has valid options and offers the language; the LLM and its
    fallbacks get what they need (:func:`voicekit.roles.missing_roles`, the rule the runner
    and engine use too); the voice activity detector and the end-of-turn detector can be made.
    """
    checker = profile_checker(profile, registry)
    problems: list[str] = []
    llm_chain: list[CheckedSpec] = []
    for role in ROLES:
        spec = profile.spec(role)
        if spec is None:
            continue
        for item in spec.chain():
            try:
                checked = checker.check(role, item.as_dict(), item.path, language=profile.language)
            except ProfileValidationError as exc:
                problems += exc.problems
                continue
            except VoicekitError as exc:
                problems.append(str(exc))
                continue
            if role == "llm":
                llm_chain.append(checked)
    has_stt, has_output = profile.stt is not None, profile.output is not None
    if llm_chain and llm_chain[0].path == ("llm",):
        problems += needs_problems(llm_chain[0], has_stt=has_stt, has_output=has_output, at=profile.where(()))
        problems += fallback_problems(llm_chain, has_stt=has_stt, has_output=has_output, at=checker.at)
    problems += _vad_problems(profile)
    problems += _tool_problems(profile, registry)
    problems += _turn_detector_problems(profile, registry)
    return problems


def _tool_problems(profile: Profile, registry: Registry) -> list[str]:
    """``tools: [{use: NAME}]`` entries that name no registered tool."""
    if not profile.data.get("tools"):
        return []
    from voicekit.tools.registry import load_tool_registry, unknown_tool_problems

    tools = load_tool_registry(getattr(registry, "pm", None))
    return [
        f"{profile.where(path)}: {'.'.join(str(p) for p in path)}: {message}"
        for path, message in unknown_tool_problems(profile.data, tools)
    ]


def _turn_detector_problems(profile: Profile, registry: Registry) -> list[str]:
    """The end-of-turn detector a voice conversation makes from ``turns.detector``, as the runner makes it."""
    from voicekit.engine.runner import make_turn_detector

    try:
        make_turn_detector(profile, registry)
    except VoicekitError as exc:
        return [str(exc)]
    return []


def _vad_problems(profile: Profile) -> list[str]:
    """The detector a voice conversation makes from ``audio.vad`` (its package may be missing)."""
    if profile.audio.vad == "none":
        return []
    from voicekit.audio.vad import create_vad

    try:
        create_vad(profile.audio.vad, mode=profile.audio.vad_mode)
    except VoicekitError as exc:
        return [f"{profile.where(('audio', 'vad'))}: audio.vad: {exc}"]
    return []


def check_profile(name_or_path: str | Path, registry: Registry, overrides: Sequence[str] = ()) -> list[str]:
    """Load without resolving secrets and validate: every problem, one line each.

    An abstract profile (``abstract: true``) is checked as far as it goes.
    """
    try:
        path, doc = read_profile(name_or_path, overrides)
        if doc.data.get("abstract") is True:
            return structure_problems(doc)
        profile = profile_from(path, doc, {}, resolve_secrets=False)
    except ProfileValidationError as exc:
        return exc.problems
    except VoicekitError as exc:
        return [str(exc)]
    return validate_profile(profile, registry)
