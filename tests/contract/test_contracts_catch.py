"""The contract classes catch broken backends: each broken one fails exactly the test meant for it."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

BROKEN_BACKENDS = '''
import asyncio
from typing import ClassVar

import pytest
from pydantic import ConfigDict, Field

from voicekit.events import AudioOut, Final, LLMDone, SpeakingEnded, SpeakingStarted, SpeechStarted, TextDelta
from voicekit.options import BackendOptions
from voicekit.roles import LLM, STT, Capabilities, Output, STTStream
from voicekit.testing.contracts import LLMContract, OutputContract, STTContract
from voicekit.testing.scripted import ScriptedLLM, ScriptedOutput, ScriptedSTT


class Opts(BackendOptions):
    pass


class _Stream(STTStream):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    async def run(self):
        heard = False
        async for _ in self.audio():
            heard = True
        if self.kind == "two_finals" and heard:
            self.emit(Final(text="hello"))
            self.emit(Final(text="hello again"))
        elif self.kind == "final_on_empty":
            self.emit(Final(text="hello"))
        elif self.kind == "backwards" and heard:
            self.emit(SpeechStarted(t=10.0))
            self.emit(Final(text="hello", t=5.0))
        elif self.kind == "never_ends":
            await asyncio.Event().wait()


class BrokenSTT(STT):
    Options = Opts
    capabilities = Capabilities()
    kind = ""

    def stream(self, *, sample_rate=16000, language=None):
        return _Stream(self.kind)


def stt_class(kind):
    return type(f"STT_{kind}", (BrokenSTT,), {"kind": kind})


class STTBase(STTContract):
    timeout_s = 1.0
    kind = ""

    @pytest.fixture
    async def backend(self):
        async with stt_class(self.kind)() as stt:
            yield stt

    @pytest.fixture
    def speech(self):
        return ScriptedOutput(ScriptedOutput.Options(sample_rate=16000)).tone(4000), ("hello",)


class TestTwoFinals(STTBase):
    kind = "two_finals"


class TestFinalOnEmpty(STTBase):
    kind = "final_on_empty"


class TestBackwardsClock(STTBase):
    kind = "backwards"


class TestNeverEnds(STTBase):
    kind = "never_ends"


class TestWrongWords(STTContract):
    @pytest.fixture
    async def backend(self):
        async with ScriptedSTT(ScriptedSTT.Options(transcripts=["goodbye"])) as stt:
            yield stt

    @pytest.fixture
    def speech(self):
        return ScriptedOutput(ScriptedOutput.Options(sample_rate=16000)).tone(4000), ("hello",)


class LooseOptions(BackendOptions):
    model_config = ConfigDict(extra="allow")
    speed: float = 1.0  # no description either


class LooseLLM(ScriptedLLM):
    Options = LooseOptions

    def respond(self, history, user_text):
        async def gen():
            yield TextDelta(text="hi")
            yield LLMDone(text="hi")
        return gen()


class TestLooseOptions(LLMContract):
    @pytest.fixture
    async def backend(self):
        async with LooseLLM(LooseOptions()) as llm:
            yield llm


class BadDoneLLM(ScriptedLLM):
    def respond(self, history, user_text):
        async def gen():
            yield TextDelta(text="Hello ")
            yield TextDelta(text="world.")
            yield LLMDone(text="Hello")
        return gen()


class TestBadDone(LLMContract):
    @pytest.fixture
    async def backend(self):
        async with BadDoneLLM() as llm:
            yield llm


class DeafOutput(ScriptedOutput):
    """Ignores interrupt()."""

    async def interrupt(self):
        pass


class TestDeafOutput(OutputContract):
    @pytest.fixture
    async def backend(self):
        async with DeafOutput() as out:
            yield out


class WrongRateOutput(ScriptedOutput):
    def speak(self, sentences):
        async def gen():
            async for text in sentences:
                yield SpeakingStarted(text=text)
                yield AudioOut(pcm=bytes(321), sample_rate=16000)
                yield SpeakingEnded(text=text)
        return gen()


class TestWrongRate(OutputContract):
    @pytest.fixture
    async def backend(self):
        async with WrongRateOutput() as out:
            yield out


class TestForgotFixture(OutputContract):
    pass
'''

EXPECTED_FAILURES = {
    "TestTwoFinals": {"test_speech_gives_one_final"},
    "TestFinalOnEmpty": {"test_empty_input_gives_no_final"},
    "TestBackwardsClock": {"test_events_are_typed_and_in_order"},
    "TestNeverEnds": {
        "test_speech_gives_one_final",
        "test_events_are_typed_and_in_order",
        "test_empty_input_gives_no_final",
    },
    "TestWrongWords": {"test_speech_gives_one_final"},
    "TestLooseOptions": {"test_options_forbid_unknown_keys", "test_options_are_documented"},
    "TestBadDone": {
        "test_respond_streams_deltas_then_done",
        "test_history_accepted",
        "test_stop_reading_mid_stream",
        "test_cancel_mid_stream",
    },
    "TestDeafOutput": {"test_interrupt_mid_speak"},
    "TestWrongRate": {
        "test_speak_two_sentences",
        "test_sentences_arriving_slowly",
        "test_speak_after_interrupt",
        "test_interrupt_when_idle",
        "test_interrupt_mid_speak",
    },
}


def test_contracts_fail_broken_backends(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_broken=textwrap.dedent(BROKEN_BACKENDS))
    result = pytester.inline_run("-p", "no:cacheprovider")
    passed, _skipped, failed = result.listoutcomes()
    failures: dict[str, set[str]] = {}
    for report in failed:
        _file, cls, test = report.nodeid.split("::")
        failures.setdefault(cls, set()).add(test)
    forgot = failures.pop("TestForgotFixture")
    assert len(forgot) >= 10  # every test that needs a backend says the fixture is missing
    assert failures == EXPECTED_FAILURES
    assert len(passed) > 40  # and everything else about these backends passes
    message = next(str(r.longrepr) for r in failed if "TestForgotFixture" in r.nodeid)
    assert "define a `backend` fixture" in message
