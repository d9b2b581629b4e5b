"""Built-in end-of-turn detectors (registered lazily: nothing heavy is imported here)."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_turn_detectors(register: Register) -> None:
    register("silence", "voicekit.engine.end_of_turn:SilenceDetector")
    register("smart_turn", "voicekit.plugins.turn.smart_turn:SmartTurnDetector")
