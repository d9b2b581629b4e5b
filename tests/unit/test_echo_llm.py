"""The echo loopback LLM, and the optional llama.cpp backend without its package."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import AsyncIterator

import pydantic
import pytest

from voicekit.errors import MissingExtraError
from voicekit.events import LLMDone, TextDelta
from voicekit.plugins.llm.echo import EchoLLM
from voicekit.plugins.llm.llamacpp import LlamaCppLLM
from voicekit.registry import load_registry
from voicekit.roles import BackendContext, Message
from voicekit.testing.contracts import LLMContract


class TestEchoContract(LLMContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[EchoLLM]:
        async with EchoLLM() as llm:
            yield llm


async def _reply(llm: EchoLLM, text: str) -> list[object]:
    return [event async for event in llm.respond([], text)]


async def test_repeats_the_user_word_by_word() -> None:
    events = await _reply(EchoLLM(), "what time is it?")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["You", " said:", " what", " time", " is", " it."]
    assert isinstance(events[-1], LLMDone) and events[-1].text == "You said: what time is it."


async def test_language_prefix_and_custom_prefix() -> None:
    russian = EchoLLM(context=BackendContext(language="ru"))
    done = (await _reply(russian, "привет"))[-1]
    assert isinstance(done, LLMDone) and done.text == "Вы сказали: привет."
    custom = EchoLLM(EchoLLM.Options(prefix="Echo: "))
    done = (await _reply(custom, "  hello world  "))[-1]
    assert isinstance(done, LLMDone) and done.text == "Echo: hello world."
    empty = (await _reply(EchoLLM(), "   "))[-1]
    assert isinstance(empty, LLMDone) and empty.text == "I did not hear anything."


async def test_history_does_not_change_the_reply() -> None:
    history = [Message("user", "hi"), Message("assistant", "You said: hi.", interrupted=True)]
    events = [e async for e in EchoLLM().respond(history, "good morning")]
    assert isinstance(events[-1], LLMDone) and events[-1].text == "You said: good morning."


async def test_token_delay() -> None:
    llm = EchoLLM(EchoLLM.Options(token_delay_ms=30))
    start = time.perf_counter()
    stamps = [e.t for e in await _reply(llm, "one two three") if isinstance(e, TextDelta)]
    assert len(stamps) == 5 and time.perf_counter() - start >= 0.15
    assert all(b - a >= 0.025 for a, b in itertools.pairwise(stamps))


def test_options_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        EchoLLM.Options(token_delay_ms=-1)
    with pytest.raises(pydantic.ValidationError):
        EchoLLM.Options(model="gpt")  # type: ignore[call-arg]


def test_registered_under_their_names() -> None:
    registry = load_registry()
    assert registry.backend_class("llm", "echo") is EchoLLM
    assert registry.backend_class("llm", "llamacpp") is LlamaCppLLM


# --- llama.cpp: optional, not installed here ----------------------------------------


async def test_llamacpp_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    llm = LlamaCppLLM(LlamaCppLLM.Options(model_path="/models/tiny.gguf"))
    with pytest.raises(MissingExtraError, match=r"llama-cpp-python.*pip install 'voicekit\[llamacpp\]'"):
        await llm.start()
    with pytest.raises(MissingExtraError):
        [e async for e in llm.respond([], "hello")]
    await llm.aclose()
    await llm.aclose()


def test_llamacpp_options() -> None:
    with pytest.raises(pydantic.ValidationError, match="model_path"):
        LlamaCppLLM.Options()  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        LlamaCppLLM.Options(model_path="m.gguf", temperature=3)
    with pytest.raises(pydantic.ValidationError):
        LlamaCppLLM.Options(model_path="m.gguf", n_ctx=16)
    with pytest.raises(pydantic.ValidationError):
        LlamaCppLLM.Options(model_path="m.gguf", gpu=True)  # type: ignore[call-arg]
    options = LlamaCppLLM.Options(model_path="m.gguf", system=None, max_tokens=64)
    assert options.max_tokens == 64 and options.chat_format is None
    undocumented = [name for name, f in LlamaCppLLM.Options.model_fields.items() if not f.description]
    assert undocumented == []


def test_llamacpp_chat_messages() -> None:
    llm = LlamaCppLLM(LlamaCppLLM.Options(model_path="m.gguf", system="Be brief."))
    history = [Message("user", "Tell me a story."), Message("assistant", "Once upon", interrupted=True)]
    assert llm.messages(history, "Stop.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a story."},
        {"role": "assistant", "content": "Once upon …"},
        {"role": "user", "content": "Stop."},
    ]
