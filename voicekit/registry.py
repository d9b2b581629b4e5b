"""Find plugins and the backends they register.

Built-in plugins and third-party ones (entry-point group ``voicekit``) go through
the same hooks. Each third-party plugin is loaded, and each hook implementation
called, in its own ``try``: a broken plugin is recorded in :attr:`Registry.broken`
and shown by ``voicekit plugins list``; it never takes the CLI down.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from voicekit import hookspecs
from voicekit.errors import PluginError, UnknownBackendError

if TYPE_CHECKING:
    from voicekit.roles import Backend, BackendContext

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "voicekit"
_HOOK_BY_ROLE = {"stt": "register_stt", "llm": "register_llm", "output": "register_output"}


def get_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh plugin manager with the built-ins and, unless told not to, installed plugins.

    Plugins that fail to import are listed in ``pm.voicekit_broken`` (name → error).
    """
    from voicekit.plugins import BUILTIN_PLUGINS

    pm = pluggy.PluginManager("voicekit")
    pm.add_hookspecs(hookspecs)
    broken: dict[str, str] = {}
    origins: dict[str, str] = {}  # plugin name -> the distribution that installed it
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if load_entry_points:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if pm.has_plugin(ep.name) or ep.name in broken:
                continue
            dist = getattr(ep, "dist", None)
            if dist is not None:
                origins[ep.name] = f"{dist.name} {dist.version}"
            try:
                pm.register(ep.load(), name=ep.name)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                broken[ep.name] = failure(exc)
                log.debug("plugin %s failed to load", ep.name, exc_info=True)
    pm.voicekit_broken = broken  # type: ignore[attr-defined]
    pm.voicekit_origins = origins  # type: ignore[attr-defined]
    return pm


def failure(exc: BaseException) -> str:
    """What a plugin did wrong, in one line (a ``sys.exit()`` while loading said as such)."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}) while loading"
    return f"{type(exc).__name__}: {exc}"


def plugin_label(pm: pluggy.PluginManager, plugin: object) -> str:
    name = pm.get_name(plugin) or repr(plugin)
    return "builtin" if name.startswith("voicekit.plugins") else name


@dataclass(frozen=True)
class BackendEntry:
    """One registered backend: which role, under what name, from which plugin."""

    role: str
    name: str
    target: Any  # a Backend subclass or a "module:Class" path
    plugin: str

    def load(self) -> type[Backend]:
        """The backend class (imports a lazily registered module now)."""
        if not isinstance(self.target, str):
            return self.target  # type: ignore[no-any-return]
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            cls = getattr(module, attr)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise PluginError(
                f"{self.role} backend '{self.name}' from plugin {self.plugin} failed to load: {failure(exc)}"
            ) from exc
        return cls  # type: ignore[no-any-return]


@dataclass
class Registry:
    """Every backend, remote-session manager and problem the plugins reported."""

    pm: pluggy.PluginManager
    backends: dict[str, dict[str, BackendEntry]] = field(default_factory=lambda: {r: {} for r in _roles()})
    session_managers: dict[str, BackendEntry] = field(default_factory=dict)
    turn_detectors: dict[str, BackendEntry] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], str] = field(default_factory=dict)

    def origin(self, plugin: str) -> str:
        """Where a plugin comes from: ``built in``, or the distribution (and version) that installed it."""
        if plugin == "builtin":
            return "built in"
        return str(getattr(self.pm, "voicekit_origins", {}).get(plugin, plugin))

    def names(self, role: str) -> list[str]:
        return sorted(self.backends[role])

    def entry(self, role: str, name: str) -> BackendEntry:
        if (role, name) in self.conflicts:
            raise PluginError(self.conflicts[(role, name)])
        try:
            return self.backends[role][name]
        except KeyError:
            known = self.names(role)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UnknownBackendError(
                f"unknown {role} backend '{name}'{hint}; known: {', '.join(known) or 'none'}"
            ) from None

    def turn_detector(self, name: str) -> BackendEntry:
        """The registered end-of-turn detector ``name`` (a clear error with a close match if none)."""
        if ("turn detector", name) in self.conflicts:
            raise PluginError(self.conflicts[("turn detector", name)])
        try:
            return self.turn_detectors[name]
        except KeyError:
            known = sorted(self.turn_detectors)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UnknownBackendError(
                f"unknown turn detector '{name}'{hint}; known: {', '.join(known) or 'none'}"
            ) from None

    def backend_class(self, role: str, name: str) -> type[Backend]:
        return self.entry(role, name).load()

    def create(
        self, role: str, name: str, options: dict[str, Any] | Any = None, context: BackendContext | None = None
    ) -> Backend:
        """Build a backend from raw options (validated by its ``Options`` model)."""
        cls = self.backend_class(role, name)
        if options is None or isinstance(options, dict):
            options = cls.Options.model_validate(options or {})
        backend = cls(options, context)
        backend.name = name
        return backend


def _roles() -> tuple[str, ...]:
    # voicekit.roles is imported here, not at the top: `voicekit --help` imports this module
    # when a plugin is installed, and must not pay for the asyncio and pydantic roles imports
    from voicekit.roles import ROLES

    return ROLES


def __getattr__(name: str) -> Any:
    if name == "ROLES":  # voicekit.registry.ROLES: the one in voicekit.roles
        return _roles()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    """Ask every plugin to register; isolate and record each failure."""
    pm = pm or get_plugin_manager()
    registry = Registry(pm=pm, broken=dict(getattr(pm, "voicekit_broken", {})))
    for role in _roles():
        _collect(pm, _HOOK_BY_ROLE[role], registry, registry.backends[role], role)
    _collect(pm, "register_session_managers", registry, registry.session_managers, "sessions")
    _collect(pm, "register_turn_detectors", registry, registry.turn_detectors, "turn detector")
    return registry


def _collect(
    pm: pluggy.PluginManager, hook_name: str, registry: Registry, into: dict[str, BackendEntry], role: str
) -> None:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        label = plugin_label(pm, impl.plugin)
        register = _make_register(role, label, into, registry)
        try:
            impl.function(*([register] if impl.argnames else []))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a broken third-party hook is reported, not raised
            registry.broken[label] = f"{hook_name}: {failure(exc)}"


def _make_register(
    role: str, plugin: str, into: dict[str, BackendEntry], registry: Registry
) -> Callable[[str, Any], None]:
    def register(name: str, target: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin} registered a {role} backend without a name")
        existing = into.get(name)
        if existing is not None and existing.plugin != plugin:
            registry.conflicts[(role, name)] = (
                f"{role} backend '{name}' is registered twice: by {existing.plugin} and by {plugin}; "
                f"uninstall one of them"
            )
            return
        into[name] = BackendEntry(role=role, name=name, target=target, plugin=plugin)

    return register
