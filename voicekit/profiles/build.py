"""Build backends from a profile: the last step of find → read → validate → build.

Top-level backends come from :func:`build_backend` and :func:`build_chain`; nested ones
(an avatar's voice, a voice that wraps another) from ``context.build(role, spec, key=...)``,
which lands in a :class:`SpecBuilder`. A :class:`SpecBuilder` is a
:class:`~voicekit.profiles.validate.SpecChecker` that also makes the backend, so building
checks exactly what ``voicekit profiles validate`` checks, nested specs and fallbacks
included, and an error names the file, line and path
(``output.tts.voise: unknown option (did you mean 'voice'?)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from voicekit.errors import ProfileError
from voicekit.profiles.document import YPath, dotted
from voicekit.profiles.load import CORE_KEYS
from voicekit.profiles.model import Profile, ProfileValidationError
from voicekit.profiles.validate import CheckedSpec, SpecChecker, fallback_problems

if TYPE_CHECKING:
    from voicekit.registry import Registry
    from voicekit.roles import Backend, BackendContext, Role

__all__ = ["CORE_KEYS", "SpecBuilder", "build_backend", "build_chain", "profile_builder", "standalone_builder"]


class SpecBuilder(SpecChecker):
    """Builds (does not start) backends from ``{"use": name, **options}`` specs found at a YAML path.

    The backend's context gets its place in the profile (``path``) and this builder, so the
    backends it nests are built, and checked, the same way.
    """

    def __call__(self, role: Role, spec: Mapping[str, Any], *, path: YPath, context: BackendContext) -> Backend:
        checked = self.check(role, spec, path, language=context.language)
        return self.make(checked, context)

    def make(self, checked: CheckedSpec, context: BackendContext) -> Backend:
        """The backend of a checked spec, with its own context."""
        if not checked.complete or checked.options is None:
            raise ProfileError(f"{self.at(checked.path)}: a secret is not resolved")
        child = dataclasses.replace(context, path=tuple(checked.path), builder=self)
        backend = checked.cls(checked.options, child)
        backend.name = checked.name
        return backend


def standalone_builder() -> SpecBuilder:
    """A builder for backends made in Python, outside any profile (the installed plugins)."""
    from voicekit.registry import load_registry

    return SpecBuilder(load_registry())


def profile_builder(profile: Profile, registry: Registry) -> SpecBuilder:
    """A builder whose messages point at the profile's files and lines."""
    return SpecBuilder(registry, profile._origins, hidden=profile._placeholders, secret=profile._from_env)


def build_backend(profile: Profile, role: str, registry: Registry, context: BackendContext | None = None) -> Backend:
    """Create the profile's backend for ``role`` (not started), its options validated.

    Its ``fallback:`` backends are checked too (not built), as ``voicekit profiles validate``
    checks them. The profile's ``language`` goes into the context unless the context has one.
    """
    return _build(profile, role, registry, context, fallbacks=False)[0]


def build_chain(
    profile: Profile, role: str, registry: Registry, context: BackendContext | None = None
) -> list[Backend]:
    """The profile's backend for ``role`` and its ``fallback:`` backends, in order (none started).

    Each gets the role's retry policy and its own place in the profile in its context.
    """
    return _build(profile, role, registry, context, fallbacks=True)


def _build(
    profile: Profile, role: str, registry: Registry, context: BackendContext | None, *, fallbacks: bool
) -> list[Backend]:
    spec = profile.spec(role)
    if spec is None:
        raise ProfileError(f"{profile.where(())}: {role}: profile '{profile.name}' has no {role} backend")
    unresolved = sorted((p for p in profile._placeholders if p[:1] == (role,)), key=str)
    if unresolved:
        raise ProfileError(
            f"{profile.where(unresolved[0])}: {dotted(unresolved[0])}: secret not resolved "
            f"(the profile was loaded with resolve_secrets=False)"
        )
    from voicekit.roles import BackendContext

    context = context or BackendContext()
    if context.language is None and profile.language:
        context = dataclasses.replace(context, language=profile.language)
    builder = profile_builder(profile, registry)
    checked, problems = [], []
    for item in spec.chain():
        try:
            checked.append(builder.check(role, item.as_dict(), item.path, language=context.language))
        except ProfileValidationError as exc:
            problems += exc.problems
    if role == "llm" and not problems:
        has_stt, has_output = profile.stt is not None, profile.output is not None
        problems += fallback_problems(checked, has_stt=has_stt, has_output=has_output, at=builder.at)
    if problems:
        raise ProfileValidationError(problems)
    items = spec.chain() if fallbacks else spec.chain()[:1]
    return [
        builder.make(item_checked, dataclasses.replace(context, retry=item.retry))
        for item, item_checked in zip(items, checked, strict=False)
    ]
