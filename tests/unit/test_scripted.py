"""The scripted backends: what they say, and that their latencies are exact.

Timing assertions take the median of a few runs (the machine is shared) and allow
15 ms late, never early.
"""

from __future__ import annotations

import asyncio
import statistics
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
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
)
from voicekit.registry import get_plugin_manager, load_registry
from voicekit.roles import Message
from voicekit.testing.scripted import NullOutput, ScriptedLLM, ScriptedOutput, ScriptedSTT, split_reply

LATE_MS = 15.0
SR = 16000


def tone(ms: float, sample_rate: int = SR, amplitude: int = 8000) -> bytes:
    n = int(sample_rate * ms / 1000)
    return (np.sin(np.arange(n) * 2 * np.pi * 300 / sample_rate) * amplitude).astype("<i2").tobytes()


def silence(ms: float, sample_rate: int = SR) -> bytes:
    return bytes(2 * int(sample_rate * ms / 1000))


async def median_ms(measure: Callable[[], Awaitable[float]], runs: int = 5) -> float:
    return statistics.median([await measure() for _ in range(runs)])


def assert_on_time(measured_ms: float, target_ms: float) -> None:
    assert target_ms - 1.0 <= measured_ms <= target_ms + LATE_MS, f"{measured_ms:.1f} ms, wanted {target_ms} ms"


async def feed(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


async def recognize(stt: ScriptedSTT, chunks: list[bytes]) -> list[object]:
    async with stt.stream() as stream:
        for chunk in chunks:
            stream.push_audio(chunk)
        stream.end_input()
        return [e async for e in stream]


# --- registration ----------------------------------------------------------------------


def test_registered_under_their_profile_names() -> None:
    registry = load_registry(get_plugin_manager(load_entry_points=False))
    assert registry.backend_class("stt", "scripted") is ScriptedSTT
    assert registry.backend_class("llm", "scripted") is ScriptedLLM
    assert registry.backend_class("output", "scripted") is ScriptedOutput
    assert registry.backend_class("output", "silent") is NullOutput
    out = registry.create("output", "scripted", {"sample_rate": 16000})
    assert isinstance(out, ScriptedOutput) and out.sample_rate == 16000 and out.name == "scripted"


# --- ScriptedLLM ---------------------------------------------------------------------


async def test_llm_first_token_on_time() -> None:
    llm = ScriptedLLM(ScriptedLLM.Options(first_token_ms=100))

    async def measure() -> float:
        start = now()
        events = [e async for e in llm.respond([], "hi")]
        return (events[0].t - start) * 1000

    assert_on_time(await median_ms(measure), 100)


async def test_llm_token_spacing_does_not_drift() -> None:
    llm = ScriptedLLM(ScriptedLLM.Options(replies=["one two three four five six"], first_token_ms=20, token_ms=30))
    start = now()
    events = [e async for e in llm.respond([], "count")]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [d.text for d in deltas] == ["one ", "two ", "three ", "four ", "five ", "six"]
    assert_on_time((deltas[-1].t - start) * 1000, 20 + 5 * 30)  # deadlines from the call: no drift
    lateness = [(d.t - start) * 1000 - (20 + i * 30) for i, d in enumerate(deltas)]
    assert min(lateness) >= -1.0 and statistics.median(lateness) <= LATE_MS, lateness
    assert isinstance(events[-1], LLMDone) and events[-1].text == "one two three four five six"
    assert events[-1].t - deltas[-1].t < 0.005


async def test_llm_echoes_by_default_and_records_calls() -> None:
    llm = ScriptedLLM()
    history = [Message("user", "hi"), Message("assistant", "hello", interrupted=True)]
    events = [e async for e in llm.respond(history, "what time is it?")]
    assert events[-1] == LLMDone(text="You said: what time is it.", t=events[-1].t)
    assert [c.user_text for c in llm.calls] == ["what time is it?"]
    assert llm.calls[0].history == tuple(history)


async def test_llm_replies_cycle_in_order() -> None:
    llm = ScriptedLLM(ScriptedLLM.Options(replies=["A.", "B."], chunk="all"))
    texts = []
    for _ in range(3):
        events = [e async for e in llm.respond([], "x")]
        assert len(events) == 2  # one delta with everything, then done
        texts.append(events[-1].text)
    assert texts == ["A.", "B.", "A."]


@pytest.mark.parametrize("chunk", ["word", "char", "all"])
def test_split_reply_joins_back(chunk: str) -> None:
    text = "  Hello,  world!\nHow are you? "
    pieces = split_reply(text, chunk)  # type: ignore[arg-type]
    assert "".join(pieces) == text
    assert {"word": 5, "char": len(text), "all": 1}[chunk] == len(pieces)


async def test_llm_empty_reply_is_done_without_deltas() -> None:
    events = [e async for e in ScriptedLLM(ScriptedLLM.Options(replies=[""])).respond([], "x")]
    assert [type(e) for e in events] == [LLMDone]


# --- ScriptedSTT ---------------------------------------------------------------------


async def test_stt_final_delay_on_time() -> None:
    stt = ScriptedSTT(ScriptedSTT.Options(final_delay_ms=150))

    async def measure() -> float:
        events = await recognize(stt, [silence(100), tone(300), silence(400)])
        ended = next(e for e in events if isinstance(e, SpeechEnded))
        final = next(e for e in events if isinstance(e, Final))
        return (final.t - ended.t) * 1000

    assert_on_time(await median_ms(measure, runs=3), 150)


async def test_stt_segments_in_real_time() -> None:
    """Pushed at playing speed: onset within a frame, end min_silence_ms after the speech stopped."""
    stt = ScriptedSTT(ScriptedSTT.Options(min_silence_ms=200, final_delay_ms=50, interim=True))
    frames = [silence(20)] * 5 + [tone(20)] * 10 + [silence(20)] * 15

    async def run_once() -> tuple[float, float, float]:
        events: list[Any] = []
        async with stt.stream() as stream:
            reader = asyncio.ensure_future(_collect(stream, events))
            start = now()
            for i, frame in enumerate(frames):
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - now()))  # a frame is pushed once recorded
                stream.push_audio(frame)
            stream.end_input()
            await reader
        assert [type(e) for e in events] == [SpeechStarted, Interim, SpeechEnded, Final]
        started, interim, ended, final = events
        assert interim.text == "hello" and final.text == "hello there"
        onset = start + 6 * 0.02  # the first loud frame is pushed
        silence_began = start + 15 * 0.02  # the last loud frame was over
        return (started.t - onset) * 1000, (ended.t - silence_began) * 1000, (final.t - ended.t) * 1000

    runs = [await run_once() for _ in range(3)]
    assert_on_time(statistics.median(r[0] for r in runs), 0)
    assert_on_time(statistics.median(r[1] for r in runs), 200)
    assert_on_time(statistics.median(r[2] for r in runs), 50)


async def _collect(stream: AsyncIterator[object] | object, into: list[object]) -> None:
    async for event in stream:  # type: ignore[attr-defined]
        into.append(event)


async def test_stt_transcripts_cycle_across_segments_and_streams() -> None:
    stt = ScriptedSTT(ScriptedSTT.Options(transcripts=["one", "two"], min_silence_ms=100))
    burst = [tone(200), silence(150)]
    events = await recognize(stt, burst * 3)
    assert [e.text for e in events if isinstance(e, Final)] == ["one", "two", "one"]
    assert [type(e) for e in events].count(SpeechStarted) == 3
    events = await recognize(stt, burst)
    assert [e.text for e in events if isinstance(e, Final)] == ["two"]


async def test_stt_short_pause_keeps_one_segment() -> None:
    stt = ScriptedSTT(ScriptedSTT.Options(min_silence_ms=300))
    events = await recognize(stt, [tone(200), silence(250), tone(200), silence(400)])
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded, Final]


async def test_stt_end_of_input_flushes_open_segment() -> None:
    stt = ScriptedSTT(ScriptedSTT.Options(final_delay_ms=80))
    async with stt.stream() as stream:
        stream.push_audio(tone(300))
        await asyncio.sleep(0.01)
        ended_at = now()
        stream.end_input()
        events = [e async for e in stream]
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded, Final]
    assert_on_time((events[2].t - ended_at) * 1000, 80)


async def test_stt_silence_and_quiet_noise_give_nothing() -> None:
    stt = ScriptedSTT(ScriptedSTT.Options(speech_threshold=500))
    assert await recognize(stt, []) == []
    assert await recognize(stt, [silence(1000)]) == []
    assert await recognize(stt, [tone(500, amplitude=500)]) == []  # RMS ~354: below the threshold
    assert len(await recognize(stt, [tone(500, amplitude=1000)])) == 3  # RMS ~707: speech


async def test_stt_chunking_does_not_matter() -> None:
    pcm = silence(100) + tone(250) + silence(500) + tone(250)
    stt = ScriptedSTT(ScriptedSTT.Options(transcripts=["a", "b"]))
    whole = await recognize(stt, [pcm])
    odd = await recognize(stt, [pcm[i : i + 333] for i in range(0, len(pcm), 333)])
    assert [(type(e), getattr(e, "text", None)) for e in whole] == [(type(e), getattr(e, "text", None)) for e in odd]
    assert [e.text for e in whole if isinstance(e, Final)] == ["a", "b"]


async def test_stt_language_from_context() -> None:
    from voicekit.roles import BackendContext

    stt = ScriptedSTT(context=BackendContext(language="ru"))
    events = await recognize(stt, [tone(200)])
    assert isinstance(events[-1], Final) and events[-1].language == "ru"


def test_stt_cost_per_frame() -> None:
    """The per-frame work is a few microseconds (it sits in the benchmarks' audio path)."""
    stream = ScriptedSTT().stream()
    stream.emit = lambda event: None  # type: ignore[method-assign]
    quiet, loud = silence(20), tone(20)
    per_frame_us = min(timeit.repeat(lambda: (stream._feed(quiet), stream._feed(loud)), number=2000, repeat=3))
    per_frame_us = per_frame_us / 4000 * 1e6
    assert per_frame_us < 100, f"{per_frame_us:.1f} µs per 20 ms frame"  # ~6 µs on an idle core


# --- ScriptedOutput / NullOutput -------------------------------------------------------


async def test_output_first_audio_on_time() -> None:
    out = ScriptedOutput(ScriptedOutput.Options(first_audio_ms=100))

    async def measure() -> float:
        start = now()
        events = [e async for e in out.speak(feed("Hello."))]
        assert isinstance(events[0], SpeakingStarted) and isinstance(events[1], AudioOut)
        assert events[1].t - events[0].t < 0.002  # speaking starts with the first audio
        return (events[1].t - start) * 1000

    assert_on_time(await median_ms(measure), 100)


async def test_output_audio_length_format_and_loudness() -> None:
    out = ScriptedOutput(ScriptedOutput.Options(sample_rate=24000, ms_per_char=50, chunk_ms=20))
    events = [e async for e in out.speak(feed("Hello there.", "Bye."))]
    assert [type(e) for e in events if not isinstance(e, AudioOut)] == [
        SpeakingStarted,
        SpeakingEnded,
        SpeakingStarted,
        SpeakingEnded,
    ]
    first_end = next(i for i, e in enumerate(events) if isinstance(e, SpeakingEnded))
    audio = b"".join(e.pcm for e in events[:first_end] if isinstance(e, AudioOut))
    assert len(audio) == 2 * int(12 * 0.050 * 24000)  # 12 characters, 50 ms each
    chunks = [e for e in events if isinstance(e, AudioOut)]
    assert all(e.sample_rate == 24000 and len(e.pcm) == 960 for e in chunks[:-1])
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) > 5000  # far above any speech threshold
    assert out.sentences == ["Hello there.", "Bye."]


async def test_output_realtime_pacing() -> None:
    out = ScriptedOutput(ScriptedOutput.Options(realtime=True, ms_per_char=20, chunk_ms=20))
    events = [e async for e in out.speak(feed("0123456789"))]  # 200 ms of audio, 10 chunks
    chunks = [e for e in events if isinstance(e, AudioOut)]
    assert len(chunks) == 10
    assert_on_time((chunks[-1].t - chunks[0].t) * 1000, 180)
    assert_on_time((events[-1].t - chunks[0].t) * 1000, 200)  # ended when the last chunk has played


async def test_output_interrupt_is_immediate() -> None:
    out = ScriptedOutput(ScriptedOutput.Options(first_audio_ms=500))
    events: list[object] = []
    task = asyncio.ensure_future(_collect(out.speak(feed("Never heard.")), events))
    await asyncio.sleep(0.05)
    interrupted = now()
    await out.interrupt()
    await asyncio.wait_for(task, 1)
    assert (now() - interrupted) * 1000 < 5
    assert events == [] and out.sentences == ["Never heard."] and len(out.interrupts) == 1


async def test_output_interrupt_mid_realtime_sentence_then_speak_again() -> None:
    out = ScriptedOutput(ScriptedOutput.Options(realtime=True, ms_per_char=30))
    speech = out.speak(feed("A long sentence to cut.", "Another."))
    got = [await speech.__anext__(), await speech.__anext__()]
    assert [type(e) for e in got] == [SpeakingStarted, AudioOut]
    pending = asyncio.ensure_future(speech.__anext__())  # waiting for the next paced chunk
    await asyncio.sleep(0.005)
    await out.interrupt()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 0.05)
    events = [e async for e in out.speak(feed("Again."))]
    assert isinstance(events[-1], SpeakingEnded) and events[-1].text == "Again."
    assert out.sentences == ["A long sentence to cut.", "Again."]


async def test_output_speech_is_heard_by_scripted_stt() -> None:
    """What ScriptedOutput says, ScriptedSTT hears: the loop barge-in tests rely on."""
    out = ScriptedOutput(ScriptedOutput.Options(sample_rate=SR))
    pcm = b"".join([e.pcm async for e in out.speak(feed("Hi there.")) if isinstance(e, AudioOut)])
    events = await recognize(ScriptedSTT(ScriptedSTT.Options(transcripts=["echo"])), [pcm, silence(400)])
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded, Final]


async def test_null_output_speaks_nothing() -> None:
    out = NullOutput()
    events = [e async for e in out.speak(feed("One.", "Two."))]
    assert [(type(e), e.text) for e in events] == [
        (SpeakingStarted, "One."),
        (SpeakingEnded, "One."),
        (SpeakingStarted, "Two."),
        (SpeakingEnded, "Two."),
    ]
    assert out.sentences == ["One.", "Two."]


def test_testing_kit_is_lazy_and_needs_no_pytest() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest'] = None\n"  # as if pytest were not installed
        "import voicekit.testing as kit\n"
        "assert 'voicekit.testing.scripted' not in sys.modules and 'numpy' not in sys.modules\n"
        "assert kit.ScriptedSTT.__name__ == 'ScriptedSTT' and kit.NullOutput.__name__ == 'NullOutput'\n"
        "assert kit.WavSource.__module__ == 'voicekit.audio.wav' and callable(kit.synthesize)\n"
        "try:\n    kit.STTContract\nexcept ImportError:\n    print('contracts need pytest')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "contracts need pytest"
