"""Built-in speech-to-text backends (registered lazily: nothing heavy is imported here)."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_stt(register: Register) -> None:
    register("pocketsphinx", "voicekit.plugins.stt.pocketsphinx:PocketsphinxSTT")
    register("deepgram", "voicekit.plugins.stt.deepgram:DeepgramSTT")
    register("deepgram_flux", "voicekit.plugins.stt.deepgram_flux:DeepgramFluxSTT")
    register("google", "voicekit.plugins.stt.google:GoogleSTT")
    register("whisper", "voicekit.plugins.stt.whisper:WhisperSTT")
    register("scripted", "voicekit.testing.scripted:ScriptedSTT")
