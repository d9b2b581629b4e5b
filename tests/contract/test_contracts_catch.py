"""The STT contract fails recognizers that are wrong in the ways real ones have been wrong, each with a message
that names the event and what was expected.

Every broken recognizer below is the scripted one with one method changed; ``EXPECTED``
says which contract tests it fails and what each failure says. :func:`run_cases` runs the
cases with pytester, so they are named ``...Case``, not ``Test...``; the LLM and Output
catch tests (``test_contracts_catch_*``) use it too.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import pytest

from voicekit.events import Final, Interim
from voicekit.roles import Capabilities
from voicekit.testing.contracts import STTContract
from voicekit.testing.scripted import ScriptedOutput, ScriptedSTT, ScriptedSTTStream

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
}


def test_stt_contract_fails_broken_recognizers(pytester: pytest.Pytester) -> None:
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
