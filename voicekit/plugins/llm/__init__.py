"""Built-in language-model backends (registered lazily)."""

from voicekit.hookspecs import Register, hookimpl


@hookimpl
def register_llm(register: Register) -> None:
    register("echo", "voicekit.plugins.llm.echo:EchoLLM")
    register("llamacpp", "voicekit.plugins.llm.llamacpp:LlamaCppLLM")
    register("gemini", "voicekit.plugins.llm.gemini:GeminiLLM")
    register("gemini_live", "voicekit.plugins.llm.gemini_live.backend:GeminiLiveLLM")
    register("openai", "voicekit.plugins.llm.openai:OpenAILLM")
    register("scripted", "voicekit.testing.scripted:ScriptedLLM")
