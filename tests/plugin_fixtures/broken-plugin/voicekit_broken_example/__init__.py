"""A plugin that cannot be imported: voicekit must report it and carry on."""

raise RuntimeError("voicekit_broken_example is broken on purpose")
