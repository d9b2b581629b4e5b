"""``Backend.list_models``: each cloud backend asks its service, with the vendor's SDK, against its fake."""

from __future__ import annotations

import pytest

from tests.fakes.deepgram import PROJECT_ID, FakeDeepgram
from tests.fakes.elevenlabs import DEFAULT_KEY as ELEVENLABS_KEY
from tests.fakes.elevenlabs import ElevenLabsFake
from tests.fakes.gemini_live import DEFAULT_KEY as LIVE_KEY
from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.gemini_rest import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_rest import GeminiFake
from tests.fakes.google_tts import FakeTTSServer
from voicekit.errors import AuthError
from voicekit.plugins.llm.echo import EchoLLM
from voicekit.plugins.llm.gemini import GeminiLLM
from voicekit.plugins.llm.gemini_live.backend import GeminiLiveLLM
from voicekit.plugins.output.chirp3 import Chirp3Output
from voicekit.plugins.output.elevenlabs import ElevenLabsOutput
from voicekit.plugins.stt.deepgram import DeepgramSTT
from voicekit.roles import BackendContext


async def test_deepgram_lists_the_models_of_the_keys_project() -> None:
    async with FakeDeepgram() as fake:
        backend = DeepgramSTT(DeepgramSTT.Options(base_url=fake.url, api_key=fake.api_key, model="nova-3"))
        models = await backend.list_models()
        assert fake.rest_requests == ["/v1/projects", f"/v1/projects/{PROJECT_ID}/models"]
        nova3 = next(m for m in models if m.id == "nova-3-general")
        assert nova3.answers_to("nova-3") and "ru" in nova3.languages and nova3.description.startswith("version ")
        assert any(m.answers_to(backend.chosen_model() or "") for m in models)
        assert not any(m.answers_to("nova-9") for m in models)
        refused = DeepgramSTT(DeepgramSTT.Options(base_url=fake.url, api_key="wrong"))
        with pytest.raises(AuthError, match=r"Deepgram rejected the API key \(HTTP 401\)"):
            await refused.list_models()


async def test_gemini_lists_generate_content_models_over_every_page() -> None:
    names = [f"gemini-test-{i}" for i in range(130)]  # more than one page of 100
    async with GeminiFake(models=names) as fake:
        backend = GeminiLLM(GeminiLLM.Options(base_url=fake.base_url, api_key=GEMINI_KEY, model="gemini-test-129"))
        models = await backend.list_models()
        assert [m.id for m in models] == names  # the Live model of the listing takes no generateContent
        assert [q.get("pageToken") for q in fake.list_requests] == [None, "100"]
        assert models[0].answers_to("models/gemini-test-0") and backend.chosen_model() == "gemini-test-129"
        with pytest.raises(AuthError, match="Gemini rejected the API key"):
            await GeminiLLM(GeminiLLM.Options(base_url=fake.base_url, api_key="wrong")).list_models()


async def test_gemini_live_lists_bidi_models() -> None:
    fake = FakeGeminiLive()
    await fake.start()
    try:
        options = GeminiLiveLLM.Options(base_url=fake.base_url, api_key=LIVE_KEY, ca_file=str(fake.cert_file))
        backend = GeminiLiveLLM(options)
        models = await backend.list_models()
        assert "gemini-3.8-live" in [m.id for m in models] and "gemini-3.8-flash" not in [m.id for m in models]
        assert backend.chosen_model() == "gemini-3.8-live"
        wrong = GeminiLiveLLM(
            GeminiLiveLLM.Options(base_url=fake.base_url, api_key="wrong", ca_file=str(fake.cert_file))
        )
        with pytest.raises(AuthError, match="Gemini rejected the API key"):
            await wrong.list_models()
    finally:
        await fake.stop()


async def test_elevenlabs_lists_voices() -> None:
    async with ElevenLabsFake(voices={"JBFqnCBsd6RMkjVDRZzb": "George", "abc": "Other"}) as fake:
        backend = ElevenLabsOutput(ElevenLabsOutput.Options(base_url=fake.base_url, api_key=ELEVENLABS_KEY))
        voices = await backend.list_models()
        assert [(v.id, v.name, v.kind) for v in voices] == [
            ("JBFqnCBsd6RMkjVDRZzb", "George", "voice"),
            ("abc", "Other", "voice"),
        ]
        assert voices[0].description == "premade: american, deep, middle aged, male"
        assert backend.chosen_model() == "JBFqnCBsd6RMkjVDRZzb"
        assert fake.http_requests[-1]["headers"]["xi-api-key"] == ELEVENLABS_KEY
        with pytest.raises(AuthError, match="ElevenLabs rejected the API key"):
            await ElevenLabsOutput(ElevenLabsOutput.Options(base_url=fake.base_url, api_key="wrong")).list_models()


async def test_chirp3_lists_the_voices_of_the_language() -> None:
    fake = FakeTTSServer(api_key="gcp-key")
    await fake.start()
    try:
        options = Chirp3Output.Options(base_url=fake.address, api_key="gcp-key")
        backend = Chirp3Output(options, BackendContext(language="ru"))
        voices = await backend.list_models()
        assert fake.list_requests == ["ru-RU"]
        assert [v.id for v in voices] == ["ru-RU-Chirp3-HD-Aoede", "ru-RU-Chirp3-HD-Charon", "ru-RU-Chirp3-HD-Kore"]
        assert voices[0].languages == ("ru-RU",) and voices[0].description == "female, 24000 Hz"
        assert backend.chosen_model() == "ru-RU-Chirp3-HD-Aoede"
        wrong = Chirp3Output(
            Chirp3Output.Options(base_url=fake.address, api_key="wrong"), BackendContext(language="ru")
        )
        with pytest.raises(AuthError, match="Google Cloud rejected the credentials"):
            await wrong.list_models()
    finally:
        await fake.stop()


async def test_a_backend_without_a_service_cannot_list() -> None:
    with pytest.raises(NotImplementedError, match="cannot list the models of its service"):
        await EchoLLM().list_models()
    assert EchoLLM().chosen_model() is None
