"""Backends that fail on command, the way third-party plugins fail: ``llm: {use: faulty, ...}``."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_llm(register: Register) -> None:
    register("faulty", "voicekit_faulty.backends:FaultyLLM")


@hookimpl
def register_output(register: Register) -> None:
    register("faulty", "voicekit_faulty.backends:FaultyOutput")
