"""Retries and fallback in a running conversation: which backend answers, what the user hears,
what the history keeps, and the one line left when nothing is left to fall back to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from voicekit.audio.pcm import frame_bytes, silence, tone
from voicekit.audio.sinks import NullSink
from voicekit.engine.conversation import Conversation
from voicekit.engine.fallback import BackendChain, BackendFailure
from voicekit.errors import AuthError, BackendError
from voicekit.events import (
    AudioOut,
    BackendSwitched,
    Event,
    LLMDone,
    SpeakingEnded,
    SpeakingStarted,
    TextDelta,
    TurnMetrics,
)
from voicekit.options import BackendOptions, RetryPolicy
from voicekit.roles import LLM, STT, Message, Output, STTStream
from voicekit.testing.scripted import ScriptedLLM, ScriptedOutput, ScriptedSTT

FAST_RETRY = RetryPolicy.model_validate({"attempts": 3, "initial_ms": 1, "max_ms": 2})


class FlakyLLM(LLM):
    """Answers per a script: each call to respond() takes the next step.

    A step is a reply text, or an exception to raise before the first word, or
    ``(words, exception)``: the exception after those words.
    """

    Options = BackendOptions

    def __init__(self, name: str, steps: Sequence[Any], *, start_error: BaseException | None = None) -> None:
        super().__init__()
        self.name = name
        self.steps = list(steps)
        self.start_error = start_error
        self.calls: list[str] = []
        self.closed = 0

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error

    async def aclose(self) -> None:
        self.closed += 1

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[Any]:  # type: ignore[override]
        self.calls.append(user_text)
        step = self.steps.pop(0) if self.steps else f"{self.name} says hi."
        if isinstance(step, BaseException):
            raise step
        words, error = step if isinstance(step, tuple) else (step, None)
        text = ""
        for word in words.split(" "):
            piece = word if not text else " " + word
            text += piece
            yield TextDelta(piece)
            await asyncio.sleep(0)
        if error is not None:
            raise error
        yield LLMDone(text)


class BrokenVoice(Output):
    """Speaks ``good`` sentences, then fails in the middle of the next one."""

    Options = BackendOptions
    sample_rate = 16000

    def __init__(self, good: int, error: BaseException) -> None:
        super().__init__()
        self.name = "broken"
        self.good = good
        self.error = error
        self.heard: list[str] = []

    async def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[Any]:  # type: ignore[override]
        async for sentence in sentences:
            self.heard.append(sentence)
            yield SpeakingStarted(sentence)
            yield AudioOut(bytes(640), 16000)
            if len(self.heard) > self.good:
                raise self.error
            yield SpeakingEnded(sentence)


def voice() -> ScriptedOutput:
    out = ScriptedOutput(ScriptedOutput.Options(ms_per_char=1, sample_rate=16000))
    out.name = "scripted"
    return out


async def typed(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def converse(llm: Any, output: Any = None, *lines: str, **kw: Any) -> tuple[Conversation, list[Event]]:
    events: list[Event] = []
    conv = Conversation(
        llm=llm,
        output=output if output is not None else voice(),
        sink=NullSink(16000, realtime=False),
        text_input=typed(*lines),
        observers=[events.append],
        retry={"llm": FAST_RETRY, "output": FAST_RETRY},
        **kw,
    )
    await asyncio.wait_for(conv.run(), 10)
    return conv, events


def switched(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.role, e.failed, e.now_serving) for e in events if isinstance(e, BackendSwitched)]


async def test_auth_failure_falls_back_and_the_next_llm_answers_the_same_turn() -> None:
    primary = FlakyLLM("gemini", [AuthError("gemini rejected the API key; check GEMINI_API_KEY")])
    spare = FlakyLLM("echo", ["Spare answer."])
    conv, events = await converse([primary, spare], None, "hello")
    assert primary.calls == ["hello"], "an auth error is not retried"
    assert spare.calls == ["hello"]
    assert switched(events) == [("llm", "gemini", "echo")]
    reason = next(e.reason for e in events if isinstance(e, BackendSwitched))
    assert "GEMINI_API_KEY" in reason
    assert conv.history == [Message("user", "hello"), Message("assistant", "Spare answer.")]
    metrics = [e for e in events if isinstance(e, TurnMetrics)]
    assert ("llm", "echo") in metrics[0].backends, "the turn's metrics name the backend that served it"
    assert primary.closed >= 1, "the failed backend is closed"


async def test_retryable_failures_retry_the_same_backend_first() -> None:
    primary = FlakyLLM("gemini", [BackendError("503", retryable=True), BackendError("503", retryable=True), "Ok."])
    spare = FlakyLLM("echo", [])
    conv, events = await converse([primary, spare], None, "hello")
    assert primary.calls == ["hello"] * 3 and spare.calls == []
    assert switched(events) == []
    assert conv.history[-1] == Message("assistant", "Ok.")


async def test_retries_used_up_switch_to_the_fallback() -> None:
    primary = FlakyLLM("gemini", [BackendError("503", retryable=True)] * 3)
    spare = FlakyLLM("echo", ["Spare."])
    _, events = await converse([primary, spare], None, "hello")
    assert len(primary.calls) == 3 and spare.calls == ["hello"]
    assert switched(events) == [("llm", "gemini", "echo")]


async def test_the_fallback_keeps_serving_later_turns() -> None:
    primary = FlakyLLM("gemini", [AuthError("bad key")])
    spare = FlakyLLM("echo", ["One.", "Two."])
    conv, _ = await converse([primary, spare], None, "first", "second")
    assert primary.calls == ["first"] and spare.calls == ["first", "second"]
    assert [m.text for m in conv.history if m.role == "assistant"] == ["One.", "Two."]


async def test_llm_failing_mid_reply_is_answered_afresh_and_history_holds_the_new_reply() -> None:
    primary = FlakyLLM("gemini", [("Half of an answer. Then", BackendError("stream cut", retryable=False))])
    spare = FlakyLLM("echo", ["A whole answer."])
    conv, events = await converse([primary, spare], None, "hello")
    assert conv.history[-1] == Message("assistant", "A whole answer.")
    assert switched(events) == [("llm", "gemini", "echo")]


async def test_no_fallback_left_is_one_line_naming_the_backend() -> None:
    primary = FlakyLLM("gemini", [AuthError("gemini rejected the API key; check GEMINI_API_KEY")])
    with pytest.raises(AuthError, match=r"^gemini rejected the API key; check GEMINI_API_KEY$") as caught:
        await converse(primary, None, "hello")
    assert caught.value.exit_code == 3


async def test_a_plugin_bug_becomes_one_line_naming_the_plugin() -> None:
    primary = FlakyLLM("myplugin", [RuntimeError("list index out of range")])
    with pytest.raises(BackendFailure) as caught:
        await converse(primary, None, "hello")
    assert str(caught.value) == (
        "llm:myplugin failed: RuntimeError: list index out of range (run with -v for the traceback)"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)


async def test_a_backend_that_cannot_start_gives_way_to_the_next() -> None:
    primary = FlakyLLM("gemini", [], start_error=AuthError("gemini: no API key; set GEMINI_API_KEY"))
    spare = FlakyLLM("echo", ["Spare."])
    _, events = await converse([primary, spare], None, "hello")
    assert primary.calls == [] and spare.calls == ["hello"]
    assert switched(events) == [("llm", "gemini", "echo")]
    assert primary.closed == 1, "a backend that failed to start is still closed"


async def test_start_failure_without_fallback_is_the_error_itself() -> None:
    primary = FlakyLLM("gemini", [], start_error=AuthError("gemini: no API key; set GEMINI_API_KEY"))
    with pytest.raises(AuthError, match="GEMINI_API_KEY"):
        await converse(primary, None, "hello")
    assert primary.closed == 1


async def test_a_voice_failing_mid_reply_is_replaced_from_the_first_unfinished_sentence() -> None:
    llm = FlakyLLM("scripted", ["First sentence. Second sentence. Third sentence."])
    broken = BrokenVoice(good=1, error=BackendError("elevenlabs: socket closed", retryable=False))
    spare = voice()
    conv, events = await converse(llm, [broken, spare], "hello")
    assert broken.heard[:2] == ["First sentence.", "Second sentence."]
    assert switched(events) == [("output", "broken", "scripted")]
    assert spare.sentences == ["Second sentence.", "Third sentence."], "it picks up at the unfinished sentence"
    assert conv.history[-1].text == "First sentence. Second sentence. Third sentence."


class FlakySTTStream(STTStream):
    def __init__(self, owner: FlakySTT) -> None:
        super().__init__()
        self.owner = owner

    async def run(self) -> None:
        async for chunk in self.audio():
            self.owner.heard += chunk
            if self.owner.fail_after is not None and len(self.owner.heard) >= self.owner.fail_after:
                raise BackendError("deepgram: the socket dropped and reconnecting failed", retryable=True)


class FlakySTT(STT):
    Options = BackendOptions

    def __init__(self, fail_after: int | None) -> None:
        super().__init__()
        self.name = "deepgram"
        self.fail_after = fail_after
        self.heard = bytearray()

    def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> STTStream:
        return FlakySTTStream(self)


async def frames(pcm: bytes) -> AsyncIterator[bytes]:
    step = frame_bytes(16000, 20)
    for offset in range(0, len(pcm), step):
        yield pcm[offset : offset + step].ljust(step, b"\0")
        await asyncio.sleep(0)


async def test_a_failed_stt_hands_the_utterance_to_its_replacement() -> None:
    speech = tone(600, 16000, hz=300, amplitude=0.3)
    audio = silence(200, 16000) + speech + silence(800, 16000)
    failing = FlakySTT(fail_after=len(silence(200, 16000)) + len(speech) // 2)  # fails mid-utterance
    spare = ScriptedSTT(ScriptedSTT.Options(transcripts=["heard by the spare"], min_silence_ms=300))
    spare.name = "scripted"
    llm = ScriptedLLM(ScriptedLLM.Options(replies=["Yes."]))
    events: list[Event] = []
    conv = Conversation(
        stt=[failing, spare],
        llm=llm,
        output=voice(),
        sink=NullSink(16000, realtime=False),
        source=frames(audio),
        observers=[events.append],
        fast=True,
    )
    await asyncio.wait_for(conv.run(), 10)
    assert switched(events) == [("stt", "deepgram", "scripted")]
    assert conv.history[0] == Message("user", "heard by the spare"), "the utterance was heard again, not lost"


async def test_chain_without_backends_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BackendChain("llm", [])
