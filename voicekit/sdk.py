"""Import optional vendor SDKs on first use, with a message that says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from voicekit.errors import MissingExtraError


def import_sdk(module: str, *, package: str, extra: str, backend: str | None = None) -> ModuleType:
    """Import a vendor SDK module, or raise :class:`MissingExtraError` naming the pip extra.

    Backends call this inside ``start()`` (never at module level), so ``voicekit --help``
    and ``voicekit plugins list`` stay fast whatever is installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name and not module.startswith(exc.name) and not exc.name.startswith(module.split(".")[0]):
            raise  # a broken install of something else: show it as it is
        raise MissingExtraError(package, extra, backend) from exc
