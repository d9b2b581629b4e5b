"""The STT contract: what the engine needs from a speech recognizer."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from voicekit.clock import now
from voicekit.events import Final, Interim, SpeechEnded, SpeechStarted, UtteranceEnd
from voicekit.roles import STT, Backend, STTStream
from voicekit.testing.contracts._support import (
    BackendContract,
    call,
    check_stamps,
    describe,
    expect,
    fail,
    short,
    within,
)

_STT_EVENTS = (SpeechStarted, SpeechEnded, Interim, Final, UtteranceEnd)
_RATE = 16000


@dataclass(frozen=True)
class Utterance:
    """The ``speech`` fixture's ``(pcm, expected_words)``, shown in a failure by its length, not its bytes."""

    pcm: bytes
    words: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Utterance({len(self.pcm) / (2 * _RATE):.2f} s of 16 kHz audio, words={self.words})"


class _Recognition:
    """One stream being fed: a task reads every event into :attr:`events` as it comes."""

    def __init__(self, stream: STTStream, what: str, timeout: float) -> None:
        self.stream = stream
        self.what = what
        self.timeout = timeout
        self.events: list[Any] = []
        self.reader: asyncio.Task[None] | None = None
        self._grew = asyncio.Event()

    async def __aenter__(self) -> _Recognition:
        await within(self.timeout, f"{self.what}: entering the stream (async with)", self.stream.__aenter__())
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await within(self.timeout, f"{self.what}: leaving the stream", self.stream.__aexit__(None, None, None))
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader

    async def _read(self) -> None:
        try:
            async for event in self.stream:
                self.events.append(event)
                self._grew.set()
        finally:
            self._grew.set()

    def finals(self) -> list[Final]:
        return [e for e in self.events if isinstance(e, Final)]

    async def wait_for_final(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` Finals have come; False on timeout or when the stream ends first."""
        assert self.reader is not None
        try:
            async with asyncio.timeout(timeout):
                while len(self.finals()) < count:
                    if self.reader.done():
                        return False
                    self._grew.clear()
                    await self._grew.wait()
        except TimeoutError:
            return False
        return True

    async def end(self) -> list[Any]:
        """``end_input()``, then every event until the stream ends."""
        __tracebackhide__ = True
        assert self.reader is not None
        self.stream.end_input()
        done, _ = await asyncio.wait([self.reader], timeout=self.timeout)
        if not done:
            fail(
                f"{self.what}: the events did not end within {self.timeout:g} s after end_input(); "
                f"got {short(self.events)} (run() must return once every result is out)"
            )
        if self.reader.cancelled():
            fail(f"{self.what}: iterating the stream raised CancelledError although nothing cancelled it")
        error = self.reader.exception()
        if error is not None:
            fail(f"{self.what}: the stream raised {type(error).__name__}: {error} after {short(self.events)}")
        return self.events


class STTContract(BackendContract):
    """The STT contract. Override the ``speech`` fixture to feed your own utterance.

    The default ``speech`` is "hello world, this is a test" spoken by espeak-ng (needs
    the ``offline`` extra); a fixture returning ``(pcm, expected_words)`` replaces it,
    where ``pcm`` is one utterance as 16 kHz mono int16 with silence around it and the
    transcript must contain at least one of ``expected_words`` as a whole word (an
    empty tuple skips that check).
    """

    role: ClassVar[str] = "stt"
    base: ClassVar[type[Backend]] = STT
    #: size of each pushed chunk
    chunk_ms: ClassVar[int] = 20
    #: push audio at playing speed (for services that reject faster-than-real-time audio)
    realtime: ClassVar[bool] = False
    #: the silence after an utterance that must end it, in seconds
    pause_s: ClassVar[float] = 2.0
    #: the length of the silence that must give no Final, in seconds
    silence_s: ClassVar[float] = 1.0

    @pytest.fixture
    def speech(self) -> tuple[bytes, Sequence[str]]:
        """One spoken utterance and words its transcript must contain (one of them)."""
        try:
            from voicekit.testing.speech import synthesize

            return synthesize("hello world, this is a test", "en"), ("hello", "world", "this", "test")
        except ImportError as exc:
            fail(f"override the `speech` fixture, or install voicekit[offline] for the default one ({exc})")

    @pytest.fixture
    def utterance(self, speech: tuple[bytes, Sequence[str]]) -> Utterance:
        """The ``speech`` fixture, checked."""
        pcm, words = speech
        expect(isinstance(pcm, bytes), f"the speech fixture gives {type(pcm).__name__} audio: 16 kHz int16 bytes")
        expect(pcm and len(pcm) % 2 == 0, f"the speech fixture gives {len(pcm)} bytes: whole int16 samples")
        return Utterance(pcm, tuple(words))

    def _stream(self, backend: STT, what: str) -> STTStream:
        __tracebackhide__ = True
        stream: STTStream = call(f"{what}: stream(sample_rate=16000)", lambda: backend.stream(sample_rate=_RATE))
        return stream

    def _open(self, backend: STT, what: str) -> _Recognition:
        return _Recognition(self._stream(backend, what), what, self.timeout_s)

    async def _push(self, recognition: _Recognition, pcm: bytes) -> None:
        step = _RATE * 2 * self.chunk_ms // 1000
        for i in range(0, len(pcm), step):
            recognition.stream.push_audio(pcm[i : i + step])
            await asyncio.sleep(self.chunk_ms / 1000 if self.realtime else 0)

    async def _recognize(self, backend: STT, pcm: bytes, what: str) -> list[Any]:
        """Push ``pcm``, ``end_input()``, and return every event until the stream ends."""
        __tracebackhide__ = True
        async with self._open(backend, what) as recognition:
            await self._push(recognition, pcm)
            return await recognition.end()

    def _check_heard(self, final: Final, expected: Sequence[str], what: str) -> None:
        expect(final.text.strip(), f"{what}: {describe(final)} has no text; emit no Final when nothing was heard")
        if expected:
            heard = set(re.findall(r"\w+", final.text.lower()))
            expect(
                heard & {w.lower() for w in expected},
                f"{what}: {describe(final)} has none of the words {list(expected)}",
            )

    def test_streams_at_16k(self, backend: STT) -> None:
        """16000 is among ``capabilities.sample_rates``: the engine streams 16 kHz audio to every STT."""
        rates = backend.capabilities.sample_rates
        expect(_RATE in rates, f"capabilities.sample_rates is {rates}: the engine streams 16000 Hz audio to the STT")

    @pytest.mark.asyncio
    async def test_stream_is_context_manager_closeable_twice(self, backend: STT) -> None:
        """A stream is an async context manager whose ``__aenter__`` returns the stream; ``aclose()`` after the
        block, twice, is harmless."""
        stream = self._stream(backend, "stream()")
        entered = await within(self.timeout_s, "entering the stream (async with)", stream.__aenter__())
        expect(entered is stream, f"the stream's __aenter__ returned {entered!r}, not the stream itself")
        await within(self.timeout_s, "leaving the stream (async with)", stream.__aexit__(None, None, None))
        await within(self.timeout_s, "aclose() after the stream's block", stream.aclose())
        await within(self.timeout_s, "a second aclose() after the stream's block", stream.aclose())

    @pytest.mark.asyncio
    async def test_close_without_end_input(self, backend: STT, utterance: Utterance) -> None:
        """Leaving a stream in the middle of an utterance, without ``end_input()``, returns within ``timeout_s``
        (barge-in, Ctrl-C)."""
        stream = self._stream(backend, "stream()")
        await within(self.timeout_s, "entering the stream (async with)", stream.__aenter__())
        stream.push_audio(utterance.pcm[: len(utterance.pcm) // 2])
        await asyncio.sleep(0.05)
        what = "leaving the stream in the middle of an utterance, without end_input()"
        await within(self.timeout_s, what, stream.__aexit__(None, None, None))
        await within(self.timeout_s, "aclose() after leaving the stream mid-utterance", stream.aclose())

    @pytest.mark.asyncio
    async def test_speech_gives_one_final(self, backend: STT, utterance: Utterance) -> None:
        """One utterance, then ``end_input()``: the events end within ``timeout_s``, with exactly one ``Final``,
        whose text is not empty and holds one of the expected words."""
        pcm, expected = utterance.pcm, utterance.words
        what = "one utterance then end_input()"
        events = await self._recognize(backend, pcm, what)
        finals = [e for e in events if isinstance(e, Final)]
        expect(len(finals) == 1, f"{what} gave {len(finals)} Finals, expected exactly one: {short(events)}")
        self._check_heard(finals[0], expected, what)

    @pytest.mark.asyncio
    async def test_events_are_typed_and_in_order(self, backend: STT, utterance: Utterance) -> None:
        """Only STT events of ``voicekit.events``, stamped with ``voicekit.clock.now()`` in order; ``Interim``
        only with ``capabilities.interim_results`` and never after the ``Final``; ``SpeechStarted`` before it."""
        start = now()
        what = "the STT stream"
        events = await self._recognize(backend, utterance.pcm, "one utterance then end_input()")
        for event in events:
            expect(
                isinstance(event, _STT_EVENTS),
                f"{what} yielded {describe(event)}, which is not an STT event "
                "(SpeechStarted, SpeechEnded, Interim, Final, UtteranceEnd)",
            )
        check_stamps(events, start, what)
        kinds = [type(e) for e in events]
        if Interim in kinds:
            expect(
                backend.capabilities.interim_results,
                f"{what} yielded {describe(events[kinds.index(Interim)])}, but capabilities.interim_results is not set",
            )
        if Final in kinds:
            final_at = kinds.index(Final)
            late = [e for e in events[final_at:] if isinstance(e, Interim)]
            expect(
                not late,
                f"{describe(late[0]) if late else ''} after {describe(events[final_at])}: the engine takes an Interim "
                "for new speech (a barge-in), so none may follow the utterance's Final",
            )
            if SpeechStarted in kinds:
                expect(
                    kinds.index(SpeechStarted) < final_at,
                    f"SpeechStarted after {describe(events[final_at])}: speech onset comes before the Final",
                )

    @pytest.mark.asyncio
    async def test_empty_input_gives_no_final(self, backend: STT) -> None:
        """``end_input()`` with no audio at all: the events end within ``timeout_s``, and there is no ``Final``."""
        what = "end_input() without audio"
        events = await self._recognize(backend, b"", what)
        finals = [e for e in events if isinstance(e, Final)]
        expect(not finals, f"{what} gave {describe(finals[0]) if finals else ''}: no audio means no Final")

    @pytest.mark.asyncio
    async def test_silence_gives_no_final(self, backend: STT) -> None:
        """``silence_s`` (1 s) of digital silence, then ``end_input()``: the events end, with no ``Final``
        (not even one with empty text)."""
        what = f"{self.silence_s:g} s of silence then end_input()"
        events = await self._recognize(backend, bytes(int(_RATE * self.silence_s) * 2), what)
        finals = [e for e in events if isinstance(e, Final)]
        expect(not finals, f"{what} gave {describe(finals[0]) if finals else ''}: silence means no Final")

    @pytest.mark.asyncio
    async def test_final_without_end_input(self, backend: STT, utterance: Utterance) -> None:
        """An utterance followed by ``pause_s`` (2 s) of silence gets its ``Final`` without ``end_input()``, and a
        second one after it gets a second ``Final``: the engine keeps one stream open for the whole conversation
        and answers at each ``Final``."""
        pcm, expected = utterance.pcm, utterance.words
        pause = bytes(int(_RATE * self.pause_s) * 2)
        async with self._open(backend, "two utterances in one stream") as recognition:
            await self._push(recognition, pcm + pause)
            if not await recognition.wait_for_final(1, self.timeout_s):
                fail(
                    f"no Final within {self.timeout_s:g} s of an utterance followed by {self.pause_s:g} s of "
                    f"silence, without end_input(); got {short(recognition.events)}: the engine keeps the stream "
                    "open for the whole conversation, so each utterance must end on its own"
                )
            self._check_heard(recognition.finals()[0], expected, "the first of two utterances")
            await self._push(recognition, pcm + pause)
            events = await recognition.end()
        finals = [e for e in events if isinstance(e, Final)]
        expect(
            len(finals) == 2,
            f"two utterances {self.pause_s:g} s apart gave {len(finals)} Finals, expected one each: {short(events)}",
        )
        self._check_heard(finals[1], expected, "the second of two utterances")


__all__ = ["STTContract"]
