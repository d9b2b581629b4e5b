"""Build backends from a profile: the last step of find → read → validate → build.

Top-level backends come from :func:`build_backend`; nested ones (an avatar's voice, a
voice that wraps another) from ``context.build(role, spec, key=...)``, which lands in a
:class:`SpecBuilder` and goes through the same checks, so an error names the file,
line and nested path (``output.tts.voise: unknown option (did you mean 'voice'?)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from voicekit.errors import PluginError, ProfileError, UnknownBackendError
from voicekit.profiles.document import YPath, dotted, model_problems, where
from voicekit.profiles.model import Profile, ProfileValidationError

if TYPE_CHECKING:
    from voicekit.registry import Registry
    from voicekit.roles import Backend, BackendContext, Role

#: keys of a role section that the core reads itself: never backend options
CORE_KEYS = ("use", "retry", "fallback")


class SpecBuilder:
    """Builds backends from ``{"use": name, **options}`` specs found at a YAML path.

    ``origins`` maps YAML paths to ``file:line`` (a loaded profile's), so messages point at
    the line; without them messages name the path only (a backend built in Python).
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

    def where(self, path: YPath) -> str:
        return where(self.origins, path) if self.origins else dotted(path)

    def backend_class(self, role: str, name: Any, path: YPath) -> type[Backend]:
        """The registered class for ``name``, or an error that names where it was asked for."""
        at = f"{self.where((*path, 'use'))}: {dotted((*path, 'use'))}"
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

    def options(self, cls: type[Backend], name: str, options: Mapping[str, Any], path: YPath) -> BaseModel | None:
        """``cls.Options`` from ``options`` (``None`` if only unresolved placeholders stop it)."""
        model: type[BaseModel] | None = getattr(cls, "Options", None)
        if model is None:
            raise ProfileValidationError(
                [f"{self.where(path)}: {dotted(path)}: backend '{name}' defines no Options model"]
            )
        try:
            return model.model_validate(dict(options))
        except ValidationError as exc:
            hidden = frozenset(p for p in self.hidden if p[: len(path)] == path)
            secret = frozenset(p for p in self.secret if p[: len(path)] == path)
            problems = model_problems(exc, model, path, self.origins, hidden=hidden, secret=secret)
            if not problems:
                return None
            raise ProfileValidationError(problems) from None

    def __call__(self, role: Role, spec: Mapping[str, Any], *, path: YPath, context: BackendContext) -> Backend:
        if not isinstance(spec, Mapping):
            raise ProfileValidationError(
                [f"{self.where(path)}: {dotted(path)}: expected a mapping like {{use: <backend>, ...}}"]
            )
        name = spec.get("use")
        cls = self.backend_class(role, name, path)
        options = self.options(cls, str(name), {k: v for k, v in spec.items() if k not in CORE_KEYS}, path)
        if options is None:
            raise ProfileError(f"{self.where(path)}: {dotted(path)}: a secret is not resolved")
        child = dataclasses.replace(context, path=tuple(path), builder=self)
        backend = cls(options, child)
        backend.name = str(name).strip()
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

    The profile's ``language`` goes into the context unless the context has one.
    """
    return build_chain(profile, role, registry, context)[0]


def build_chain(
    profile: Profile, role: str, registry: Registry, context: BackendContext | None = None
) -> list[Backend]:
    """The profile's backend for ``role`` and its ``fallback:`` backends, in order (none started).

    Each gets the role's retry policy and its own place in the profile in its context.
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
    from voicekit.roles import BackendContext

    context = context or BackendContext()
    if context.language is None and profile.language:
        context = dataclasses.replace(context, language=profile.language)
    builder = profile_builder(profile, registry)
    backends = []
    for item in spec.chain():
        item_context = dataclasses.replace(context, retry=item.retry)
        backends.append(builder(role, {"use": item.use, **item.options}, path=item.path, context=item_context))  # type: ignore[arg-type]
    return backends
