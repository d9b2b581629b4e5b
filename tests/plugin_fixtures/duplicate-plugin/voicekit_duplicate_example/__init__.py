"""A plugin whose backend names clash with the example plugin's and with a built-in's."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_output(register: Register) -> None:
    register("beep", "voicekit_duplicate_example:Nothing")


@hookimpl
def register_llm(register: Register) -> None:
    register("echo", "voicekit_duplicate_example:Nothing")
