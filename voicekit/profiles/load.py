"""Load a profile: check a read document's structure and make a :class:`Profile` of it.

Structure is everything that needs no plugin: the top-level keys, each role section's
``use``, ``retry`` and ``fallback``, ``turns`` and ``audio``. Every problem is reported,
one line each, before anything is built. What the backends think of their options is
:mod:`voicekit.profiles.validate`'s job.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from voicekit.errors import ProfileError
from voicekit.options import RetryPolicy
from voicekit.profiles.document import Doc, YPath, dotted, model_problems, suggest
from voicekit.profiles.model import (
    TOP_LEVEL_KEYS,
    AudioConfig,
    BackendSpec,
    Profile,
    ProfileValidationError,
    TurnsConfig,
)
from voicekit.profiles.read import read_profile, substitute_secrets
from voicekit.roles import ROLES
from voicekit.tools.config import tool_problems

#: keys of a role section that the core reads itself: never backend options
CORE_KEYS = ("use", "retry", "fallback")


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
    path, doc = read_profile(name_or_path, overrides)
    if doc.data.get("abstract") is True:
        raise ProfileError(
            f"{doc.where(('abstract',))}: profile '{path.stem}' is abstract: use it from another profile "
            f"with extends: {path.stem}"
        )
    return profile_from(path, doc, os.environ if env is None else env, resolve_secrets)


def structure_problems(doc: Doc) -> list[str]:
    """Every structural problem of a read document, one line each (placeholders are not problems)."""
    _, _, placeholders = substitute_secrets(doc, None)
    return _structure_problems(doc, placeholders)


def profile_from(path: Path, doc: Doc, env: Mapping[str, str], resolve_secrets: bool) -> Profile:
    """The :class:`Profile` of a read document whose structure is checked here."""
    problems = structure_problems(doc)
    if problems:
        raise ProfileValidationError(problems)
    if resolve_secrets:
        data, from_env, placeholders = substitute_secrets(doc, env)
    else:
        data, from_env, placeholders = substitute_secrets(doc, None)

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
    problems += [f"{doc.where(path)}: {dotted(path)}: {message}" for path, message in tool_problems(data)]
    sections: tuple[tuple[str, type[BaseModel]], ...] = (("turns", TurnsConfig), ("audio", AudioConfig))
    for key, model in sections:
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
