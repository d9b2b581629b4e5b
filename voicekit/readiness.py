"""Whether a backend, or a whole profile, can start here: SDKs, keys and ``${NAME}`` variables.

One answer for every command that asks: ``voicekit doctor``, ``voicekit profiles validate``
and ``voicekit plugins list``/``show`` all call :func:`backend_readiness` and
:func:`profile_readiness`, so they never disagree. Nothing here imports a vendor SDK: an
SDK counts as importable when every distribution its backend's ``extra`` brings is
installed and its modules can be found.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.keys import lookup

if TYPE_CHECKING:
    from pydantic import BaseModel

    from voicekit.profiles.document import YPath
    from voicekit.registry import Registry
    from voicekit.roles import Backend

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_DIST_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class SdkStatus:
    """The vendor SDK a backend imports when it starts: ``extra`` and the distributions missing of it."""

    extra: str | None
    missing: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def pip(self) -> str | None:
        """The command that installs what is missing."""
        return f"pip install 'voicekit[{self.extra}]'" if self.extra and self.missing else None

    def __str__(self) -> str:
        if not self.extra:
            return "nothing to install"
        if self.ok:
            return f"installed (voicekit[{self.extra}])"
        return f"missing {', '.join(self.missing)}: {self.pip}"


@dataclass(frozen=True)
class KeyStatus:
    """The API key a backend reads: which variables it looks at and where the key was found."""

    variables: tuple[str, ...]  # in the order they are read; empty: the backend reads no key variable
    found: str | None = None  # the variable (or profile option) that holds it
    source: str | None = None  # environment, .env (PATH), key store (PATH), profile

    @property
    def needed(self) -> bool:
        return bool(self.variables)

    @property
    def ok(self) -> bool:
        return not self.variables or self.found is not None

    def __str__(self) -> str:
        if not self.variables:
            return "no key needed"
        if self.found is None:
            alternatives = f" (or {', '.join(self.variables[1:])})" if self.variables[1:] else ""
            return f"not set: set {self.variables[0]}{alternatives} or run 'voicekit keys set {self.variables[0]}'"
        return f"{self.found} from {self.source}"


@dataclass(frozen=True)
class BackendReadiness:
    """What stands between one configured backend and its ``start()``."""

    role: str
    name: str
    path: str  # where it is in the profile: stt, llm.fallback.0, output.tts; the role outside a profile
    sdk: SdkStatus
    key: KeyStatus

    @property
    def ok(self) -> bool:
        return self.sdk.ok and self.key.ok

    def problems(self) -> list[str]:
        """One line per thing that would stop the backend from starting."""
        lines = []
        if not self.sdk.ok:
            lines.append(f"{self.path}: backend '{self.name}' needs {', '.join(self.sdk.missing)}: {self.sdk.pip}")
        if not self.key.ok:
            lines.append(f"{self.path}: backend '{self.name}': no API key; {str(self.key).removeprefix('not set: ')}")
        return lines


# --- SDKs ---------------------------------------------------------------------------------


@functools.cache
def extra_distributions(extra: str) -> tuple[str, ...]:
    """The distributions voicekit's ``extra`` installs (read from voicekit's own metadata)."""
    try:
        requirements = importlib.metadata.requires("voicekit") or []
    except importlib.metadata.PackageNotFoundError:
        return ()
    names = []
    for requirement in requirements:
        marker = _EXTRA_MARKER.search(requirement)
        name = _DIST_NAME.match(requirement)
        if marker and name and marker.group(1) == extra and name.group(1).lower() != "voicekit":
            names.append(name.group(1))
    return tuple(names)


@functools.cache
def _modules_of() -> dict[str, list[str]]:
    by_dist: dict[str, list[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(_normal(dist), []).append(module)
    return by_dist


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_importable(name: str) -> bool:
    """Whether distribution ``name`` is installed and its top-level modules can be found."""
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    for module in _modules_of().get(_normal(name), []):
        if module.startswith("_") or module in ("tests", "test"):
            continue
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def sdk_status(cls: type[Backend]) -> SdkStatus:
    """Whether the SDK ``cls`` needs is installed: its ``sdk_distributions``, else its whole ``extra``."""
    extra = getattr(cls, "extra", None)
    if not extra:
        return SdkStatus(None)
    wanted = tuple(getattr(cls, "sdk_distributions", ()) or extra_distributions(extra))
    return SdkStatus(extra, tuple(name for name in wanted if not distribution_importable(name)))


# --- keys ---------------------------------------------------------------------------------


def key_status(cls: type[Backend], options: BaseModel | Mapping[str, Any] | None = None, *, at: str = "") -> KeyStatus:
    """Where ``cls`` (configured with ``options``) gets its API key, if it needs one."""
    variables = tuple(v for v in (getattr(cls, "api_key_env", None), *getattr(cls, "api_key_fallback_envs", ())) if v)
    if not variables:
        return KeyStatus(())
    option: Any = options.get("api_key") if isinstance(options, Mapping) else getattr(options, "api_key", None)
    value = option.get_secret_value() if hasattr(option, "get_secret_value") else option
    if value and "${" not in str(value):
        return KeyStatus(variables, f"{at or cls.role}.api_key", "profile")
    for name in variables:
        found = lookup(name)
        if found is not None:
            return KeyStatus(variables, name, found.source)
    return KeyStatus(variables)


def backend_readiness(
    cls: type[Backend], options: BaseModel | Mapping[str, Any] | None = None, *, name: str = "", path: str = ""
) -> BackendReadiness:
    """The readiness of one backend class, with the options a profile gives it (``None``: defaults)."""
    where = path or cls.role
    return BackendReadiness(
        cls.role,
        name or getattr(cls, "name", "") or cls.__name__,
        where,
        sdk_status(cls),
        key_status(cls, options, at=where),
    )


# --- profiles -------------------------------------------------------------------------------


@dataclass
class ProfileReadiness:
    """A profile checked for what would stop ``voicekit chat``: its own errors, then readiness."""

    name: str
    path: Path | None
    errors: list[str] = field(default_factory=list)  # what `profiles validate` always reported
    backends: list[BackendReadiness] = field(default_factory=list)
    missing_variables: list[str] = field(default_factory=list)  # ${NAME}s not set, one line each
    abstract: bool = False

    @property
    def warnings(self) -> list[str]:
        """Missing SDKs, keys and variables: they stop ``chat`` here, though the profile is valid."""
        return [line for b in self.backends for line in b.problems()] + self.missing_variables

    @property
    def ready(self) -> bool:
        return not self.errors and not self.warnings


def profile_readiness(name_or_path: str | Path, registry: Registry, overrides: Sequence[str] = ()) -> ProfileReadiness:
    """Validate a profile (:func:`voicekit.profiles.check_profile`) and find what it still lacks here."""
    import os

    from voicekit.errors import MissingSecretError, VoicekitError
    from voicekit.profiles import check_profile
    from voicekit.profiles.load import profile_from
    from voicekit.profiles.read import read_profile, substitute_secrets

    label = str(name_or_path)
    report = ProfileReadiness(label, None, errors=check_profile(name_or_path, registry, overrides))
    try:
        path, doc = read_profile(name_or_path, overrides)
    except VoicekitError:
        return report  # check_profile said why
    report.name, report.path = path.stem if label == str(path) else label, path
    if doc.data.get("abstract") is True:
        report.abstract = True
        return report
    try:
        substitute_secrets(doc, os.environ)
    except MissingSecretError as exc:
        report.missing_variables = str(exc).split("; ")
    except VoicekitError:
        pass
    try:
        profile = profile_from(path, doc, {}, resolve_secrets=False)
    except VoicekitError:
        return report
    for role, spec_path, values in _specs(profile):
        use = values.get("use")
        if not isinstance(use, str):
            continue
        try:
            cls = registry.backend_class(role, use.strip())
        except VoicekitError:
            continue  # an error check_profile reports
        where = ".".join(str(p) for p in spec_path)
        options = {k: v for k, v in values.items() if k not in ("use", "retry", "fallback")}
        report.backends.append(backend_readiness(cls, options, name=use.strip(), path=where))
        for nested_role, nested_path, nested in _nested_specs(cls, options, spec_path):
            try:
                nested_cls = registry.backend_class(nested_role, str(nested.get("use", "")).strip())
            except VoicekitError:
                continue
            nested_options = {k: v for k, v in nested.items() if k != "use"}
            report.backends.append(
                backend_readiness(
                    nested_cls,
                    nested_options,
                    name=str(nested["use"]).strip(),
                    path=".".join(str(p) for p in nested_path),
                )
            )
    return report


def _specs(profile: Any) -> list[tuple[str, YPath, dict[str, Any]]]:
    found = []
    for role in ("stt", "llm", "output"):
        spec = profile.spec(role)
        if spec is None:
            continue
        for item in spec.chain():
            found.append((role, item.path, item.as_dict()))
    return found


def _nested_specs(
    cls: type[Backend], options: Mapping[str, Any], path: YPath
) -> list[tuple[str, YPath, dict[str, Any]]]:
    """Backends held in options (an avatar's ``tts``): the profile's spec, or the option's default."""
    from voicekit.profiles.validate import nested_options

    model = getattr(cls, "Options", None)
    if model is None:
        return []
    found = []
    for attribute, (key, role) in nested_options(model).items():
        value: Any = options.get(key, options.get(attribute))
        if value is None:
            info = model.model_fields[attribute]
            value = info.default_factory() if info.default_factory is not None else info.default
        if isinstance(value, str):
            value = {"use": value}
        if isinstance(value, Mapping) and isinstance(value.get("use"), str):
            found.append((role, (*path, key), dict(value)))
    return found
