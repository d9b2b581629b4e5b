"""The LLM contract: streaming, history, and what barge-in does to a reply."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from voicekit.clock import now
from voicekit.events import LLMDone, TextDelta
from voicekit.roles import LLM, Backend, Message
from voicekit.testing.contracts._support import (
    BackendContract,
    call,
    check_stamps,
    clip,
    describe,
    drain,
    expect,
    fail,
    next_event,
    short,
    within,
)


class LLMContract(BackendContract):
    """The LLM contract: streaming, history, replies in a row, and cancellation."""

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

    async def _reply(self, backend: LLM, history: Sequence[Message], what: str = "respond()") -> list[Any]:
        """One whole reply, checked: TextDeltas, then exactly one LLMDone holding them all."""
        __tracebackhide__ = True
        start = now()
        events = await drain(call(what, backend.respond, history, self.prompt), self.timeout_s, what)
        expect(events, f"{what} ended without yielding anything; a reply is TextDelta events, then one LLMDone")
        for event in events:
            expect(
                isinstance(event, (TextDelta, LLMDone)),
                f"{what} yielded {describe(event)}, which is neither a TextDelta nor an LLMDone",
            )
        done = [e for e in events if isinstance(e, LLMDone)]
        expect(done, f"{what} ended without an LLMDone after {short(events)}")
        expect(len(done) == 1, f"{what} yielded {len(done)} LLMDone events, expected one: {short(events)}")
        last = events[-1]
        expect(last is done[0], f"{what} yielded {describe(last)} after {describe(done[0])}: LLMDone comes last")
        deltas = [e for e in events if isinstance(e, TextDelta)]
        expect(deltas, f"{what} yielded {describe(done[0])} without any TextDelta before it: stream the text")
        joined = "".join(d.text for d in deltas)
        expect(
            done[0].text == joined,
            f"{what}: LLMDone.text is {clip(done[0].text)} but the TextDeltas join to {clip(joined)}",
        )
        check_stamps(events, start, what)
        return events

    @pytest.mark.asyncio
    async def test_respond_streams_deltas_then_done(self, backend: LLM) -> None:
        """A reply streams at least one ``TextDelta`` and then exactly one ``LLMDone``, last, whose text is the
        deltas joined; every event stamped with ``voicekit.clock.now()`` in order."""
        await self._reply(backend, [])

    @pytest.mark.asyncio
    async def test_history_accepted(self, backend: LLM) -> None:
        """A history of user and assistant turns, one of them interrupted, gives a reply as well formed as one
        without history."""
        await self._reply(backend, list(self.history), "respond() with a history")

    @pytest.mark.asyncio
    async def test_two_replies_in_a_row(self, backend: LLM) -> None:
        """A second whole reply right after a first one works (the backend keeps its client between turns)."""
        await self._reply(backend, [], "the first of two replies")
        await self._reply(backend, [], "the second reply, right after a whole first one")

    async def _no_tasks_left(self, before: set[asyncio.Task[Any]], when: str) -> None:
        """Tasks started since ``before`` end within ``timeout_s``."""
        __tracebackhide__ = True
        left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
        if left:
            await asyncio.wait(left, timeout=self.timeout_s)
        running = [f"{t.get_name()} ({getattr(t.get_coro(), '__qualname__', '?')})" for t in left if not t.done()]
        expect(
            not running,
            f"{when}, tasks the reply started were still running {self.timeout_s:g} s later: {', '.join(running)}; "
            "stop what a reply started when it is cancelled or closed",
        )

    @pytest.mark.asyncio
    async def test_stop_reading_mid_stream(self, backend: LLM) -> None:
        """A reply has ``aclose()`` (the engine closes replies with ``contextlib.aclosing``); after a whole reply,
        closing the next one after its first ``TextDelta`` returns within ``timeout_s`` without an error, leaves
        no task of it running, and the reply after it works."""
        await self._reply(backend, [], "the first reply")
        before = asyncio.all_tasks()
        what = "respond() after a whole reply"
        reply = call(what, backend.respond, [], self.prompt)
        first = await next_event(reply, self.timeout_s, what)
        expect(isinstance(first, TextDelta), f"the first event of {what} is {describe(first)}, not a TextDelta")
        aclose: Any = getattr(reply, "aclose", None)
        expect(
            callable(aclose),
            f"respond() returned a {type(reply).__name__} without aclose(): the engine closes each reply with "
            "contextlib.aclosing(), so return an async generator",
        )
        await within(self.timeout_s, "closing the reply (aclose()) after its first TextDelta", aclose())
        await self._no_tasks_left(before, "once the reply was closed after its first TextDelta")
        await self._reply(backend, [], "the reply after one closed after its first TextDelta")

    @pytest.mark.asyncio
    async def test_cancel_mid_stream(self, backend: LLM) -> None:
        """After a whole reply, cancelling the task that reads the next one after its first ``TextDelta``
        (barge-in) ends that task with ``CancelledError`` within ``timeout_s`` (not with ``LLMDone``, another
        error or more deltas) and leaves no task of the reply running; the reply after it works."""
        await self._reply(backend, [], "the first reply")
        before = asyncio.all_tasks()
        events: list[Any] = []
        started = asyncio.Event()
        reply = call("respond() after a whole reply", backend.respond, [], self.prompt)

        async def read() -> None:
            async for event in reply:
                events.append(event)
                if isinstance(event, TextDelta):
                    started.set()

        task = asyncio.ensure_future(read())
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait([task, waiter], timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not started.is_set() and not task.done():
            task.cancel()
            fail(f"respond(): no TextDelta within {self.timeout_s:g} s")
        seen = len(events)
        # A reply that never waited ends before the cancellation can land: nothing to cut then.
        if task.cancel():
            await self._check_cancelled(task, events, seen)
        elif not task.cancelled() and (error := task.exception()) is not None:
            fail(f"respond() raised {type(error).__name__}: {error} after {short(events)}")
        await self._no_tasks_left(before, "once the task reading the reply was cancelled")
        await self._reply(backend, [], "the reply after a cancelled one")

    async def _check_cancelled(self, task: asyncio.Task[None], events: list[Any], seen: int) -> None:
        __tracebackhide__ = True
        done, _ = await asyncio.wait([task], timeout=self.timeout_s)
        after = events[seen:]
        if not done:
            task.cancel()
            fail(
                f"respond() was still running {self.timeout_s:g} s after the task reading it was cancelled "
                f"(barge-in); after the cancel it yielded {short(after)}: let CancelledError through and stop"
            )
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            fail(
                f"cancelling the task reading respond() made it raise {type(error).__name__}: {error}; "
                "let CancelledError through (clean up in `finally`)"
            )
        did = f"after the cancel it yielded {short(after)}" if after else "after the cancel it ended quietly"
        fail(
            f"respond() swallowed the cancellation of the task reading it: {did}, and the reader finished normally; "
            "let CancelledError through (clean up in `finally`)"
        )


__all__ = ["LLMContract"]
