"""The STT and LLM contracts fail backends that are wrong in the ways real backends have been wrong, each with a
message that names the event and what was expected.

Every broken backend below is correct but for one mistake (most are a scripted backend with
one method changed); ``EXPECTED`` says which contract tests it fails and what each failure
says. :func:`run_cases` runs the cases with pytester, so they are named ``...Case``, not
``Test...``; ``test_contracts_catch_output`` uses it for the outputs.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict

from voicekit.errors import BackendError
from voicekit.events import Final, Interim, LLMDone, LLMEvent, TextDelta
from voicekit.roles import Capabilities, Message
from voicekit.testing.contracts import LLMContract, STTContract
from voicekit.testing.scripted import ScriptedLLM, ScriptedLLMOptions, ScriptedOutput, ScriptedSTT, ScriptedSTTStream

pytest_plugins = ["pytester"]


def fails(tests: str, pattern: str) -> dict[str, str]:
    """``{"test_<name>": pattern}`` for each name in ``tests`` (names without ``test_``, space-separated)."""
    return {f"test_{name}": pattern for name in tests.split()}


def run_cases(
    pytester: pytest.Pytester, module: str, cases: dict[str, type], expected: dict[str, dict[str, str]]
) -> None:
    """Run every contract case of ``cases`` (a dict in ``module`` named ``CASES``) and check that each fails
    exactly the tests in ``expected``, with a message (the first line of the failure) matching each pattern."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    names = {f"Test{name.removesuffix('Case')}": name for name in cases}
    lines = [f"from {module} import CASES", *(f"{test} = CASES[{name!r}]" for test, name in names.items())]
    pytester.makepyfile(test_broken="\n".join(lines) + "\n")
    result = pytester.inline_run("-p", "no:cacheprovider")
    passed, skipped, failed = result.listoutcomes()
    messages: dict[str, dict[str, str]] = {}
    for report in failed:
        _file, cls, test = report.nodeid.split("::")
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)
        messages.setdefault(names[cls], {})[test] = message
        assert "\\x00" not in str(report.longrepr), f"{cls}.{test} shows raw PCM:\n{report.longrepr}"
    assert {case: set(tests) for case, tests in messages.items()} == {
        case: set(tests) for case, tests in expected.items()
    }, "\n".join(f"{case}.{test}: {message}" for case, tests in messages.items() for test, message in tests.items())
    for case, tests in expected.items():
        for test, pattern in tests.items():
            message = messages[case][test]
            assert re.search(pattern, message, flags=re.S), f"{case}.{test}:\n{message}\ndoes not match\n{pattern}"
    total = sum(len([n for n in dir(case) if n.startswith("test_")]) for case in cases.values())
    assert len(passed) == total - len(failed) and not skipped  # every other test of every case passes


# --- STT --------------------------------------------------------------------------------


def tone(ms: int) -> bytes:
    return ScriptedOutput(ScriptedOutput.Options(sample_rate=16000)).tone(16 * ms)


class SpeechCase(STTContract):
    """The scripted recognizer passes every test: the broken ones below differ from it in one thing."""

    timeout_s = 1.0
    stream_class: type[ScriptedSTTStream] = ScriptedSTTStream
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedSTT]:
        stream_class = self.stream_class

        class Recognizer(ScriptedSTT):
            def stream(self, *, sample_rate: int = 16000, language: str | None = None) -> ScriptedSTTStream:
                return stream_class(self, sample_rate, language)

        async with Recognizer(ScriptedSTT.Options(**{"transcripts": ["hello world"], **self.options})) as stt:
            yield stt

    @pytest.fixture
    def speech(self) -> tuple[bytes, Sequence[str]]:
        return bytes(6400) + tone(500) + bytes(6400), ("hello",)


class TwoFinals(ScriptedSTTStream):
    """Sends each Final twice."""

    def emit(self, event: Any) -> None:
        super().emit(event)
        if isinstance(event, Final):
            super().emit(Final(text=event.text + " again"))


class FinalWithoutSpeech(ScriptedSTTStream):
    """Makes up a Final at end_input() when it heard no speech."""

    async def run(self) -> None:
        await super().run()
        if self._carry == b"" and not self._owner._turn:
            self.emit(Final(text="hello"))


class EmptyFinalForSilence(ScriptedSTTStream):
    """Says Final('') for audio in which it heard nothing."""

    heard = False

    def push_audio(self, pcm: bytes) -> None:
        self.heard = self.heard or bool(pcm)
        super().push_audio(pcm)

    async def run(self) -> None:
        await super().run()
        if self.heard and not self._owner._turn:
            self.emit(Final(text=""))


class BackwardsClock(ScriptedSTTStream):
    """Stamps its Final before its SpeechStarted."""

    def emit(self, event: Any) -> None:
        super().emit(Final(text=event.text, t=event.t - 5.0) if isinstance(event, Final) else event)


class LateInterim(ScriptedSTTStream):
    """Repeats the transcript as an Interim after the Final."""

    def emit(self, event: Any) -> None:
        super().emit(event)
        if isinstance(event, Final):
            super().emit(Interim(text=event.text))


class FinalOnlyAtEnd(ScriptedSTTStream):
    """Holds every Final back until end_input(), like a batch recognizer."""

    held: list[Any]

    def emit(self, event: Any) -> None:
        if isinstance(event, Final) and not self._input_ended:
            self.held = [*getattr(self, "held", []), event]
        else:
            super().emit(event)

    async def run(self) -> None:
        await super().run()
        for event in getattr(self, "held", []):
            super().emit(event)


class NeverEnds(ScriptedSTTStream):
    """Keeps the stream open after end_input()."""

    async def run(self) -> None:
        await super().run()
        await asyncio.sleep(3)


class StubbornClose(ScriptedSTTStream):
    """Waits for the service's last words when it is closed, however long they take."""

    async def run(self) -> None:
        try:
            await super().run()
        except asyncio.CancelledError:
            await asyncio.sleep(2)
            raise


class WrongWordsCase(SpeechCase):
    """Hears something else."""

    options: ClassVar[dict[str, Any]] = {"transcripts": ["goodbye"]}


class Only8kSTT(ScriptedSTT):
    capabilities = Capabilities(sample_rates=(8000,))


class Only8kCase(SpeechCase):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedSTT]:
        async with Only8kSTT(ScriptedSTT.Options(transcripts=["hello"])) as stt:
            yield stt


class ZeroRateSTT(ScriptedSTT):
    capabilities = Capabilities(sample_rates=(16000, 0), languages=("en", ""))


class ZeroRateCase(SpeechCase):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedSTT]:
        async with ZeroRateSTT(ScriptedSTT.Options(transcripts=["hello"])) as stt:
            yield stt


class NoInterimsDeclared(ScriptedSTT):
    capabilities = Capabilities(interim_results=False)


class UndeclaredInterimCase(SpeechCase):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedSTT]:
        async with NoInterimsDeclared(ScriptedSTT.Options(transcripts=["hello"], interim=True)) as stt:
            yield stt


def stt_case(stream_class: type[ScriptedSTTStream]) -> type[SpeechCase]:
    return type(f"{stream_class.__name__}Case", (SpeechCase,), {"stream_class": stream_class, "__module__": __name__})


# --- LLM --------------------------------------------------------------------------------


class Model(ScriptedLLM):
    """The scripted model, with the pace of its deltas as a class attribute."""

    token_ms: ClassVar[float] = 20.0


class SlowModel(Model):
    """Slow enough between deltas that a cancellation lands in the middle of a reply, however busy the machine."""

    token_ms = 150.0


class ReplyCase(LLMContract):
    """The scripted model passes every test: the broken ones below differ from it in one thing."""

    timeout_s = 2.0
    model: type[Model] = Model

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedLLM]:
        options = self.model.Options(replies=["Hello there, friend."], token_ms=self.model.token_ms)
        async with self.model(options) as llm:
            yield llm


class LooseOptions(ScriptedLLMOptions):
    """Takes unknown keys, and has an option without a description."""

    model_config = ConfigDict(extra="allow")
    speed: float = 1.0


class LooseLLM(Model):
    Options = LooseOptions


class LooseCase(ReplyCase):
    model = LooseLLM


class BadDone(Model):
    """Puts only the first delta in LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield LLMDone(text=reply.split()[0]) if isinstance(event, LLMDone) else event


class NoDone(Model):
    """Forgets LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            if isinstance(event, TextDelta):
                yield event


class DeltaAfterDone(Model):
    """Sends a last delta after LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield event
        yield TextDelta(text=" Bye.")


class WallClockLLM(Model):
    """Stamps its deltas with time.time()."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield TextDelta(text=event.text, t=time.time()) if isinstance(event, TextDelta) else event


class DoneOnCancel(SlowModel):
    """Catches the cancellation and ends the reply with LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        said = ""
        try:
            async for event in super()._stream(start, reply):
                said += event.text if isinstance(event, TextDelta) else ""
                yield event
        except asyncio.CancelledError:
            yield LLMDone(text=said)


class GoesOnAfterCancel(SlowModel):
    """Catches the cancellation and writes the rest of the reply anyway."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        words = reply.split(" ")
        for i, word in enumerate(words):
            try:
                await asyncio.sleep(self.token_ms / 1000)
            except asyncio.CancelledError:
                pass
            yield TextDelta(text=word + (" " if i < len(words) - 1 else ""))
        yield LLMDone(text=reply)


class HangsOnCancel(SlowModel):
    """Catches the cancellation and waits for the service to finish, far longer than the contract waits."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except asyncio.CancelledError:
            await asyncio.sleep(5)
            raise


class ErrorOnCancel(SlowModel):
    """Turns the cancellation into an error of its own."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except asyncio.CancelledError:
            raise BackendError("the request was aborted") from None


class Closing(Model):
    """Base of models that close their client at the wrong moment."""

    closed = False

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        if self.closed:
            raise RuntimeError("the client is closed")
        return super().respond(history, user_text)


class ClosesAfterReply(Closing):
    """Closes its client after a whole reply."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield event
        self.closed = True


class ClosesOnCancel(Closing):
    """Closes its client when the reply is cancelled."""

    token_ms = SlowModel.token_ms

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except asyncio.CancelledError:
            self.closed = True
            raise


class ClosesOnAclose(Closing):
    """Closes its client when the reply is closed early."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except GeneratorExit:
            self.closed = True
            raise


class IgnoresClose(Model):
    """Yields once more when it is closed early."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except GeneratorExit:
            yield LLMDone(text=reply)


class NoAclose(Model):
    """Returns a hand-written iterator that cannot be closed."""

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        return _Plain(super().respond(history, user_text))


class _Plain:
    def __init__(self, inner: AsyncIterator[Any]) -> None:
        self.inner = inner

    def __aiter__(self) -> _Plain:
        return self

    async def __anext__(self) -> Any:
        return await anext(self.inner)


class Producer(SlowModel):
    """Writes the reply in a task of its own, which goes on when the reply is closed or cancelled."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        queue: asyncio.Queue[LLMEvent] = asyncio.Queue()

        async def produce() -> None:
            async for event in ScriptedLLM._stream(self, start, reply):
                queue.put_nowait(event)
            await asyncio.sleep(5)  # "the rest of the billed tokens"

        producer = asyncio.ensure_future(produce())
        while not isinstance(event := await queue.get(), LLMDone):
            yield event
        yield event
        producer.cancel()


def llm_case(model: type[Model]) -> type[ReplyCase]:
    return type(f"{model.__name__}Case", (ReplyCase,), {"model": model, "__module__": __name__})


CASES: dict[str, type] = {
    cls.__name__: cls
    for cls in [
        SpeechCase,
        *map(
            stt_case,
            [
                TwoFinals,
                FinalWithoutSpeech,
                EmptyFinalForSilence,
                BackwardsClock,
                LateInterim,
                FinalOnlyAtEnd,
                NeverEnds,
                StubbornClose,
            ],
        ),
        WrongWordsCase,
        Only8kCase,
        ZeroRateCase,
        UndeclaredInterimCase,
        ReplyCase,
        LooseCase,
        *map(
            llm_case,
            [
                BadDone,
                NoDone,
                DeltaAfterDone,
                WallClockLLM,
                DoneOnCancel,
                GoesOnAfterCancel,
                HangsOnCancel,
                ErrorOnCancel,
                ClosesAfterReply,
                ClosesOnCancel,
                ClosesOnAclose,
                IgnoresClose,
                NoAclose,
                Producer,
            ],
        ),
    ]
}

EXPECTED: dict[str, dict[str, str]] = {
    "TwoFinalsCase": {
        "test_speech_gives_one_final": r"^Failed: one utterance then end_input\(\) gave 2 Finals, expected exactly "
        r"one: .*Final\('hello world'\), Final\('hello world again'\)$",
        "test_final_without_end_input": r"^Failed: two utterances 2 s apart gave 4 Finals, expected one each: ",
    },
    "FinalWithoutSpeechCase": {
        "test_empty_input_gives_no_final": r"^Failed: end_input\(\) without audio gave Final\('hello'\): "
        r"no audio means no Final$",
        "test_silence_gives_no_final": r"^Failed: 1 s of silence then end_input\(\) gave Final\('hello'\): "
        r"silence means no Final$",
    },
    "EmptyFinalForSilenceCase": fails(
        "silence_gives_no_final",
        r"^Failed: 1 s of silence then end_input\(\) gave Final\(''\): silence means no Final$",
    ),
    "BackwardsClockCase": fails(
        "events_are_typed_and_in_order",
        r"^Failed: Final\('hello world'\) from the STT stream is stamped 5 s before the SpeechEnded\(\) before it: "
        r"stamps never go back in time",
    ),
    "LateInterimCase": fails(
        "events_are_typed_and_in_order",
        r"^Failed: Interim\('hello world'\) after Final\('hello world'\): the engine takes an Interim for new speech "
        r"\(a barge-in\), so none may follow the utterance's Final$",
    ),
    "FinalOnlyAtEndCase": fails(
        "final_without_end_input",
        r"^Failed: no Final within 1 s of an utterance followed by 2 s of silence, without end_input\(\); "
        r"got SpeechStarted\(\), SpeechEnded\(\): the engine keeps the stream open",
    ),
    "NeverEndsCase": fails(
        "speech_gives_one_final events_are_typed_and_in_order empty_input_gives_no_final silence_gives_no_final "
        "final_without_end_input",
        r"^Failed: .*: the events did not end within 1 s after end_input\(\); got .* \(run\(\) must return once "
        r"every result is out\)$",
    ),
    "StubbornCloseCase": fails(
        "close_without_end_input",
        r"^Failed: leaving the stream in the middle of an utterance, without end_input\(\) did not return within 1 s$",
    ),
    "WrongWordsCase": fails(
        "speech_gives_one_final final_without_end_input",
        r"^Failed: (one utterance then end_input\(\)|the first of two utterances): Final\('goodbye'\) has none of "
        r"the words \['hello'\]$",
    ),
    "Only8kCase": fails(
        "streams_at_16k",
        r"^Failed: capabilities.sample_rates is \(8000,\): the engine streams 16000 Hz audio to the STT$",
    ),
    "ZeroRateCase": fails(
        "capabilities_declared",
        r"^Failed: capabilities.sample_rates holds \[0\]: rates are positive integers in Hz$",
    ),
    "UndeclaredInterimCase": fails(
        "events_are_typed_and_in_order",
        r"^Failed: the STT stream yielded Interim\('hello'\), but capabilities.interim_results is not set$",
    ),
    "LooseCase": {
        "test_options_forbid_unknown_keys": r"^Failed: LooseOptions accepted the unknown key 'no_such_option_xyz': "
        r"set extra='forbid'$",
        "test_options_are_documented": r"^Failed: options without a description: \['speed'\]$",
    },
    "BadDoneCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: .*: LLMDone.text is 'Hello' but the TextDeltas join to 'Hello there, friend.'$",
    ),
    "NoDoneCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: .* ended without an LLMDone after TextDelta\('Hello '\), TextDelta\('there, '\), "
        r"TextDelta\('friend.'\)$",
    ),
    "DeltaAfterDoneCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: .* yielded TextDelta\(' Bye.'\) after LLMDone\('Hello there, friend.'\): LLMDone comes last$",
    ),
    "WallClockLLMCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: TextDelta\('Hello '\) from .* is stamped 1.\de\+09 s in the future: "
        r"stamp with voicekit.clock.now\(\), not time.time\(\)$",
    ),
    "DoneOnCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: respond\(\) swallowed the cancellation of the task reading it: after the cancel it yielded "
        r"LLMDone\('Hello [^']*'\), and the reader finished normally; let CancelledError through",
    ),
    "GoesOnAfterCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: respond\(\) swallowed the cancellation of the task reading it: after the cancel it yielded "
        r"(TextDelta\('[^']+'\), )+LLMDone\('Hello there, friend.'\), and the reader finished normally",
    ),
    "HangsOnCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: respond\(\) was still running 2 s after the task reading it was cancelled \(barge-in\); "
        r"after the cancel it yielded nothing: let CancelledError through and stop$",
    ),
    "ErrorOnCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: cancelling the task reading respond\(\) made it raise BackendError: the request was aborted; "
        r"let CancelledError through",
    ),
    "ClosesAfterReplyCase": fails(
        "two_replies_in_a_row stop_reading_mid_stream cancel_mid_stream",
        r"^Failed: (the second reply, right after a whole first one|respond\(\) after a whole reply) raised "
        r"RuntimeError: the client is closed$",
    ),
    "ClosesOnCancelCase": fails(
        "cancel_mid_stream", r"^Failed: the reply after a cancelled one raised RuntimeError: the client is closed$"
    ),
    "ClosesOnAcloseCase": fails(
        "stop_reading_mid_stream",
        r"^Failed: the reply after one closed after its first TextDelta raised RuntimeError: the client is closed$",
    ),
    "IgnoresCloseCase": fails(
        "stop_reading_mid_stream",
        r"^Failed: closing the reply \(aclose\(\)\) after its first TextDelta raised RuntimeError: "
        r"async generator ignored GeneratorExit$",
    ),
    "ProducerCase": fails(
        "stop_reading_mid_stream cancel_mid_stream",
        r"^Failed: once the (reply was closed after its first TextDelta|task reading the reply was cancelled), tasks "
        r"the reply started were still running 2 s later: Task-\d+ \(Producer._stream.<locals>.produce\); stop what "
        r"a reply started when it is cancelled or closed$",
    ),
    "NoAcloseCase": fails(
        "stop_reading_mid_stream",
        r"^Failed: respond\(\) returned a _Plain without aclose\(\): the engine closes each reply with "
        r"contextlib.aclosing\(\), so return an async generator$",
    ),
}


def test_stt_and_llm_contracts_fail_broken_backends(pytester: pytest.Pytester) -> None:
    run_cases(pytester, __name__, CASES, EXPECTED)


def test_a_contract_without_its_fixture_says_so(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_forgot=textwrap.dedent(
            """
            from voicekit.testing.contracts import OutputContract

            class TestForgotFixture(OutputContract):
                pass
            """
        )
    )
    result = pytester.inline_run("-p", "no:cacheprovider")
    passed, _skipped, failed = result.listoutcomes()
    assert not passed and len(failed) >= 10  # every test needs a backend
    for report in failed:
        assert "TestForgotFixture: define a `backend` fixture that yields a started backend" in str(report.longrepr)
