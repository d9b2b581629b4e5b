"""Old module paths, kept working after the layout changed.

``import voicekit.pipeline`` (say) still works: it gives the module's new home,
:mod:`voicekit.engine.conversation`, and warns once with a ``DeprecationWarning`` that
names it. A module whose contents were split between several new modules gives a module
holding the names of all of them. :func:`install` puts the finder on ``sys.meta_path``;
``voicekit/__init__`` calls it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module name → where it lives now (several modules: where its parts went)
MOVED: dict[str, str | tuple[str, ...]] = {
    "voicekit.pipeline": "voicekit.engine.conversation",
    "voicekit.runner": "voicekit.engine.runner",
    "voicekit.turns": "voicekit.engine.turns",
    "voicekit.realtime": "voicekit.engine.realtime",
    "voicekit.sentences": "voicekit.engine.sentences",
    "voicekit.metrics": "voicekit.engine.metrics",
    "voicekit.sessions": "voicekit.ledger",
    "voicekit.ledger_store": "voicekit.ledger.store",
    "voicekit.session_admin": "voicekit.ledger.admin",
    "voicekit.profile_files": ("voicekit.profiles.find", "voicekit.profiles.read"),
    "voicekit.profile_yaml": ("voicekit.profiles.document", "voicekit.profiles.read"),
}


class _MovedModuleFinder:
    """A meta path finder and loader (duck-typed: importlib.abc costs start-up time)."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)  # type: ignore[arg-type]  # a duck-typed Loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        if isinstance(new, str):
            warnings.warn(f"{spec.name} is deprecated: import {new}", DeprecationWarning, stacklevel=3)
            return importlib.import_module(new)
        warnings.warn(f"{spec.name} is deprecated: import {' or '.join(new)}", DeprecationWarning, stacklevel=3)
        module = ModuleType(spec.name, f"Deprecated: the names of {', '.join(new)}.")
        for name in reversed(new):  # the first module named wins a name both have
            vars(module).update(
                (k, v) for k, v in vars(importlib.import_module(name)).items() if not k.startswith("__")
            )
        return module

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module is already executed under its new name


def install() -> None:
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
