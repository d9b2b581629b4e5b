"""Built-in output backends: voices and avatars (registered lazily)."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_output(register: Register) -> None:
    register("espeak", "voicekit.plugins.output.espeak:EspeakOutput")
    register("piper", "voicekit.plugins.output.piper:PiperOutput")
    register("elevenlabs", "voicekit.plugins.output.elevenlabs:ElevenLabsOutput")
    register("chirp3", "voicekit.plugins.output.chirp3:Chirp3Output")
    register("heygen", "voicekit.plugins.output.avatar.heygen:HeyGenOutput")
    register("liveavatar", "voicekit.plugins.output.avatar.liveavatar:LiveAvatarOutput")
    register("silent", "voicekit.testing.scripted:NullOutput")
    register("scripted", "voicekit.testing.scripted:ScriptedOutput")


@hookimpl
def register_session_managers(register: Register) -> None:
    register("heygen", "voicekit.plugins.output.avatar.heygen:HeyGenSessionManager")
    register("liveavatar", "voicekit.plugins.output.avatar.liveavatar:LiveAvatarSessionManager")
