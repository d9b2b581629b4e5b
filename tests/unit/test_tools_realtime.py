"""Tools with a speech-to-speech model: its stream yields tool calls, the engine runs them
beside it and sends the results back; calls the model withdraws are cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from voicekit.audio.sinks import NullSink
from voicekit.engine.conversation import Conversation
from voicekit.engine.tools import ToolLoop
from voicekit.events import (
    AudioOut,
    BotTurn,
    Event,
    LLMDone,
    RealtimeEvent,
    TextDelta,
    ToolCall,
    ToolCallsCancelled,
    ToolResult,
)
from voicekit.options import BackendOptions
from voicekit.roles import LLM, Capabilities, Message, RealtimeStream, ToolSpec
from voicekit.tools.toolbox import Toolbox


class ToolStream(RealtimeStream):
    """Answers each typed line by calling ``weather`` (and a ``hang`` it then withdraws)."""

    def __init__(self, tools: Sequence[ToolSpec], lines: int) -> None:
        self.offered = [t.name for t in tools]
        self.events: asyncio.Queue[RealtimeEvent | None] = asyncio.Queue()
        self.results: list[ToolResult] = []
        self.got_result = asyncio.Event()
        self.lines_left = lines

    async def send_text(self, text: str) -> None:
        asyncio.get_running_loop().create_task(self._answer(text))

    async def _answer(self, text: str) -> None:
        self.events.put_nowait(ToolCall("hang-1", "hang", "{}"))
        self.events.put_nowait(ToolCall("w-1", "weather", '{"city": "Oslo"}'))
        await self.got_result.wait()
        self.events.put_nowait(ToolCallsCancelled(("hang-1",)))
        answer = f"Results: {self.results[0].content}."
        self.events.put_nowait(TextDelta(answer))
        self.events.put_nowait(AudioOut(bytes(3200), 16000))
        self.events.put_nowait(LLMDone(answer))
        self.lines_left -= 1
        if not self.lines_left:
            await asyncio.sleep(0.05)
            self.events.put_nowait(None)

    async def send_tool_results(self, results: Sequence[ToolResult]) -> None:
        self.results += results
        self.got_result.set()

    def push_audio(self, pcm: bytes) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[RealtimeEvent]:  # type: ignore[override]
        while (event := await self.events.get()) is not None:
            yield event

    async def aclose(self) -> None:
        self.events.put_nowait(None)


class ToolRealtimeLLM(LLM):
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities = Capabilities(accepts_audio=True, produces_audio=True, tools=True)
    stream: ToolStream

    def realtime(self, history: Sequence[Message] = (), *, tools: Sequence[ToolSpec] = ()) -> RealtimeStream:
        self.stream = ToolStream(tools, lines=1)
        return self.stream


async def test_a_realtime_model_calls_tools_and_withdraws_one() -> None:
    hang_cancelled = asyncio.Event()

    async def hang() -> str:
        """Never answers."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            hang_cancelled.set()
            raise
        return "never"

    def weather(city: str) -> str:
        """The weather."""
        return f"rain in {city}"

    async def lines() -> AsyncIterator[str]:
        yield "weather in Oslo?"

    events: list[Event] = []
    llm = ToolRealtimeLLM()
    conversation = Conversation(
        llm=llm, sink=NullSink(16000, realtime=False), text_input=lines(), observers=[events.append]
    )
    assert conversation.realtime is not None
    loop = ToolLoop(Toolbox.of([hang, weather]), emit=conversation.emit, history=conversation.history, timeout_s=60)
    conversation.realtime.tools = loop
    await asyncio.wait_for(conversation.run(), 30)
    assert llm.stream.offered == ["hang", "weather"], "the stream was opened with the tools"
    assert [(r.name, r.content) for r in llm.stream.results] == [("weather", "rain in Oslo")]
    await asyncio.wait_for(hang_cancelled.wait(), 5)
    statuses = sorted((e.name, e.status) for e in events if isinstance(e, ToolResult))
    assert statuses == [("hang", "cancelled"), ("weather", "ok")]
    assert any(isinstance(e, ToolCallsCancelled) and e.ids == ("hang-1",) for e in events)
    (turn,) = [e for e in events if isinstance(e, BotTurn)]
    assert turn.text == "Results: rain in Oslo."


async def test_a_realtime_model_without_tool_support_is_opened_as_before() -> None:
    class Plain(ToolRealtimeLLM):
        capabilities = Capabilities(accepts_audio=True, produces_audio=True)

        def realtime(self, history: Sequence[Message] = (), **kwargs: Any) -> RealtimeStream:
            assert not kwargs, "a model without tools is opened without the keyword"
            self.stream = ToolStream((), lines=1)
            return self.stream

    async def lines() -> AsyncIterator[str]:
        yield "hello"

    llm = Plain()
    conversation = Conversation(llm=llm, sink=NullSink(16000, realtime=False), text_input=lines())
    assert conversation.realtime is not None
    conversation.realtime.tools = ToolLoop(Toolbox.of([]), emit=conversation.emit)
    task = asyncio.ensure_future(conversation.run())
    for _ in range(200):
        if getattr(llm, "stream", None) is not None:
            break
        await asyncio.sleep(0.01)
    assert llm.stream.offered == []
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
