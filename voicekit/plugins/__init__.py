"""Built-in plugins. Each is an ordinary voicekit plugin module, registered like a third party's."""

BUILTIN_PLUGINS = (
    "voicekit.plugins.stt",
    "voicekit.plugins.llm",
    "voicekit.plugins.output",
    "voicekit.tools.builtin",
    "voicekit.plugins.turn",
)


def third_party_plugins_installed() -> bool:
    """Whether any installed distribution declares a ``voicekit`` entry point.

    A quick look at the ``entry_points.txt`` files on ``sys.path``, much cheaper than
    ``importlib.metadata``: ``voicekit --help`` with no plugins installed skips the rest.
    """
    import os
    import sys

    for folder in sys.path:
        try:
            entries = os.scandir(folder or ".")
        except OSError:
            continue
        with entries:
            for entry in entries:
                if not entry.name.endswith((".dist-info", ".egg-info")):
                    continue
                try:
                    with open(os.path.join(entry.path, "entry_points.txt"), encoding="utf-8") as handle:
                        if "[voicekit]" in handle.read():
                            return True
                except OSError:
                    continue
    return False
