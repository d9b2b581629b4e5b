"""One bot reply through the cascade: LLM → sentences → output → playback.

The LLM's text is split into sentences as it streams, and each sentence goes to the
output at once, so the first one is spoken while the model still writes. A failure of
either stage goes to its role's :class:`~voicekit.engine.fallback.BackendChain`, which
waits and retries the same backend or switches to the next one:

- the output failed: the replacement (or the same voice, retried) speaks again from the
  first sentence it had not finished; the sentences it finished stay heard;
- the LLM failed: the reply is answered afresh by the replacement, what was queued of
  the failed reply is dropped, and only the new reply goes into the history.

With tools (a :class:`~voicekit.engine.tools.ToolLoop` in ``tools``, an LLM that declares
``Capabilities.tools``), the writer goes model → tools → model within the one reply: what
the model said before its calls is spoken while they run, and the answer after them goes
on in the same stream of sentences. Tool rounds already run are kept when the LLM fails
and another answers, so no tool runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, cast

from voicekit.clock import now
from voicekit.engine.fallback import BackendChain
from voicekit.engine.playback import Playback
from voicekit.engine.sentences import SentenceSplitter
from voicekit.engine.tools import ToolLoop, plain_history
from voicekit.engine.turns import BotTurn
from voicekit.events import (
    AudioOut,
    BotSentence,
    Event,
    LLMDone,
    LLMEvent,
    SpeakingEnded,
    SpeakingStarted,
    TextDelta,
    ToolCall,
    ToolResult,
)
from voicekit.roles import LLM, Message, Output, ToolCallingLLM

log = logging.getLogger(__name__)

_INTERRUPT_TIMEOUT_S = 5.0


class SentenceFeed:
    """A reply's sentences as the LLM writes them.

    Each :meth:`read` starts at the first sentence no output has finished (``ended``), so a
    voice that replaces a failed one picks up where it stopped.
    """

    def __init__(self) -> None:
        self.sentences: list[str] = []
        self.ended = 0
        self.closed = False
        self.failed = False  # the LLM broke off: what it wrote is not to be spoken further
        self._more = asyncio.Event()

    def add(self, sentence: str) -> None:
        self.sentences.append(sentence)
        self._more.set()

    def close(self, *, failed: bool = False) -> None:
        self.closed = True
        self.failed = failed
        self._more.set()

    async def read(self) -> AsyncIterator[str]:
        index = self.ended
        while True:
            if self.failed:
                return
            if index < len(self.sentences):
                index += 1
                yield self.sentences[index - 1]
                continue
            if self.closed:
                return
            self._more.clear()
            await self._more.wait()


async def quietly(coro: Any, what: str) -> None:
    """Await a best-effort call (an interrupt): a failure is logged, never raised."""
    try:
        await asyncio.wait_for(coro, _INTERRUPT_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - an interrupt that fails must not end the conversation
        log.warning("%s failed: %s", what, exc)


class Replier:
    """Answers turns of a cascade; see the module docstring.

    ``remote_output`` is an avatar: it speaks in its own room, so its ``SpeakingStarted``
    is when the listener starts hearing a sentence.
    """

    def __init__(
        self,
        llms: BackendChain[LLM],
        outputs: BackendChain[Output],
        playback: Playback,
        emit: Callable[[Event], None],
        *,
        remote_output: bool = False,
        tools: ToolLoop | None = None,
    ) -> None:
        self.llms = llms
        self.outputs = outputs
        self.playback = playback
        self.emit = emit
        self.remote_output = remote_output
        self.tools = tools
        #: the interrupt of the reply before (barge-in), which must land before this one speaks
        self.interrupting: asyncio.Task[None] | None = None

    async def answer(self, turn: BotTurn, history: Sequence[Message]) -> None:
        """Speak the reply to ``turn`` (``history``: the conversation before it) to its end."""
        if self.tools is not None:
            await self.tools.start()  # at once, unless the conversation started them already
        feed = SentenceFeed()
        writer = asyncio.ensure_future(self._write(turn, feed, history))
        try:
            if self.interrupting is not None and not self.interrupting.done():
                # the model already writes; the voice waits until the old reply's interrupt
                # has landed, or that interrupt would silence this reply
                await asyncio.wait([self.interrupting])
            if not await self._held_until_confirmed(turn):
                return
            while True:
                try:
                    await self._speak(turn, feed)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any backend failure goes to the chain
                    if not feed.failed:
                        self.playback.sentence_abandoned(turn)
                        await self.outputs.recover(exc)
                        continue
                await asyncio.wait([writer])
                error = writer.exception()
                if error is None:
                    break
                await self.llms.recover(error)
                await self._start_afresh(turn)
                feed = SentenceFeed()
                writer = asyncio.ensure_future(self._write(turn, feed, history))
            self.llms.succeeded()
            self.outputs.succeeded()
        finally:
            if not writer.done():
                writer.cancel()
                await asyncio.wait([writer])
        if not turn.cancelled:
            self.playback.turn_ended(turn)

    async def _write(self, turn: BotTurn, feed: SentenceFeed, history: Sequence[Message]) -> None:
        splitter = SentenceSplitter()
        try:
            while True:
                said, calls = await self._one_call(turn, feed, splitter, history)
                if not calls or not await self._run_tools(turn, feed, splitter, said, calls):
                    break
            for sentence in splitter.flush():
                self._queue(turn, feed, sentence)
        except BaseException:
            feed.close(failed=True)
            raise
        feed.close()

    async def _one_call(
        self, turn: BotTurn, feed: SentenceFeed, splitter: SentenceSplitter, history: Sequence[Message]
    ) -> tuple[str, list[ToolCall]]:
        """One model call: its text to the feed; what it said and the tool calls it made (if it
        may make any)."""
        llm = self.llms.active
        tools = self.tools
        reply: AsyncIterator[LLMEvent]
        exchange: list[Message] = []
        if tools is not None and tools.offered_to(llm):
            exchange = tools.exchange(turn.index)
            specs = tools.specs_for_round(sum(1 for m in exchange if m.tool_calls))
            if exchange:  # a later round: the whole exchange so far, and no new user message
                reply = cast(ToolCallingLLM, llm).respond(
                    [*history, Message("user", turn.user_text), *exchange], "", tools=specs
                )
            else:
                reply = cast(ToolCallingLLM, llm).respond(history, turn.user_text, tools=specs)
        else:
            specs = ()
            reply = llm.respond(plain_history(history), turn.user_text)
        calls: list[ToolCall] = []
        said = ""
        async with contextlib.aclosing(reply):  # type: ignore[type-var]
            async for event in reply:
                if isinstance(event, TextDelta):
                    turn.clock.mark("first_token", event.t)
                    turn.text += event.text
                    said += event.text
                    self._tell(turn, event)
                    for sentence in splitter.push(event.text):
                        self._queue(turn, feed, sentence)
                elif isinstance(event, ToolCall):
                    turn.clock.mark("first_token", event.t)
                    self._tell(turn, event)
                    calls.append(event)
                elif isinstance(event, LLMDone):
                    self._tell(turn, event)
        if calls and not specs:
            log.warning("%s asked for tools it was not offered; the reply ends here", llm.label)
            return said, []
        return said, calls

    async def _run_tools(
        self, turn: BotTurn, feed: SentenceFeed, splitter: SentenceSplitter, said: str, calls: Sequence[ToolCall]
    ) -> bool:
        """Run one round of calls; meanwhile say what came before them (and the filler, if
        they take long); the round, with its results, goes into the turn's exchange.

        A tentative reply (preemptive, the user's turn not confirmed yet) runs no tool before
        the turn is confirmed: a tool may act in the world. ``False``: it was thrown away.
        """
        tools = self.tools
        assert tools is not None
        for sentence in splitter.flush():
            self._queue(turn, feed, sentence)
        if turn.tentative and not await turn.confirmed():
            return False
        started = now()
        running = asyncio.ensure_future(tools.run(calls))
        try:
            if tools.filler and not turn.clock.tool_s:  # the filler is said once per reply at most
                done, _ = await asyncio.wait([running], timeout=tools.filler_after_s)
                if not done:
                    self._queue(turn, feed, tools.filler)
            results: list[ToolResult] = await running
        finally:
            if not running.done():
                running.cancel()
                await asyncio.wait([running])
            turn.clock.add_tool_time(now() - started)
        tools.exchange(turn.index).append(
            Message("assistant", said, tool_calls=tuple(calls), tool_results=tuple(results))
        )
        return True

    def _queue(self, turn: BotTurn, feed: SentenceFeed, sentence: str) -> None:
        event = BotSentence(sentence, turn.index)
        turn.clock.mark("first_sentence", event.t)
        self._tell(turn, event)
        feed.add(sentence)

    # --- preemptive replies and false interruptions (decided by turn-taking) ---------------------

    def _tell(self, turn: BotTurn, event: Event) -> None:
        """Emit an event of the reply; a tentative reply's wait until it is confirmed."""
        if turn.tentative:
            turn.held.append(event)
        else:
            self.emit(event)

    async def _held_until_confirmed(self, turn: BotTurn) -> bool:
        """A tentative reply to an avatar waits here, text unsent, until the user's turn is
        confirmed (False: it was thrown away). A local voice renders ahead: the playback
        holds its audio instead."""
        if not turn.tentative or not self.remote_output:
            return True
        return await turn.confirmed()

    async def resume(self, turn: BotTurn, text: str) -> None:
        """Say ``text``, the rest of a sentence cut by a false interruption, without the LLM."""
        if self.interrupting is not None and not self.interrupting.done():
            await asyncio.wait([self.interrupting])
        feed = SentenceFeed()
        feed.add(text)
        feed.close()
        self.emit(BotSentence(text, turn.index))
        try:
            await self._speak(turn, feed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the turn ends with what was heard
            log.warning("%s failed to resume the reply: %s", self.outputs.active.label, exc)
        if not turn.cancelled:
            self.playback.turn_ended(turn)

    async def _speak(self, turn: BotTurn, feed: SentenceFeed) -> None:
        output = self.outputs.active
        events = output.speak(feed.read())
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if turn.cancelled:
                    break
                if feed.failed:
                    await quietly(output.interrupt(), f"interrupting {output.label}")
                    break
                if isinstance(event, AudioOut):
                    turn.clock.mark("first_output", event.t)
                    self.playback.audio(turn, event)
                elif isinstance(event, SpeakingStarted):
                    if self.remote_output:
                        turn.clock.mark("first_output", event.t)
                    self.playback.sentence_started(turn, event.text)
                elif isinstance(event, SpeakingEnded):
                    self.playback.sentence_ended(turn, event.text)
                    feed.ended += 1

    async def _start_afresh(self, turn: BotTurn) -> None:
        """Drop what the failed LLM's reply queued; the next one answers from the start."""
        await quietly(self.outputs.active.interrupt(), f"interrupting {self.outputs.active.label}")
        self.playback.silence(turn)
        if not turn.audio_started:  # time the reply that is heard, not the one that failed
            turn.clock.first_token = turn.clock.first_sentence = turn.clock.first_output = None
        turn.restart()
