"""Built-in plugins. Each is an ordinary voicekit plugin module, registered like a third party's."""

BUILTIN_PLUGINS = (
    "voicekit.plugins.stt",
    "voicekit.plugins.llm",
    "voicekit.plugins.output",
)
