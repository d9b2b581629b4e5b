"""Backends that fail on command, the way third-party plugins fail: ``llm: {use: faulty, ...}``."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_llm(register: Register) -> None:
    register("faulty", "voicekit_faulty.backends:FaultyLLM")
    register("faulty_live", "voicekit_faulty.backends:FaultyLiveLLM")


@hookimpl
def register_output(register: Register) -> None:
    register("faulty", "voicekit_faulty.backends:FaultyOutput")
