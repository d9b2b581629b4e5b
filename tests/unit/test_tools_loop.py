"""The tool loop in the engine: a model that calls tools, with real conversations and real
tools (typed Python functions) — results spoken, parallel calls, failures, timeouts, the
round limit, barge-in during a slow tool, the filler, history, and LLMs without tools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from voicekit.audio.sinks import NullSink
from voicekit.engine.conversation import Conversation
from voicekit.engine.tools import ToolLoop, plain_history
from voicekit.errors import BackendError
from voicekit.events import BotSentence, BotTurn, Event, LLMDone, LLMEvent, TextDelta, ToolCall, ToolResult, TurnMetrics
from voicekit.options import BackendOptions
from voicekit.roles import LLM, Capabilities, Message, ToolSpec
from voicekit.testing.scripted import NullOutput, ScriptedLLM, ScriptedOutput
from voicekit.tools.toolbox import Toolbox


class ToolUser(LLM):
    """A model stand-in that calls the tools it is told to, then reads the results out.

    ``plan`` lists, per round, the calls to make (name, JSON arguments); once the plan is
    used up, or with no tools offered, it answers "Results: <each result>." or, without
    results, "No tools."
    """

    Options: ClassVar[type[BackendOptions]] = BackendOptions
    capabilities = Capabilities(tools=True)

    def __init__(self, plan: list[list[tuple[str, str]]], *, say_first: str = "", fail_once_on: int | None = None):
        super().__init__()
        self.plan = plan
        self.say_first = say_first
        self.fail_once_on = fail_once_on
        self.calls: list[tuple[list[Message], str, tuple[str, ...]]] = []

    async def respond(
        self, history: Sequence[Message], user_text: str, *, tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]:
        self.calls.append((list(history), user_text, tuple(t.name for t in tools)))
        if self.fail_once_on == len(self.calls):
            self.fail_once_on = None
            raise BackendError("the model's service dropped the connection", retryable=True)
        rounds = [m for m in history if m.tool_calls]
        after_user = [m for m in rounds if history.index(m) > max(i for i, h in enumerate(history) if h.role == "user")]
        step = len(after_user)
        await asyncio.sleep(0)
        if tools and step < len(self.plan):
            if self.say_first and step == 0:
                yield TextDelta(self.say_first)
            for index, (name, arguments) in enumerate(self.plan[step]):
                yield ToolCall(f"call-{step}-{index}", name, arguments)
            yield LLMDone(self.say_first if step == 0 else "")
            return
        results = [r.content for m in after_user for r in m.tool_results]
        text = f"Results: {'; '.join(results)}." if results else "No tools."
        yield TextDelta(text)
        yield LLMDone(text)


async def lines(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


def conversation(
    llm: LLM, tools: Toolbox, *texts: str, events: list[Event], **loop: Any
) -> tuple[Conversation, ToolLoop]:
    conv = Conversation(
        llm=llm,
        output=NullOutput(),
        sink=NullSink(24000, realtime=False),
        text_input=lines(*texts),
        observers=[events.append],
    )
    tool_loop = ToolLoop(tools, emit=conv.emit, history=conv.history, **loop)
    conv.add_observer(tool_loop.on_event)
    assert conv.replier is not None
    conv.replier.tools = tool_loop
    return conv, tool_loop


def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


async def test_the_model_calls_a_tool_and_speaks_its_result() -> None:
    events: list[Event] = []
    llm = ToolUser([[("weather", '{"city": "Paris"}')]], say_first="Let me look.")
    conv, _ = conversation(llm, Toolbox.of([weather]), "weather in Paris?", events=events)
    result = await conv.run()
    assert [type(e).__name__ for e in events if isinstance(e, (ToolCall, ToolResult))] == ["ToolCall", "ToolResult"]
    done = next(e for e in events if isinstance(e, ToolResult))
    assert (done.name, done.content, done.status) == ("weather", "sunny in Paris", "ok")
    spoken = [e.text for e in events if isinstance(e, BotSentence)]
    assert spoken == ["Let me look.", "Results: sunny in Paris."], "what came before the call is said first"
    assert [m.role for m in result.history] == ["user", "assistant", "assistant"]
    tool_round = result.history[1]
    assert [c.name for c in tool_round.tool_calls] == ["weather"]
    assert [r.content for r in tool_round.tool_results] == ["sunny in Paris"]
    assert result.history[2].text == "Let me look. Results: sunny in Paris."
    assert llm.calls[0][2] == ("weather",) and llm.calls[1][1] == "", "the follow-up adds no user message"
    metrics = next(e for e in events if isinstance(e, TurnMetrics))
    assert metrics.tool_ms is not None and metrics.tool_ms >= 0


async def test_calls_of_one_round_run_in_parallel() -> None:
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def left() -> str:
        """Waits for right to start."""
        started["a"].set()
        await started["b"].wait()  # run one after the other, this would wait for ever
        return "left done"

    async def right() -> str:
        """Waits for left to start."""
        started["b"].set()
        await started["a"].wait()
        return "right done"

    events: list[Event] = []
    llm = ToolUser([[("left", "{}"), ("right", "{}")]])
    conv, _ = conversation(llm, Toolbox.of([left, right]), "both", events=events, timeout_s=30)
    await asyncio.wait_for(conv.run(), 30)
    results = [e for e in events if isinstance(e, ToolResult)]
    assert sorted((r.content, r.status) for r in results) == [("left done", "ok"), ("right done", "ok")]
    history_round = next(m for m in conv.history if m.tool_calls)
    assert [r.id for r in history_round.tool_results] == ["call-0-0", "call-0-1"], "results in the calls' order"


async def test_failing_unknown_and_badly_called_tools_are_results_not_errors() -> None:
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("the disk is on fire")

    events: list[Event] = []
    plan = [[("broken", "{}"), ("nonexistent", "{}"), ("weather", '{"town": "Paris"}'), ("weather", "{not json")]]
    conv, _ = conversation(ToolUser(plan), Toolbox.of([broken, weather]), "go", "and again", events=events)
    result = await conv.run()
    first_round = sorted((e for e in events if isinstance(e, ToolResult)), key=lambda r: r.id)[:4]
    statuses = [(e.name, e.status) for e in first_round]
    assert statuses == [("broken", "error"), ("nonexistent", "error"), ("weather", "error"), ("weather", "error")]
    contents = [e.content for e in first_round]
    assert "RuntimeError: the disk is on fire" in contents[0]
    assert "no tool called 'nonexistent'" in contents[1] and "weather" in contents[1]
    assert "city" in contents[2] and "town" in contents[2]
    assert "not valid JSON" in contents[3]
    assert len([e for e in events if isinstance(e, BotTurn)]) == 2, "the conversation went on to the next turn"
    assert result.history[-1].text.startswith("Results: error: RuntimeError: the disk is on fire")


async def test_a_tool_that_does_not_answer_times_out() -> None:
    cancelled = asyncio.Event()

    async def hang() -> str:
        """Never answers."""
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "never"

    events: list[Event] = []
    conv, _ = conversation(ToolUser([[("hang", "{}")]]), Toolbox.of([hang]), "go", events=events, timeout_s=0.2)
    await asyncio.wait_for(conv.run(), 30)
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.status == "timeout" and "0.2 s" in result.content
    assert cancelled.is_set(), "the timed-out call was cancelled"
    assert next(e for e in events if isinstance(e, BotTurn)).text.startswith("Results: error: the tool did not answer")


async def test_rounds_are_bounded_and_the_last_call_gets_no_tools() -> None:
    count = {"n": 0}

    def tick() -> str:
        """Counts."""
        count["n"] += 1
        return str(count["n"])

    events: list[Event] = []
    llm = ToolUser([[("tick", "{}")]] * 10)
    conv, _ = conversation(llm, Toolbox.of([tick]), "go", events=events, max_rounds=2)
    await conv.run()
    assert count["n"] == 2
    assert [offered for _, _, offered in llm.calls] == [("tick",), ("tick",), ()]
    assert next(e for e in events if isinstance(e, BotTurn)).text == "Results: 1; 2."


async def test_the_filler_is_said_while_a_slow_tool_runs() -> None:
    filler_said = asyncio.Event()

    async def slow() -> str:
        """Answers once the filler was said."""
        await asyncio.wait_for(filler_said.wait(), 10)
        return "finally"

    events: list[Event] = []

    def observe(event: Event) -> None:
        events.append(event)
        if isinstance(event, BotSentence) and event.text == "One moment.":
            filler_said.set()

    conv, _ = conversation(
        ToolUser([[("slow", "{}")]]), Toolbox.of([slow]), "go", events=[], filler="One moment.", filler_after_s=0.05
    )
    conv.add_observer(observe)
    await asyncio.wait_for(conv.run(), 30)
    assert [e.text for e in events if isinstance(e, BotSentence)] == ["One moment.", "Results: finally."]
    assert next(e for e in events if isinstance(e, ToolResult)).status == "ok"


async def test_barge_in_during_a_slow_tool_cancels_it() -> None:
    tool_started, tool_cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        """Takes for ever the first time."""
        if tool_started.is_set():
            return "quick the second time"
        tool_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            tool_cancelled.set()
            raise
        return "never"

    events: list[Event] = []
    more = asyncio.Event()

    async def typed() -> AsyncIterator[str]:
        yield "look it up"
        await more.wait()

    conv = Conversation(
        llm=ToolUser([[("slow", "{}")]], say_first="Let me look."),
        output=ScriptedOutput(ScriptedOutput.Options(ms_per_char=5)),
        sink=NullSink(24000, realtime=False),
        text_input=typed(),
        observers=[events.append],
        mode="full_duplex",
    )
    loop = ToolLoop(Toolbox.of([slow]), emit=conv.emit, history=conv.history, timeout_s=60)
    conv.add_observer(loop.on_event)
    assert conv.replier is not None
    conv.replier.tools = loop
    running = asyncio.ensure_future(conv.run())
    await asyncio.wait_for(tool_started.wait(), 10)
    while conv.turns.current is None or not conv.turns.current.audio_started:  # "Let me look." is heard
        await asyncio.sleep(0.01)
    conv.submit_text("never mind")
    await asyncio.wait_for(tool_cancelled.wait(), 10)
    more.set()
    await asyncio.wait_for(running, 30)
    results = [e for e in events if isinstance(e, ToolResult)]
    assert [(r.name, r.status) for r in results] == [("slow", "cancelled"), ("slow", "ok")]
    first = next(e for e in events if isinstance(e, BotTurn))
    assert first.interrupted and first.text == "Let me look."
    rounds = [m for m in conv.history if m.tool_calls]
    assert [r.content for m in rounds for r in m.tool_results] == ["quick the second time"], (
        "a round cut by the user stays out of the history"
    )
    assert [m.text for m in conv.history if m.role == "user"] == ["look it up", "never mind"]


async def test_a_model_failure_after_a_round_does_not_run_the_tool_again() -> None:
    count = {"n": 0}

    def tick() -> str:
        """Counts."""
        count["n"] += 1
        return "ticked"

    events: list[Event] = []
    llm = ToolUser([[("tick", "{}")]], fail_once_on=2)  # the call after the tool round fails once
    conv, _ = conversation(llm, Toolbox.of([tick]), "go", events=events)
    await conv.run()
    assert count["n"] == 1
    assert next(e for e in events if isinstance(e, BotTurn)).text == "Results: ticked."


async def test_the_next_turn_sees_the_tool_round_and_an_llm_without_tools_sees_text_only() -> None:
    events: list[Event] = []
    llm = ToolUser([[("weather", '{"city": "Oslo"}')]])
    conv, _ = conversation(llm, Toolbox.of([weather]), "weather?", "thanks", events=events)
    await conv.run()
    second_history = llm.calls[-1][0]
    assert [m.role for m in second_history] == ["user", "assistant", "assistant"]
    assert second_history[1].tool_results[0].content == "sunny in Oslo"
    plain = plain_history(second_history)
    assert [(m.role, m.tool_calls) for m in plain] == [("user", ()), ("assistant", ())]


async def test_an_llm_without_tool_support_is_called_as_before() -> None:
    events: list[Event] = []
    llm = ScriptedLLM(ScriptedLLM.Options(replies=["Plain answer."]))  # its respond() takes no tools keyword
    conv, _ = conversation(llm, Toolbox.of([weather]), "weather?", events=events)
    result = await conv.run()
    assert result.history[-1].text == "Plain answer."
    assert not any(isinstance(e, (ToolCall, ToolResult)) for e in events)
