"""OutputContract fails outputs whose interrupt() is wrong in the ways real outputs have been wrong: deaf, bound
when iteration starts, reset at the wrong moment, unhooked by an old turn, leaking its own cancellation, blocking.

Every broken output below is the correct ``Voice`` of ``test_contracts_catch_output`` with
one mistake; ``EXPECTED`` says which contract tests it fails and what each failure says
(see ``test_contracts_catch.run_cases``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.contract.test_contracts_catch import fails, run_cases
from tests.contract.test_contracts_catch_output import CHUNK, CHUNKS, LONG, RATE, Voice, VoiceCase, case
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted

pytest_plugins = ["pytester"]


class Deaf(Voice):
    """Ignores interrupt()."""

    async def interrupt(self) -> None:
        pass


class LateGeneration(Voice):
    """Takes the generation when iteration starts, not when speak() is called."""

    async def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:  # type: ignore[override]
        async for event in self._speak(sentences, self.generation):
            yield event


class ResetPerSentence(Voice):
    """A stop flag that every new sentence clears."""

    stop = False

    def stopped(self, generation: int) -> bool:
        return self.stop

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        async for text in sentences:
            self.stop = False
            yield SpeakingStarted(text=text)
            for _ in range(CHUNKS):
                await asyncio.sleep(0)
                if self.stop:
                    return
                yield AudioOut(pcm=CHUNK, sample_rate=RATE)
            yield SpeakingEnded(text=text)

    async def interrupt(self) -> None:
        self.stop = True


class ClearedByWhoNotices(Voice):
    """interrupt() raises a flag while a turn is open; the turn that notices it clears it. A turn closed unread
    never notices, and the flag silences the next turn."""

    stop = False
    open_turns = 0

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        self.open_turns += 1
        return self._speak(sentences, 0)

    def stopped(self, generation: int) -> bool:
        if self.stop:
            self.stop = False
            return True
        return False

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        try:
            async for event in super()._speak(sentences, generation):
                yield event
        finally:
            self.open_turns -= 1

    async def interrupt(self) -> None:
        if self.open_turns:
            self.stop = True


class SingleSlot(Voice):
    """Keeps one "current turn" that every turn clears when it closes, also an old turn closed late."""

    current: list[bool] | None = None

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        self.current = turn = [False]
        return self._turn(sentences, turn)

    async def _turn(self, sentences: AsyncIterator[str], turn: list[bool]) -> AsyncIterator[OutputEvent]:
        try:
            async for text in sentences:
                if turn[0]:
                    return
                yield SpeakingStarted(text=text)
                for _ in range(CHUNKS):
                    await asyncio.sleep(0)
                    if turn[0]:
                        return
                    yield AudioOut(pcm=CHUNK, sample_rate=RATE)
                yield SpeakingEnded(text=text)
        finally:
            self.current = None

    async def interrupt(self) -> None:
        if self.current is not None:
            self.current[0] = True


class ResetInSpeak(Voice):
    """A stop flag shared by all turns, which every speak() clears."""

    stop = False

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        self.stop = False
        return self._speak(sentences, 0)

    def stopped(self, generation: int) -> bool:
        return self.stop

    async def interrupt(self) -> None:
        self.stop = True


class LeaksCancel(Voice):
    """Synthesizes in a task that interrupt() cancels, and lets that CancelledError out of speak()."""

    tasks: set[asyncio.Future[None]]

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        self.tasks = getattr(self, "tasks", set())
        return self._speak(sentences, self.generation)

    async def _speak(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        async for text in sentences:
            if self.stopped(generation):
                return
            yield SpeakingStarted(text=text)
            for _ in range(CHUNKS):
                task = asyncio.ensure_future(asyncio.sleep(0.001))
                self.tasks.add(task)
                if self.stopped(generation):
                    task.cancel()
                await task  # CancelledError of our own task, let out
                self.tasks.discard(task)
                yield AudioOut(pcm=CHUNK, sample_rate=RATE)
            yield SpeakingEnded(text=text)

    async def interrupt(self) -> None:
        self.generation += 1
        for task in getattr(self, "tasks", ()):
            task.cancel()


class BlockingInterrupt(Voice):
    """interrupt() waits until the turn it stops has been read to its end."""

    def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        self.done = asyncio.Event()
        return self._until_done(sentences, self.generation)

    async def _until_done(self, sentences: AsyncIterator[str], generation: int) -> AsyncIterator[OutputEvent]:
        try:
            async for event in self._speak(sentences, generation):
                yield event
        finally:
            self.done.set()

    async def interrupt(self) -> None:
        self.generation += 1
        if hasattr(self, "done"):
            await self.done.wait()


CASES = {
    cls.__name__: cls
    for cls in [
        VoiceCase,
        *map(
            case,
            [
                Deaf,
                LateGeneration,
                ResetPerSentence,
                ClearedByWhoNotices,
                SingleSlot,
                ResetInSpeak,
                LeaksCancel,
                BlockingInterrupt,
            ],
        ),
    ]
}

SECOND = r"SpeakingStarted\('Nobody should ever hear this second sent…as interrupted.'\)"

EXPECTED: dict[str, dict[str, str]] = {
    "DeafCase": {
        "test_interrupt_mid_speak": rf"^Failed: AudioOut\(640 bytes at 16000 Hz\) after interrupt\(\) at "
        rf"AudioOut\(640 bytes at 16000 Hz\) of {LONG}; after it came 3 × AudioOut \(1920 bytes at 16000 Hz\), "
        r".*: no audio and no new sentence may come after interrupt\(\)$",
        "test_interrupt_from_another_task": rf"^Failed: {SECOND} after interrupt\(\), called from another task while "
        r"the reader waited inside speak\(\); after it came .*: no audio and no new sentence may come after",
        "test_interrupt_before_first_event": r"^Failed: speak\(\) interrupted before its first event was read still "
        r"spoke: SpeakingStarted\('Hello there.'\), 4 × AudioOut .*; interrupt\(\) stops every speak\(\) called "
        r"before it, so take the turn's interrupt state when speak\(\) is called, not when iteration starts$",
        "test_interrupt_after_late_close": r"^Failed: AudioOut\(640 bytes at 16000 Hz\) after interrupt\(\) at "
        r"AudioOut\(640 bytes at 16000 Hz\) of the second turn, once the first turn's speak\(\) was closed; ",
        "test_next_speak_keeps_the_interrupt": r"^Failed: AudioOut\(640 bytes at 16000 Hz\) after interrupt\(\) at "
        r"AudioOut\(640 bytes at 16000 Hz\) of the first turn and the next turn's speak\(\); ",
    },
    "LateGenerationCase": fails(
        "interrupt_before_first_event",
        r"^Failed: speak\(\) interrupted before its first event was read still spoke: SpeakingStarted\('Hello there.'\)"
        r".*take the turn's interrupt state when speak\(\) is called, not when iteration starts$",
    ),
    "ResetPerSentenceCase": {
        "test_interrupt_from_another_task": rf"^Failed: {SECOND} after interrupt\(\), called from another task while "
        r"the reader waited inside speak\(\)",
        "test_interrupt_before_first_event": r"^Failed: speak\(\) interrupted before its first event was read still "
        r"spoke: SpeakingStarted\('Hello there.'\)",
    },
    "ClearedByWhoNoticesCase": {
        "test_speak_after_barge_in": r"^Failed: the turn after a barge-in \(interrupt\(\), then the reader cancelled; "
        r"speak\(\) closed unread\) ended after 0 of 2 sentences, without SpeakingStarted\('Hello there.'\); "
        r"it yielded nothing: the interrupt of the turn before leaked into this one$",
        "test_interrupt_after_late_close": r"^Failed: speak\(\) of the turn after an interrupted one ended before its "
        r"first AudioOut; it yielded nothing: the interrupt of the turn before leaked into this one$",
    },
    "SingleSlotCase": fails(
        "interrupt_after_late_close",
        r"^Failed: AudioOut\(640 bytes at 16000 Hz\) after interrupt\(\) at AudioOut\(640 bytes at 16000 Hz\) of the "
        r"second turn, once the first turn's speak\(\) was closed; after it came .*: no audio and no new sentence may "
        r"come after interrupt\(\) \(closing an old turn must not unhook the current one\)$",
    ),
    "ResetInSpeakCase": fails(
        "next_speak_keeps_the_interrupt",
        r"^Failed: AudioOut\(640 bytes at 16000 Hz\) after interrupt\(\) at AudioOut\(640 bytes at 16000 Hz\) of the "
        r"first turn and the next turn's speak\(\); after it came .*: no audio and no new sentence may come after "
        r"interrupt\(\) \(a new speak\(\) must not undo the interrupt of a turn before it\)$",
    ),
    "LeaksCancelCase": fails(
        "interrupt_mid_speak speak_after_interrupt interrupt_after_late_close next_speak_keeps_the_interrupt",
        r"^Failed: (speak\(\) (of the second turn )?after interrupt\(\)|the interrupted turn, read on after the next "
        r"speak\(\) was called) raised CancelledError although nothing cancelled its reader \(it had yielded "
        r"nothing\): a backend that cancels its own tasks keeps their CancelledError in$",
    ),
    "BlockingInterruptCase": fails(
        "interrupt_mid_speak interrupt_from_another_task interrupt_before_first_event speak_after_interrupt "
        "interrupt_after_late_close next_speak_keeps_the_interrupt",
        r"^Failed: interrupt\(\) .* did not return within 1 s$",
    ),
}


def test_output_contract_fails_outputs_that_interrupt_wrongly(pytester: pytest.Pytester) -> None:
    run_cases(pytester, __name__, CASES, EXPECTED)
