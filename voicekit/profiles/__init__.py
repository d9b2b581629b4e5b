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
installed with voicekit (see :mod:`voicekit.profiles.files`). ``extends:`` merges
the profile over its parent (mappings merge, lists and scalars replace; a section
switching to another backend starts afresh).
``--set`` overrides (``stt.model=nova-2``) apply last. Secrets are written
``${NAME}`` or ``{$env: NAME}`` and read from the environment.

Every error names the file and line, the YAML path, the bad key or value and,
when one is close, the key that was probably meant.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from voicekit.errors import ProfileError, VoicekitError
from voicekit.options import RetryPolicy
from voicekit.profiles.build import CORE_KEYS, build_backend, build_chain
from voicekit.profiles.document import (
    ROLES,
    Doc,
    YPath,
    apply_override,
    dotted,
    has_placeholder,
    is_secret_key,
    model_problems,
    substitute_secrets,
    suggest,
)
from voicekit.profiles.files import ProfileInfo, find_profile, list_profiles, load_chain, profile_dirs
from voicekit.profiles.model import (
    TOP_LEVEL_KEYS,
    AudioConfig,
    BackendSpec,
    Profile,
    ProfileValidationError,
    TurnsConfig,
)

if TYPE_CHECKING:
    from voicekit.registry import Registry

__all__ = [
    "AudioConfig",
    "BackendSpec",
    "Profile",
    "ProfileInfo",
    "ProfileValidationError",
    "TurnsConfig",
    "build_backend",
    "build_chain",
    "check_profile",
    "find_profile",
    "list_profiles",
    "load_profile",
    "merged_document",
    "profile_dirs",
    "redacted",
    "validate_profile",
]


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
        else:
            problems += _section_problems(doc, role, section, (role,), hidden)
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


def _section_problems(doc: Doc, role: str, section: dict[str, Any], path: YPath, hidden: frozenset[YPath]) -> list[str]:
    """What is wrong with one backend section: its ``use``, ``retry`` and ``fallback`` keys."""
    problems = []
    at = dotted(path)
    if not isinstance(section.get("use"), str) or not section["use"].strip():
        problems.append(f"{doc.where(path)}: {at}.use: missing; name the {role} backend, e.g. use: <backend>")
    retry = section.get("retry")
    if retry is not None:
        if not isinstance(retry, dict):
            problems.append(f"{doc.where((*path, 'retry'))}: {at}.retry: expected a mapping like {{attempts: 3}}")
        else:
            try:
                RetryPolicy.model_validate(retry)
            except ValidationError as exc:
                problems += model_problems(exc, RetryPolicy, (*path, "retry"), doc.origins, noun="key", hidden=hidden)
    fallback = section.get("fallback")
    if fallback is not None:
        if len(path) > 1:
            problems.append(
                f"{doc.where((*path, 'fallback'))}: {at}.fallback: a fallback cannot have fallbacks of "
                "its own; list them all under the first one"
            )
        elif not isinstance(fallback, list):
            problems.append(
                f"{doc.where((*path, 'fallback'))}: {at}.fallback: expected a list of backends like [{{use: echo}}]"
            )
        else:
            for index, item in enumerate(fallback):
                item_path = (*path, "fallback", index)
                if not isinstance(item, dict):
                    problems.append(
                        f"{doc.where(item_path)}: {dotted(item_path)}: expected a mapping like {{use: <backend>, ...}}"
                    )
                else:
                    problems += _section_problems(doc, role, item, item_path, hidden)
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

    def section_spec(role: str, section: dict[str, Any], path: YPath, inherited: dict[str, Any]) -> BackendSpec:
        retry = {**inherited, **(section.get("retry") or {})}  # a fallback inherits the role's retry policy
        options = copy.deepcopy({k: v for k, v in section.items() if k not in CORE_KEYS})
        fallback = tuple(
            section_spec(role, item, (*path, "fallback", i), retry)
            for i, item in enumerate(section.get("fallback") or [])
        )
        return BackendSpec(
            role,
            section["use"].strip(),
            options,
            f"{doc.where(path)} ({dotted(path)})",
            retry=RetryPolicy.model_validate(retry),
            fallback=fallback,
            path=path,
        )

    def spec(role: str) -> BackendSpec | None:
        section = data.get(role)
        return None if section is None else section_spec(role, section, (role,), {})

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


def _same_language(wanted: str, offered: Sequence[str]) -> bool:
    def primary(code: str) -> str:
        return code.replace("_", "-").split("-")[0].lower()

    return not offered or any(primary(wanted) == primary(code) for code in offered)


def validate_profile(profile: Profile, registry: Registry) -> list[str]:
    """Every problem with the profile's backends, one line each; ``[]`` when it is fine.

    Checks that each backend exists and imports, that its options are valid, that a
    missing stt/output is covered by what the configured llm can do
    (:func:`voicekit.roles.missing_roles`, the rule the runner and engine use too), and
    the language.
    """
    from voicekit.profiles.build import profile_builder
    from voicekit.roles import missing_roles

    builder = profile_builder(profile, registry)
    problems: list[str] = []
    llm_caps = None
    for role in ROLES:
        spec = profile.spec(role)
        if spec is None:
            continue
        try:
            cls = builder.backend_class(role, spec.use, (role,))
            options = builder.options(cls, spec.use, spec.options, (role,))
        except ProfileValidationError as exc:
            problems += exc.problems
            continue
        except VoicekitError as exc:
            problems.append(str(exc))
            continue
        caps = cls.capabilities_for(options) if options is not None else cls.capabilities
        if role == "llm":
            llm_caps = caps
        language = spec.options.get("language", profile.language)
        if isinstance(language, str) and (role, "language") not in profile._placeholders:
            offered = caps.languages
            if not _same_language(language, offered):
                at = profile.where((role, "language") if "language" in spec.options else ("language",))
                problems.append(
                    f"{at}: {role} backend '{spec.use}' does not support language '{language}' "
                    f"(it offers {', '.join(offered)})"
                )
    if llm_caps is not None:
        for missing in missing_roles(
            profile.llm.use, llm_caps, has_stt=profile.stt is not None, has_output=profile.output is not None
        ):
            problems.append(f"{profile.where(())}: {missing}")
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
