"""The conversation engine with scripted backends: streaming, turn-taking, barge-in, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from voicekit.audio.pcm import frame_bytes, silence, tone
from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine.conversation import Conversation
from voicekit.events import BargeIn, BotTurn, Event, LLMDone, TurnMetrics, UserTurn
from voicekit.testing.scripted import ScriptedLLM, ScriptedOutput, ScriptedSTT

RATE = 16000


def speech_like(ms: int) -> bytes:
    return tone(ms, RATE, hz=300, amplitude=0.3)


async def frames(pcm: bytes, *, realtime: bool, frame_ms: int = 20) -> AsyncIterator[bytes]:
    step = frame_bytes(RATE, frame_ms)
    start = now()
    for i, offset in enumerate(range(0, len(pcm), step)):
        if realtime:
            delay = start + i * frame_ms / 1000 - now()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        yield pcm[offset : offset + step].ljust(step, b"\0")


class TimedSink(AudioSink):
    """A paced sink that remembers when each chunk started playing."""

    def __init__(self, rate: int) -> None:
        super().__init__(rate, realtime=True)
        self.starts: list[float] = []

    def _write(self, pcm: bytes) -> None:
        self.starts.append(now())


def backends(reply: str, *, token_ms: float = 0, realtime_output: bool = False, transcripts=("hello there",)):
    stt = ScriptedSTT(ScriptedSTT.Options(transcripts=list(transcripts), min_silence_ms=300))
    llm = ScriptedLLM(ScriptedLLM.Options(replies=[reply, "Okay."], token_ms=token_ms, first_token_ms=20))
    out = ScriptedOutput(ScriptedOutput.Options(ms_per_char=30, realtime=realtime_output, first_audio_ms=10))
    return stt, llm, out


async def test_first_sentence_is_spoken_while_the_llm_still_writes() -> None:
    stt, llm, out = backends("One. " + " ".join(["word"] * 30) + ".", token_ms=30)
    events: list[Event] = []
    sink = TimedSink(24000)
    audio = silence(200, RATE) + speech_like(600) + silence(1500, RATE)
    conv = Conversation(
        stt=stt, llm=llm, output=out, sink=sink, source=frames(audio, realtime=True), observers=[events.append]
    )
    result = await conv.run()
    done = next(e for e in events if isinstance(e, LLMDone))
    assert sink.starts, "no bot audio was played"
    assert sink.starts[0] < done.t - 0.5, "first audio should play long before the LLM finishes"
    assert [m.text for m in result.history] == ["hello there", "One. " + " ".join(["word"] * 30) + "."]
    metrics = [e for e in events if isinstance(e, TurnMetrics)]
    assert len(metrics) == 1
    m = metrics[0]
    assert m.stt_ms is not None and m.llm_ttft_ms is not None and m.voice_to_voice_ms is not None
    assert 15 <= m.llm_ttft_ms < 200
    assert m.voice_to_voice_ms >= m.stt_ms


async def test_half_duplex_fast_input_answers_each_utterance_in_order() -> None:
    stt, llm, out = backends("Okay.", transcripts=("first", "second", "third"))
    llm = ScriptedLLM(ScriptedLLM.Options(replies=None))
    audio = b"".join(speech_like(400) + silence(700, RATE) for _ in range(3)) + silence(1000, RATE)
    conv = Conversation(
        stt=stt, llm=llm, output=out, sink=TimedSink(24000), source=frames(audio, realtime=False), fast=True
    )
    result = await conv.run()
    users = [m.text for m in result.history if m.role == "user"]
    bots = [m.text for m in result.history if m.role == "assistant"]
    assert users == ["first", "second", "third"]
    assert bots == ["You said: first.", "You said: second.", "You said: third."]


async def test_barge_in_stops_bot_audio_quickly_and_keeps_only_what_was_heard() -> None:
    reply = "This is the first sentence of a long answer. " + " ".join(
        f"Sentence number {i} goes on for a while." for i in range(12)
    )
    stt, llm, out = backends(reply, realtime_output=True, transcripts=("tell me a story", "stop"))
    sink = TimedSink(24000)
    events: list[Event] = []
    # user speaks, bot answers for ~2 s, user speaks again over it
    audio = speech_like(500) + silence(2500, RATE) + speech_like(600) + silence(1500, RATE)
    conv = Conversation(
        stt=stt,
        llm=llm,
        output=out,
        sink=sink,
        source=frames(audio, realtime=True),
        mode="full_duplex",
        observers=[events.append],
    )
    result = await conv.run()
    barge = [e for e in events if isinstance(e, BargeIn)]
    assert len(barge) == 1
    cut = next(e for e in events if isinstance(e, BotTurn) and e.interrupted)
    late = [t for t in sink.starts if barge[0].t + 0.15 < t < barge[0].t + 1.0]
    second_turn = next(e for e in events if isinstance(e, UserTurn) and e.text == "stop")
    assert not [t for t in late if t < second_turn.t], "bot audio kept playing more than 150 ms after barge-in"
    heard = result.history[1]
    assert heard.role == "assistant" and heard.interrupted and heard.text == cut.text
    assert heard.text and len(heard.text) < len(reply) - 20
    assert reply.startswith(heard.text.rstrip("…").split("…")[0].strip())
    assert result.history[2].text == "stop"


async def test_words_over_the_bot_without_speech_onset_are_answered_aloud() -> None:
    """A final transcript that barges in (no SpeechStarted came first) interrupts the old reply
    before the new one speaks: the interrupt never silences the new reply."""
    llm = ScriptedLLM(ScriptedLLM.Options(replies=["One long reply that takes a while. " * 4, "Okay then, I stop."]))
    out = ScriptedOutput(ScriptedOutput.Options(ms_per_char=10, realtime=True, sample_rate=16000))
    sink = TimedSink(16000)
    events: list[Event] = []
    done = asyncio.Event()

    async def typed() -> AsyncIterator[str]:
        yield "hello"
        await done.wait()

    conv = Conversation(
        llm=llm, output=out, sink=sink, text_input=typed(), mode="full_duplex", observers=[events.append]
    )

    def watch(event: Event) -> None:
        if isinstance(event, BotTurn) and event.turn == 2:
            done.set()

    conv.add_observer(watch)
    runner = asyncio.create_task(conv.run())
    while len(sink.starts) < 3:  # the bot is speaking
        await asyncio.sleep(0.005)
    before = len(sink.starts)
    conv.submit_text("stop")
    await asyncio.wait_for(done.wait(), 10)
    await asyncio.wait_for(runner, 10)
    turns = [e for e in events if isinstance(e, BotTurn)]
    assert [t.interrupted for t in turns] == [True, False]
    assert turns[1].text == "Okay then, I stop."
    assert len(sink.starts) > before + 1, "the new reply's audio reached the sink"


async def test_a_false_interruption_resumes_the_sentence_it_cut() -> None:
    """A noise over the bot (no words) pauses it; with no words after it, the voice says the
    rest of the sentence it was cut in, and the history holds that sentence whole."""
    from voicekit.engine.end_of_turn import TurnPolicy
    from voicekit.events import BotResumed

    first = "This is a rather long first sentence that keeps going for quite a while."
    stt = ScriptedSTT(ScriptedSTT.Options(transcripts=["tell me a story", ""], min_silence_ms=300))
    llm = ScriptedLLM(ScriptedLLM.Options(replies=[f"{first} Then a second one."], first_token_ms=20))
    out = ScriptedOutput(ScriptedOutput.Options(ms_per_char=30, realtime=True, first_audio_ms=10))
    sink = TimedSink(24000)
    events: list[Event] = []
    audio = speech_like(500) + silence(1500, RATE) + speech_like(300) + silence(4500, RATE)
    conv = Conversation(
        stt=stt, llm=llm, output=out, sink=sink, source=frames(audio, realtime=True), mode="full_duplex",
        policy=TurnPolicy(false_interruption_s=0.5), observers=[events.append],
    )  # fmt: skip
    result = await conv.run()
    (barge,) = [e for e in events if isinstance(e, BargeIn)]
    (resumed,) = [e for e in events if isinstance(e, BotResumed)]
    assert resumed.text and first.endswith(resumed.text) and resumed.text != first
    assert any(t > resumed.t for t in sink.starts), "the voice went on after the pause"
    (ended,) = [e for e in events if isinstance(e, BotTurn)]
    assert not ended.interrupted and ended.resumed == 1
    assert [m.text for m in result.history] == ["tell me a story", first]
    assert barge.t < resumed.t
