"""Contract tests: what every STT, LLM and Output backend must do, as pytest classes.

A backend's test module subclasses one class and gives it a single fixture, ``backend``,
an async fixture that yields a started backend::

    import pytest
    from voicekit.testing.contracts import OutputContract
    from voicekit_beep import BeepOutput

    class TestBeepOutput(OutputContract):
        @pytest.fixture
        async def backend(self):
            async with BeepOutput(BeepOutput.Options(pitch_hz=440)) as tts:
                yield tts

Every ``test_*`` method below then runs against it. The async tests need pytest-asyncio:
set ``asyncio_mode = "auto"`` in the ``[tool.pytest.ini_options]`` of your pyproject (or,
in strict mode, decorate your fixture with ``@pytest_asyncio.fixture``; the tests here
already carry ``@pytest.mark.asyncio``). Class attributes tune a contract for slow
services: ``timeout_s`` bounds every wait, and each class has its own inputs
(``sentences``, ``prompt``, ...) that a subclass may replace.

This module imports pytest; the rest of :mod:`voicekit.testing` does not.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar

import pydantic
import pytest

from voicekit.clock import now
from voicekit.events import (
    AudioOut,
    Final,
    Interim,
    LLMDone,
    SpeakingEnded,
    SpeakingStarted,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    UtteranceEnd,
)
from voicekit.roles import LLM, STT, Backend, Capabilities, Message, Output

__all__ = ["LLMContract", "OutputContract", "STTContract"]

_STT_EVENTS = (SpeechStarted, SpeechEnded, Interim, Final, UtteranceEnd)
_OUTPUT_EVENTS = (SpeakingStarted, AudioOut, SpeakingEnded)


async def _drain(events: AsyncIterable[Any], timeout: float, what: str) -> list[Any]:
    """Everything ``events`` yields until it ends; fails the test if it does not end in time."""
    collected: list[Any] = []

    async def collect() -> None:
        async for event in events:
            collected.append(event)

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        pytest.fail(f"{what} did not end within {timeout} s; got {len(collected)} events: {_short(collected)}")
    return collected


async def _next(events: AsyncIterator[Any], timeout: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(events.__anext__(), timeout)
    except TimeoutError:
        pytest.fail(f"{what}: no event within {timeout} s")
    except StopAsyncIteration:
        pytest.fail(f"{what}: ended early")


async def _feed(texts: Iterable[str], gap_s: float = 0.0) -> AsyncIterator[str]:
    """Sentences as the engine hands them over, optionally spaced like a streaming LLM."""
    for i, text in enumerate(texts):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        yield text


def _short(events: Sequence[Any], limit: int = 8) -> str:
    shown = [f"{type(e).__name__}({getattr(e, 'text', '')!r})" for e in events[:limit]]
    return ", ".join(shown) + (", ..." if len(events) > limit else "")


def _assert_stamped_in_order(events: Sequence[Any], since: float) -> None:
    last = since
    for event in events:
        assert isinstance(event.t, float), f"{event!r}: t must be a voicekit.clock.now() float"
        assert event.t >= last, f"timestamps go back in time at {event!r} (previous {last})"
        last = event.t
    assert last <= now(), "an event is stamped in the future: use voicekit.clock.now(), not time.time()"


class _BackendContract:
    """What every backend, whatever its role, must do."""

    role: ClassVar[str]
    base: ClassVar[type[Backend]]
    #: upper bound of every wait, in seconds
    timeout_s: ClassVar[float] = 30.0

    @pytest.fixture
    def backend(self) -> Any:
        """Override in your subclass: an async fixture yielding a started backend."""
        pytest.fail(f"{type(self).__name__}: define a `backend` fixture that yields a started backend")

    def test_role(self, backend: Backend) -> None:
        """The backend subclasses the role class its contract is for."""
        assert isinstance(backend, self.base), f"{type(backend).__name__} must subclass {self.base.__qualname__}"
        assert backend.role == self.role

    def test_capabilities_declared(self, backend: Backend) -> None:
        """``capabilities`` is a :class:`voicekit.roles.Capabilities` with sample rates the engine can use."""
        caps = type(backend).capabilities
        assert isinstance(caps, Capabilities), "capabilities must be a voicekit.roles.Capabilities"
        assert all(isinstance(r, int) and r > 0 for r in caps.sample_rates), caps.sample_rates
        assert all(isinstance(lang, str) and lang for lang in caps.languages), caps.languages

    def test_options_forbid_unknown_keys(self, backend: Backend) -> None:
        """``Options`` is a pydantic model that rejects unknown keys, so a typo in a profile is an error."""
        options_cls = type(backend).Options
        assert issubclass(options_cls, pydantic.BaseModel), "Options must be a pydantic model (BackendOptions)"
        assert isinstance(backend.options, options_cls), "the backend must keep its Options instance in .options"
        with pytest.raises(pydantic.ValidationError) as caught:
            options_cls.model_validate({**backend.options.model_dump(), "no_such_option_xyz": 1})
        errors = caught.value.errors()
        assert any(e["type"] == "extra_forbidden" for e in errors), f"unknown key not rejected as such: {errors}"

    def test_options_are_documented(self, backend: Backend) -> None:
        """Every option has a description (``Field(..., description=...)``): ``voicekit plugins`` shows them."""
        undocumented = [n for n, f in type(backend).Options.model_fields.items() if not f.description]
        assert not undocumented, f"options without a description: {undocumented}"

    @pytest.mark.asyncio
    async def test_aclose_twice(self, backend: Backend) -> None:
        """``aclose()`` may be called twice (the engine and a ``finally`` may both close)."""
        await backend.aclose()
        await backend.aclose()


class STTContract(_BackendContract):
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

    @pytest.fixture
    def speech(self) -> tuple[bytes, Sequence[str]]:
        """One spoken utterance and words its transcript must contain (one of them)."""
        try:
            from voicekit.testing.speech import synthesize

            return synthesize("hello world, this is a test", "en"), ("hello", "world", "this", "test")
        except ImportError as exc:
            pytest.fail(f"override the `speech` fixture, or install voicekit[offline] for the default one ({exc})")

    async def _recognize(self, backend: STT, pcm: bytes) -> list[Any]:
        step = 16000 * 2 * self.chunk_ms // 1000
        stream = backend.stream(sample_rate=16000)
        async with stream:
            reader = asyncio.ensure_future(_drain(stream, self.timeout_s, "the STT stream"))
            try:
                for i in range(0, len(pcm), step):
                    stream.push_audio(pcm[i : i + step])
                    await asyncio.sleep(self.chunk_ms / 1000 if self.realtime else 0)
                stream.end_input()
                return await reader
            finally:
                reader.cancel()

    def test_streams_at_16k(self, backend: STT) -> None:
        """STT input is 16 kHz: the backend declares it in ``capabilities.sample_rates``."""
        assert 16000 in type(backend).capabilities.sample_rates

    @pytest.mark.asyncio
    async def test_stream_is_context_manager_closeable_twice(self, backend: STT) -> None:
        """A stream is an async context manager; ``aclose()`` after the block, twice, is harmless."""
        stream = backend.stream(sample_rate=16000)
        async with stream as entered:
            assert entered is stream, "__aenter__ must return the stream itself"
        await stream.aclose()
        await stream.aclose()

    @pytest.mark.asyncio
    async def test_close_without_end_input(self, backend: STT, speech: tuple[bytes, Sequence[str]]) -> None:
        """Leaving the stream mid-utterance (no ``end_input``) returns promptly and cleanly (barge-in, Ctrl-C)."""
        stream = backend.stream(sample_rate=16000)

        async def half_way() -> None:
            async with stream:
                stream.push_audio(speech[0][: len(speech[0]) // 2])
                await asyncio.sleep(0.05)

        await asyncio.wait_for(half_way(), self.timeout_s)
        await stream.aclose()

    @pytest.mark.asyncio
    async def test_speech_gives_one_final(self, backend: STT, speech: tuple[bytes, Sequence[str]]) -> None:
        """One utterance then ``end_input``: the events end, with exactly one ``Final`` holding an expected word."""
        pcm, expected = speech
        events = await self._recognize(backend, pcm)
        finals = [e for e in events if isinstance(e, Final)]
        assert len(finals) == 1, f"one utterance must give exactly one Final, got {len(finals)}: {_short(events)}"
        if expected:
            heard = set(re.findall(r"\w+", finals[0].text.lower()))
            assert heard & {w.lower() for w in expected}, f"{finals[0].text!r} has none of the words {list(expected)}"

    @pytest.mark.asyncio
    async def test_events_are_typed_and_in_order(self, backend: STT, speech: tuple[bytes, Sequence[str]]) -> None:
        """Only voicekit STT events, stamped with increasing ``voicekit.clock.now()`` times.

        Interims only from a backend that declares ``interim_results``, and speech onset
        (if reported) before the Final.
        """
        start = now()
        events = await self._recognize(backend, speech[0])
        for event in events:
            assert isinstance(event, _STT_EVENTS), f"{event!r} is not an STT event of voicekit.events"
        _assert_stamped_in_order(events, start)
        if not type(backend).capabilities.interim_results:
            assert not any(isinstance(e, Interim) for e in events), "Interim events need capabilities.interim_results"
        kinds = [type(e) for e in events]
        if SpeechStarted in kinds and Final in kinds:
            assert kinds.index(SpeechStarted) < kinds.index(Final), "SpeechStarted must come before the Final"

    @pytest.mark.asyncio
    async def test_empty_input_gives_no_final(self, backend: STT) -> None:
        """``end_input`` with no audio at all: the events end and there is no ``Final``."""
        events = await self._recognize(backend, b"")
        assert not any(isinstance(e, Final) for e in events), f"no audio must give no Final: {_short(events)}"


class LLMContract(_BackendContract):
    """The LLM contract: streaming, history, cancellation."""

    role: ClassVar[str] = "llm"
    base: ClassVar[type[Backend]] = LLM
    #: the user's text of every test turn
    prompt: ClassVar[str] = "Say hello in three words."
    #: a history with both roles and an interrupted bot turn
    history: ClassVar[tuple[Message, ...]] = (
        Message("user", "Hi, who are you?"),
        Message("assistant", "I am a voice assistant. How can I help?"),
        Message("user", "Tell me a long story."),
        Message("assistant", "Once upon a time", interrupted=True),
    )

    async def _reply(self, backend: LLM, history: Sequence[Message]) -> list[Any]:
        start = now()
        events = await _drain(backend.respond(history, self.prompt), self.timeout_s, "respond()")
        assert events, "respond() yielded nothing"
        for event in events:
            assert isinstance(event, (TextDelta, LLMDone)), f"{event!r} is not a TextDelta or LLMDone"
        deltas = [e for e in events if isinstance(e, TextDelta)]
        done = [e for e in events if isinstance(e, LLMDone)]
        assert deltas, "the reply must stream at least one TextDelta"
        assert len(done) == 1 and events[-1] is done[0], f"exactly one LLMDone, last: {_short(events)}"
        assert done[0].text == "".join(d.text for d in deltas), "LLMDone.text must be the deltas joined"
        _assert_stamped_in_order(events, start)
        return events

    @pytest.mark.asyncio
    async def test_respond_streams_deltas_then_done(self, backend: LLM) -> None:
        """A reply streams ≥1 ``TextDelta`` and then one ``LLMDone`` whose text is the deltas joined."""
        await self._reply(backend, [])

    @pytest.mark.asyncio
    async def test_history_accepted(self, backend: LLM) -> None:
        """A history of user and assistant turns, one of them interrupted, is accepted."""
        await self._reply(backend, list(self.history))

    @pytest.mark.asyncio
    async def test_stop_reading_mid_stream(self, backend: LLM) -> None:
        """Closing the reply after its first delta is clean, and the next reply works."""
        reply = backend.respond([], self.prompt)
        first = await _next(reply, self.timeout_s, "respond()")
        assert isinstance(first, TextDelta), f"the first event must be a TextDelta, got {first!r}"
        aclose = getattr(reply, "aclose", None)
        if aclose is not None:
            await asyncio.wait_for(aclose(), self.timeout_s)
        await self._reply(backend, [])

    @pytest.mark.asyncio
    async def test_cancel_mid_stream(self, backend: LLM) -> None:
        """Cancelling the task that reads a reply (barge-in) raises only ``CancelledError``; the next reply works."""
        started = asyncio.Event()

        async def read() -> None:
            async for event in backend.respond([], self.prompt):
                if isinstance(event, TextDelta):
                    started.set()

        task = asyncio.ensure_future(read())
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait([task, waiter], timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        assert started.is_set() or task.done(), f"no TextDelta within {self.timeout_s} s"
        task.cancel()
        try:
            await asyncio.wait_for(task, self.timeout_s)
        except asyncio.CancelledError:
            pass
        await self._reply(backend, [])


class OutputContract(_BackendContract):
    """The Output contract: sentence framing, audio format, interruption."""

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

    def _check_turn(self, backend: Output, events: Sequence[Any], sentences: Sequence[str]) -> None:
        """Per sentence, in order: SpeakingStarted(text), AudioOut..., SpeakingEnded(text)."""
        produces_audio = type(backend).capabilities.produces_audio
        done, speaking, audio = 0, False, 0
        for event in events:
            assert isinstance(event, _OUTPUT_EVENTS), f"{event!r} is not an output event of voicekit.events"
            if isinstance(event, SpeakingStarted):
                assert not speaking, f"SpeakingStarted before the previous SpeakingEnded: {_short(events)}"
                assert done < len(sentences), f"more sentences spoken than given: {_short(events)}"
                assert event.text.strip() == sentences[done].strip(), f"{event.text!r} != {sentences[done]!r}"
                speaking, audio = True, 0
            elif isinstance(event, AudioOut):
                assert speaking, "AudioOut outside a SpeakingStarted/SpeakingEnded pair"
                assert event.sample_rate == backend.sample_rate, (
                    f"AudioOut at {event.sample_rate} Hz, but the backend declares sample_rate={backend.sample_rate}"
                )
                assert isinstance(event.pcm, bytes) and event.pcm, "AudioOut.pcm must be non-empty bytes"
                assert len(event.pcm) % 2 == 0, "AudioOut.pcm must be whole int16 samples (even length)"
                audio += 1
            else:
                assert speaking, "SpeakingEnded without SpeakingStarted"
                assert event.text.strip() == sentences[done].strip(), f"{event.text!r} != {sentences[done]!r}"
                assert audio or not produces_audio, f"no audio for {sentences[done]!r} (produces_audio is set)"
                speaking, done = False, done + 1
        assert not speaking and done == len(sentences), f"spoke {done} of {len(sentences)}: {_short(events)}"

    async def _speak(self, backend: Output, sentences: Sequence[str], gap_s: float = 0.0) -> list[Any]:
        start = now()
        events = await _drain(backend.speak(_feed(sentences, gap_s)), self.timeout_s, "speak()")
        self._check_turn(backend, events, sentences)
        _assert_stamped_in_order(events, start)
        return events

    async def _interrupted_turn(self, backend: Output) -> list[Any]:
        """Speak the long reply, interrupt at its first audio (or first sentence); return events after it."""
        produces_audio = type(backend).capabilities.produces_audio
        speech = backend.speak(_feed(self.long_sentences))
        while True:
            event = await _next(speech, self.timeout_s, "speak()")
            if isinstance(event, AudioOut) or (not produces_audio and isinstance(event, SpeakingStarted)):
                break
        await asyncio.wait_for(backend.interrupt(), self.timeout_s)
        return await _drain(speech, self.timeout_s, "speak() after interrupt()")

    def test_sample_rate_declared(self, backend: Output) -> None:
        """An output that produces audio lists its ``sample_rate`` in ``capabilities.sample_rates``."""
        assert isinstance(backend.sample_rate, int) and backend.sample_rate > 0
        if type(backend).capabilities.produces_audio:
            assert backend.sample_rate in type(backend).capabilities.sample_rates

    @pytest.mark.asyncio
    async def test_speak_two_sentences(self, backend: Output) -> None:
        """Two sentences give two SpeakingStarted/SpeakingEnded pairs in order, carrying each sentence's text,
        with ``AudioOut`` (even byte length, at the declared ``sample_rate``) only inside a pair."""
        await self._speak(backend, self.sentences)

    @pytest.mark.asyncio
    async def test_sentences_arriving_slowly(self, backend: Output) -> None:
        """Sentences that arrive 100 ms apart, as from a streaming LLM, are spoken the same way."""
        await self._speak(backend, self.sentences, gap_s=0.1)

    @pytest.mark.asyncio
    async def test_no_sentences(self, backend: Output) -> None:
        """A reply with no sentence at all yields no event and ends."""
        events = await _drain(backend.speak(_feed(())), self.timeout_s, "speak() of nothing")
        assert events == [], _short(events)

    @pytest.mark.asyncio
    async def test_interrupt_mid_speak(self, backend: Output) -> None:
        """After ``interrupt()`` the turn yields no more audio, starts no other sentence, and ends."""
        after = await self._interrupted_turn(backend)
        assert not [e for e in after if isinstance(e, (AudioOut, SpeakingStarted))], (
            f"speech went on after interrupt(): {_short(after)}"
        )

    @pytest.mark.asyncio
    async def test_speak_after_interrupt(self, backend: Output) -> None:
        """The turn after an interrupted one is spoken in full."""
        await self._interrupted_turn(backend)
        await self._speak(backend, self.sentences)

    @pytest.mark.asyncio
    async def test_interrupt_when_idle(self, backend: Output) -> None:
        """``interrupt()`` with nothing being spoken is harmless, and does not silence the next turn."""
        await asyncio.wait_for(backend.interrupt(), self.timeout_s)
        await self._speak(backend, self.sentences)
