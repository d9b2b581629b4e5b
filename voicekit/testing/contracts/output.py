"""The Output contract: sentence framing, audio format, and interruption as the engine does it.

On barge-in the engine cancels the task reading ``speak()`` (which closes the iterator
unread, through ``contextlib.aclosing``), calls ``interrupt()`` from another task, and
starts the next turn's ``speak()``. So ``interrupt()`` stops every ``speak()`` called
before it, whether or not its first event has been read yet, and a ``speak()`` called
after it has returned is spoken in full.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import pytest

from voicekit.clock import now
from voicekit.events import AudioOut, SpeakingStarted
from voicekit.roles import Backend, Output
from voicekit.testing.contracts._support import (
    BackendContract,
    call,
    check_stamps,
    clip,
    describe,
    drain,
    expect,
    fail,
    feed,
    short,
    within,
)
from voicekit.testing.contracts._turns import LEAKED, check_turn, expect_silent_after, read_to_cue


class _HeldBack:
    """The first sentence at once, the rest only after :meth:`release`, as from an LLM that is still writing."""

    def __init__(self, sentences: Sequence[str]) -> None:
        self.sentences = sentences
        self.asked = asyncio.Event()  # the output asked for the sentence after the first
        self._gate = asyncio.Event()

    def release(self) -> None:
        self._gate.set()

    async def __call__(self) -> AsyncIterator[str]:
        yield self.sentences[0]
        self.asked.set()
        await self._gate.wait()
        for sentence in self.sentences[1:]:
            yield sentence


class _Reader:
    """A task that reads a turn as the engine's responder does: inside ``contextlib.aclosing``, to the first
    cue, and then on to the end (or, with ``hold``, not at all until it is cancelled)."""

    def __init__(self, backend: Output, speech: AsyncIterator[Any], timeout: float, what: str, **how: Any) -> None:
        self.events: list[Any] = []
        self._cued = asyncio.Event()
        self.task = asyncio.ensure_future(self._read(backend, speech, timeout, what, **how))

    async def _read(
        self, backend: Output, speech: AsyncIterator[Any], timeout: float, what: str, hold: bool = False, **how: Any
    ) -> None:
        async with contextlib.aclosing(speech):  # type: ignore[type-var]
            self.events += await read_to_cue(backend, speech, timeout, what, **how)
            self._cued.set()
            if hold:
                await asyncio.Event().wait()  # a consumer busy elsewhere until it is cancelled
            async for event in speech:
                self.events.append(event)

    async def cued(self) -> None:
        """Wait for the cue; the reader's failure if it ended first (``read_to_cue`` bounds the wait)."""
        __tracebackhide__ = True
        waiter = asyncio.ensure_future(self._cued.wait())
        await asyncio.wait([self.task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not self._cued.is_set():
            await self.task  # raises what stopped it

    async def end(self, timeout: float, what: str) -> None:
        """Wait for the reader to finish; fails on a timeout or an error (a cancellation is not one)."""
        __tracebackhide__ = True
        await asyncio.wait([self.task], timeout=timeout)
        if not self.task.done():
            self.task.cancel()
            fail(f"{what} did not end within {timeout:g} s")
        if not self.task.cancelled() and (error := self.task.exception()) is not None:
            if not isinstance(error, Exception):
                raise error  # a failure of the contract itself (pytest.fail)
            fail(f"{what} raised {type(error).__name__}: {error}")


class OutputContract(BackendContract):
    """The Output contract: sentence framing, audio format, and interruption as the engine does it."""

    role: ClassVar[str] = "output"
    base: ClassVar[type[Backend]] = Output
    #: a short reply of two sentences
    sentences: ClassVar[tuple[str, ...]] = ("Hello there.", "How are you today?")
    #: a reply long enough to be interrupted while it is spoken
    long_sentences: ClassVar[tuple[str, ...]] = (
        "This sentence is long enough that speaking it takes a good while, so it can be cut off.",
        "Nobody should ever hear this second sentence, because the user has interrupted.",
        "Nor this third one.",
    )

    async def _speak(
        self, backend: Output, sentences: Sequence[str], what: str = "speak()", gap_s: float = 0.0, hint: str = ""
    ) -> list[Any]:
        """One whole turn, checked."""
        __tracebackhide__ = True
        start = now()
        events = await drain(call(what, backend.speak, feed(sentences, gap_s)), self.timeout_s, what)
        check_turn(backend, events, sentences, what, hint)
        check_stamps(events, start, what)
        return events

    def _start(self, backend: Output, sentences: AsyncIterator[str], what: str) -> AsyncIterator[Any]:
        """``speak(sentences)``, whose iterator the engine closes with ``contextlib.aclosing``."""
        __tracebackhide__ = True
        speech: AsyncIterator[Any] = call(what, backend.speak, sentences)
        expect(
            callable(getattr(speech, "aclose", None)),
            f"{what} returned a {type(speech).__name__} without aclose(): the engine closes each turn with "
            "contextlib.aclosing(), so return an async generator",
        )
        return speech

    async def _interrupt(self, backend: Output, what: str) -> None:
        __tracebackhide__ = True
        await within(self.timeout_s, what, backend.interrupt())

    # --- framing and audio --------------------------------------------------------------

    def test_sample_rate_declared(self, backend: Output) -> None:
        """``sample_rate`` is a positive integer, and one of ``capabilities.sample_rates`` when the output
        produces audio."""
        rate, caps = backend.sample_rate, backend.capabilities
        expect(isinstance(rate, int) and rate > 0, f"sample_rate is {rate!r}: the rate of its AudioOut, in Hz")
        if caps.produces_audio:
            expect(
                rate in caps.sample_rates,
                f"sample_rate {rate} is not among capabilities.sample_rates {caps.sample_rates}",
            )

    @pytest.mark.asyncio
    async def test_speak_two_sentences(self, backend: Output) -> None:
        """Two sentences give, in order and per sentence, ``SpeakingStarted(text)``, ``AudioOut`` (non-empty,
        whole 16-bit samples, at ``sample_rate``; at least one if ``produces_audio``) and ``SpeakingEnded(text)``,
        stamped with ``voicekit.clock.now()`` in order; no audio outside a sentence."""
        await self._speak(backend, self.sentences)

    @pytest.mark.asyncio
    async def test_sentences_arriving_slowly(self, backend: Output) -> None:
        """Sentences that arrive 100 ms apart, as from a streaming LLM, are spoken the same way."""
        await self._speak(backend, self.sentences, "speak() of sentences 100 ms apart", gap_s=0.1)

    @pytest.mark.asyncio
    async def test_each_sentence_spoken_as_it_arrives(self, backend: Output) -> None:
        """The first sentence is spoken (its ``SpeakingStarted`` and, with ``produces_audio``, its first
        ``AudioOut``) while the next one is still held back: the engine hands sentences over as the LLM
        writes them."""
        held = _HeldBack(self.sentences)
        what = "speak() with the second sentence held back"
        start = now()
        speech = self._start(backend, held(), what)
        try:
            events = await read_to_cue(backend, speech, self.timeout_s, what, held_back=self.sentences[0])
        finally:
            held.release()
        expect(
            any(isinstance(e, SpeakingStarted) for e in events),
            f"{what}: {describe(events[-1])} before any SpeakingStarted",
        )
        events = await drain(speech, self.timeout_s, what, into=events)
        check_turn(backend, events, self.sentences, what)
        check_stamps(events, start, what)

    @pytest.mark.asyncio
    async def test_two_turns_in_a_row(self, backend: Output) -> None:
        """A second whole turn right after a first one is spoken in full (the backend keeps its voice or
        connection between turns)."""
        await self._speak(backend, self.sentences, "the first of two turns")
        await self._speak(backend, self.sentences, "the second turn, right after a whole first one")

    @pytest.mark.asyncio
    async def test_no_sentences(self, backend: Output) -> None:
        """A reply with no sentence at all yields no event and ends within ``timeout_s``."""
        what = "speak() of a reply without sentences"
        events = await drain(call(what, backend.speak, feed(())), self.timeout_s, what)
        expect(not events, f"{what} yielded {short(events)}; it must yield nothing and end")

    # --- interruption ---------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_interrupt_mid_speak(self, backend: Output) -> None:
        """``interrupt()`` at the first ``AudioOut`` (the first ``SpeakingStarted`` without ``produces_audio``)
        returns within ``timeout_s``; the turn then yields no ``AudioOut`` and no ``SpeakingStarted``, and ends
        without an error."""
        what = "speak() of the long reply"
        speech = self._start(backend, feed(self.long_sentences), what)
        before = await read_to_cue(backend, speech, self.timeout_s, what)
        await self._interrupt(backend, "interrupt() while a turn was being spoken")
        after = await drain(speech, self.timeout_s, "speak() after interrupt()")
        expect_silent_after(after, f"interrupt() at {describe(before[-1])} of {clip(self.long_sentences[0])}")

    @pytest.mark.asyncio
    async def test_interrupt_from_another_task(self, backend: Output) -> None:
        """``interrupt()`` from another task while the reader waits inside ``speak()`` for more (the next sentence
        held back): once the rest of the reply arrives, no ``AudioOut`` and no ``SpeakingStarted`` come, and the
        turn ends."""
        held = _HeldBack(self.long_sentences)
        what = "speak() with the next sentence held back"
        speech = self._start(backend, held(), what)
        reader = _Reader(backend, speech, self.timeout_s, what, held_back=self.long_sentences[0])
        try:
            await reader.cued()
            try:
                async with asyncio.timeout(self.timeout_s):
                    await held.asked.wait()
            except TimeoutError:
                fail(f"{what}: the output did not ask for the sentence after the first within {self.timeout_s:g} s")
            await self._interrupt(backend, "interrupt() from another task while speak() was being read")
            mark = len(reader.events)
            held.release()
            await reader.end(self.timeout_s, "speak() after interrupt() and the end of its sentences")
        finally:
            held.release()
            reader.task.cancel()
        expect_silent_after(
            reader.events[mark:], "interrupt(), called from another task while the reader waited inside speak()"
        )

    @pytest.mark.asyncio
    async def test_interrupt_before_first_event(self, backend: Output) -> None:
        """``interrupt()`` after ``speak()`` returned but before its first event was read stops that turn: it
        yields no ``SpeakingStarted`` and no ``AudioOut``. The turn after it is spoken in full."""
        what = "speak() interrupted before its first event was read"
        speech = self._start(backend, feed(self.sentences), what)
        await self._interrupt(backend, "interrupt() between speak() and its first event")
        events = await drain(speech, self.timeout_s, what)
        expect(
            not [e for e in events if isinstance(e, (SpeakingStarted, AudioOut))],
            f"{what} still spoke: {short(events)}; interrupt() stops every speak() called before it, so take the "
            "turn's interrupt state when speak() is called, not when iteration starts",
        )
        await self._speak(backend, self.sentences, "the turn after one interrupted before its first event", hint=LEAKED)

    @pytest.mark.asyncio
    async def test_speak_after_interrupt(self, backend: Output) -> None:
        """After an interrupted turn that was read to its end, the next turn is spoken in full."""
        what = "speak() of the long reply"
        speech = self._start(backend, feed(self.long_sentences), what)
        await read_to_cue(backend, speech, self.timeout_s, what)
        await self._interrupt(backend, "interrupt() while a turn was being spoken")
        await drain(speech, self.timeout_s, "speak() after interrupt()")
        await self._speak(backend, self.sentences, "the turn after an interrupted one", hint=LEAKED)

    @pytest.mark.asyncio
    async def test_speak_after_barge_in(self, backend: Output) -> None:
        """Barge-in as the engine does it: the task reading a turn is cancelled, which closes the iterator unread
        (``speak()`` returns an iterator with ``aclose()``: the engine reads it inside ``contextlib.aclosing``),
        and ``interrupt()`` runs in another task, in either order; the next turn is then spoken in full (the
        interrupt does not leak into it)."""
        for interrupt_first in (False, True):
            await self._barge_in(backend, interrupt_first)
            order = (
                "interrupt(), then the reader cancelled" if interrupt_first else "reader cancelled, then interrupt()"
            )
            what = f"the turn after a barge-in ({order}; speak() closed unread)"
            await self._speak(backend, self.sentences, what, hint=LEAKED)

    async def _barge_in(self, backend: Output, interrupt_first: bool) -> None:
        __tracebackhide__ = True
        what = "speak() of the long reply"
        reader = _Reader(
            backend, self._start(backend, feed(self.long_sentences), what), self.timeout_s, what, hold=True
        )
        await reader.cued()
        if interrupt_first:
            interrupting = asyncio.ensure_future(backend.interrupt())
            reader.task.cancel()
        else:
            reader.task.cancel()
            interrupting = asyncio.ensure_future(backend.interrupt())
        await reader.end(self.timeout_s, "closing speak() (aclose()) after its reader was cancelled")
        await within(self.timeout_s, "interrupt() during a barge-in", interrupting)

    @pytest.mark.asyncio
    async def test_interrupt_after_late_close(self, backend: Output) -> None:
        """A turn starts after an interrupted one whose iterator is still open; when that old iterator is closed
        late, ``interrupt()`` still stops the new turn (no ``AudioOut``, no ``SpeakingStarted`` after it)."""
        what = "speak() of the first turn"
        first = self._start(backend, feed(self.long_sentences), what)
        await read_to_cue(backend, first, self.timeout_s, what)
        await self._interrupt(backend, "interrupt() of the first turn")
        what = "speak() of the turn after an interrupted one"
        second = self._start(backend, feed(self.long_sentences), what)
        before = await read_to_cue(backend, second, self.timeout_s, what, hint=LEAKED)
        closing = first.aclose()  # type: ignore[attr-defined]
        await within(self.timeout_s, "closing the interrupted turn's speak() after the next one started", closing)
        await self._interrupt(backend, "interrupt() of the second turn")
        after = await drain(second, self.timeout_s, "speak() of the second turn after interrupt()")
        expect_silent_after(
            after,
            f"interrupt() at {describe(before[-1])} of the second turn, once the first turn's speak() was closed",
            "closing an old turn must not unhook the current one",
        )

    @pytest.mark.asyncio
    async def test_next_speak_keeps_the_interrupt(self, backend: Output) -> None:
        """An interrupted turn stays stopped when the next turn's ``speak()`` is called: read on, it yields no
        ``AudioOut`` and no ``SpeakingStarted``, and the next turn is spoken in full."""
        what = "speak() of the first turn"
        first = self._start(backend, feed(self.long_sentences), what)
        before = await read_to_cue(backend, first, self.timeout_s, what)
        await self._interrupt(backend, "interrupt() of the first turn")
        start = now()
        second = self._start(backend, feed(self.sentences), "speak() of the next turn")
        after = await drain(first, self.timeout_s, "the interrupted turn, read on after the next speak() was called")
        expect_silent_after(
            after,
            f"interrupt() at {describe(before[-1])} of the first turn and the next turn's speak()",
            "a new speak() must not undo the interrupt of a turn before it",
        )
        what = "the turn after an interrupted one, begun before that one was read to its end"
        events = await drain(second, self.timeout_s, what)
        check_turn(backend, events, self.sentences, what, LEAKED)
        check_stamps(events, start, what)

    @pytest.mark.asyncio
    async def test_interrupt_when_idle(self, backend: Output) -> None:
        """``interrupt()`` with nothing being spoken returns within ``timeout_s`` and does not silence the next
        turn."""
        await self._interrupt(backend, "interrupt() with nothing being spoken")
        await self._speak(backend, self.sentences, "the turn after interrupt() with nothing being spoken", hint=LEAKED)


__all__ = ["OutputContract"]
