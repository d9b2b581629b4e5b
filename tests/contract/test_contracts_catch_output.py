"""OutputContract fails outputs whose turns are wrong in the ways real outputs have been wrong (framing, audio,
stamps, pace, a connection that lasts one turn), each with a message that names the event, the sentence and what
was expected. Outputs that interrupt wrongly are in ``test_contracts_catch_interrupt``.

``Voice`` is a correct output; every broken one below is ``Voice`` with one mistake.
``EXPECTED`` says which contract tests it fails and what each failure says. The cases are
run by pytester (see ``test_contracts_catch.run_cases``), so they are named ``...Case``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.contract.test_contracts_catch import fails, run_cases
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.options import BackendOptions
from voicekit.roles import Capabilities, Output
from voicekit.testing.contracts import OutputContract

pytest_plugins = ["pytester"]

RATE = 16000
CHUNK = bytes(640)  # 20 ms of silence
CHUNKS = 4  # per sentence


class Voice(Output):
    """A correct voice: per sentence a few chunks, each after a pause; interrupt() stops every turn begun."""

    Options = BackendOptions
    capabilities = Capabilities(produces_audio=True, sample_rates=(RATE,))
    sample_rate = RATE

    def __init__(self, options: Any = None, context: Any = None) -> None:
        super().__init__(options, context)
        self.generation = 0

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        return self._speak(sentences, self.generation)

    def stopped(self, generation: int) -> bool:
        return generation != self.generation

    def say(self, text: str) -> list[OutputEvent]:
        """The events of one sentence."""
        started = SpeakingStarted(text=text)
        chunks = [AudioOut(pcm=CHUNK, sample_rate=RATE) for _ in range(CHUNKS)]
        return [started, *chunks, SpeakingEnded(text=text)]

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        async for text in sentences:
            for event in self.say(text):
                await asyncio.sleep(0)
                if self.stopped(generation):
                    return
                yield event

    async def interrupt(self) -> None:
        self.generation += 1


class VoiceCase(OutputContract):
    """The correct voice passes every test: the broken ones below differ from it in one thing."""

    timeout_s = 1.0
    voice: type[Output] = Voice

    @pytest.fixture
    async def backend(self) -> AsyncIterator[Output]:
        async with self.voice() as out:
            yield out


# --- audio and framing ----------------------------------------------------------------


class AudioAfterEnd(Voice):
    """Yields the audio of each sentence after its SpeakingEnded."""

    def say(self, text: str) -> list[OutputEvent]:
        return [SpeakingStarted(text=text), SpeakingEnded(text=text), AudioOut(pcm=CHUNK, sample_rate=RATE)]


class OddBytes(Voice):
    """Cuts its audio in the middle of a sample."""

    def say(self, text: str) -> list[OutputEvent]:
        return [SpeakingStarted(text=text), AudioOut(pcm=bytes(321), sample_rate=RATE), SpeakingEnded(text=text)]


class WrongRate(Voice):
    """Declares 16 kHz and yields 24 kHz."""

    def say(self, text: str) -> list[OutputEvent]:
        return [SpeakingStarted(text=text), AudioOut(pcm=CHUNK, sample_rate=24000), SpeakingEnded(text=text)]


class SilentSentences(Voice):
    """Declares produces_audio, and yields none for sentences that end with a full stop."""

    def say(self, text: str) -> list[OutputEvent]:
        return [SpeakingStarted(text=text), SpeakingEnded(text=text)] if text.endswith(".") else super().say(text)


class WrongText(Voice):
    """Reports the sentence it speaks in lower case."""

    def say(self, text: str) -> list[OutputEvent]:
        return super().say(text.lower())


class Overlapping(Voice):
    """Starts the next sentence before it ends the last one."""

    def say(self, text: str) -> list[OutputEvent]:
        return [SpeakingStarted(text=text), AudioOut(pcm=CHUNK, sample_rate=RATE)]

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        last = ""
        async for event in super()._speak(sentences, generation):
            yield event
            if isinstance(event, SpeakingStarted):
                if last:
                    yield SpeakingEnded(text=last)
                last = event.text
        if last:
            yield SpeakingEnded(text=last)


class Unfinished(Voice):
    """Leaves the last sentence of a turn without its SpeakingEnded."""

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        held: OutputEvent | None = None
        async for event in super()._speak(sentences, generation):
            if held is not None:
                yield held
                held = None
            if isinstance(event, SpeakingEnded):
                held = event
            else:
                yield event


class SpeaksSilence(Voice):
    """Says an empty sentence when the reply has none."""

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        said = False
        async for event in super()._speak(sentences, generation):
            said = True
            yield event
        if not said and not self.stopped(generation):
            yield SpeakingStarted(text="")
            yield SpeakingEnded(text="")


class UndeclaredRate(Voice):
    """Speaks at a rate it does not list in its capabilities."""

    capabilities = Capabilities(produces_audio=True, sample_rates=(24000,))


class WallClock(Voice):
    """Stamps its events with time.time()."""

    def say(self, text: str) -> list[OutputEvent]:
        return [
            SpeakingStarted(text=text, t=time.time()),
            AudioOut(pcm=CHUNK, sample_rate=RATE, t=time.time()),
            SpeakingEnded(text=text, t=time.time()),
        ]


class Buffering(Voice):
    """Waits for the whole reply before it speaks the first sentence."""

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        texts = [text async for text in sentences]
        for text in texts:
            for event in self.say(text):
                if self.stopped(generation):
                    return
                yield event


class OneTurn(Voice):
    """Closes its connection when a turn has been spoken to its end."""

    closed = False

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        if self.closed:
            raise RuntimeError("the connection is closed")
        async for event in super()._speak(sentences, generation):
            yield event
        if not self.stopped(generation):
            self.closed = True


class NoAclose(Voice):
    """Returns a hand-written iterator that cannot be closed."""

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        return _Plain(super().speak(sentences))


class _Plain:
    def __init__(self, inner: AsyncIterator[Any]) -> None:
        self.inner = inner

    def __aiter__(self) -> _Plain:
        return self

    async def __anext__(self) -> Any:
        return await anext(self.inner)


def case(voice: type[Output]) -> type[VoiceCase]:
    return type(f"{voice.__name__}Case", (VoiceCase,), {"voice": voice, "__module__": __name__})


CASES = {
    cls.__name__: cls
    for cls in [
        VoiceCase,
        *map(
            case,
            [
                AudioAfterEnd,
                OddBytes,
                WrongRate,
                SilentSentences,
                WrongText,
                Overlapping,
                Unfinished,
                SpeaksSilence,
                UndeclaredRate,
                WallClock,
                Buffering,
                OneTurn,
                NoAclose,
            ],
        ),
    ]
}

#: the tests that speak a whole turn and check it
WHOLE_TURNS = (
    "speak_two_sentences sentences_arriving_slowly each_sentence_spoken_as_it_arrives two_turns_in_a_row "
    "interrupt_before_first_event speak_after_interrupt speak_after_barge_in next_speak_keeps_the_interrupt "
    "interrupt_when_idle"
)
#: ... and those that read a turn to its first audio
FIRST_AUDIO = "interrupt_mid_speak interrupt_from_another_task interrupt_after_late_close"
LONG = r"'This sentence is long enough that speaki…can be cut off.'"

EXPECTED: dict[str, dict[str, str]] = {
    "AudioAfterEndCase": fails(
        f"{WHOLE_TURNS} {FIRST_AUDIO}",
        rf"^Failed: .*: AudioOut\(640 bytes at 16000 Hz\) after SpeakingEnded\(('Hello there.'|{LONG})\): "
        r"audio belongs between a sentence's SpeakingStarted and its SpeakingEnded$",
    ),
    "OddBytesCase": fails(
        WHOLE_TURNS,
        r"^Failed: .*: AudioOut\(321 bytes at 16000 Hz\) of 'Hello there.' has an odd number of bytes: "
        r"pcm is whole 16-bit samples$",
    ),
    "WrongRateCase": fails(
        WHOLE_TURNS,
        r"^Failed: .*: AudioOut\(640 bytes at 24000 Hz\) of 'Hello there.' is at 24000 Hz, "
        r"but the backend's sample_rate is 16000$",
    ),
    "SilentSentencesCase": fails(
        f"{WHOLE_TURNS} {FIRST_AUDIO}",
        rf"^Failed: .*: (no AudioOut between SpeakingStarted\('Hello there.'\) and its SpeakingEnded|"
        rf"SpeakingEnded\(('Hello there.'|{LONG})\) without any AudioOut before it), "
        r"although capabilities.produces_audio is set",
    ),
    "WrongTextCase": fails(
        WHOLE_TURNS,
        r"^Failed: .*: SpeakingStarted\('hello there.'\) for sentence 1, expected SpeakingStarted\('Hello there.'\)$",
    ),
    "OverlappingCase": fails(
        WHOLE_TURNS,
        r"^Failed: .*: SpeakingStarted\('How are you today\?'\) before SpeakingEnded\('Hello there.'\): "
        r"a sentence ends before the next one starts$",
    ),
    "UnfinishedCase": fails(
        WHOLE_TURNS,
        r"^Failed: .* ended inside sentence 2: SpeakingStarted\('How are you today\?'\) without its SpeakingEnded$",
    ),
    "SpeaksSilenceCase": fails(
        "no_sentences",
        r"^Failed: speak\(\) of a reply without sentences yielded SpeakingStarted\(''\), SpeakingEnded\(''\); "
        r"it must yield nothing and end$",
    ),
    "UndeclaredRateCase": fails(
        "sample_rate_declared", r"^Failed: sample_rate 16000 is not among capabilities.sample_rates \(24000,\)$"
    ),
    "WallClockCase": fails(
        WHOLE_TURNS,
        r"^Failed: SpeakingStarted\('Hello there.'\) from .* is stamped 1.\de\+09 s in the future: "
        r"stamp with voicekit.clock.now\(\), not time.time\(\)$",
    ),
    "BufferingCase": fails(
        "each_sentence_spoken_as_it_arrives interrupt_from_another_task",
        rf"^Failed: .*: no AudioOut for ('Hello there.'|{LONG}) within 1 s while the next sentence was held back; "
        r"it yielded nothing: speak each sentence as it arrives, without waiting for more$",
    ),
    "OneTurnCase": {
        "test_two_turns_in_a_row": r"^Failed: the second turn, right after a whole first one raised RuntimeError: "
        r"the connection is closed",
        "test_speak_after_barge_in": r"^Failed: speak\(\) of the long reply raised RuntimeError: "
        r"the connection is closed",
    },
    "NoAcloseCase": fails(
        "each_sentence_spoken_as_it_arrives interrupt_mid_speak interrupt_from_another_task "
        "interrupt_before_first_event speak_after_interrupt speak_after_barge_in interrupt_after_late_close "
        "next_speak_keeps_the_interrupt",
        r"^Failed: .* returned a _Plain without aclose\(\): the engine closes each turn with contextlib.aclosing\(\), "
        r"so return an async generator$",
    ),
}


def test_output_contract_fails_broken_outputs(pytester: pytest.Pytester) -> None:
    run_cases(pytester, __name__, CASES, EXPECTED)
