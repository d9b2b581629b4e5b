"""The tool loop: the model's tool calls run here, in the engine, for every LLM alike.

A reply of a model that was given tools goes model → tools → model: the model yields
:class:`~voicekit.events.ToolCall` events; :meth:`ToolLoop.run` runs the calls of one
round in parallel, each bounded by ``tools_timeout_s``, and hands back one
:class:`~voicekit.events.ToolResult` per call — a tool that fails, times out, does not
exist or is refused gives an error result for the model to read, never an error of the
conversation. Cancelling the reply (barge-in) cancels the calls still running; each ends
as ``cancelled``. ``max_tool_rounds`` bounds the rounds of one reply: the model call after
the last round gets no tools and answers in text.

The rounds of a turn (one assistant message each, with its calls and their results) go
into the conversation's history just before the turn's final assistant message, so the
model remembers what it looked up; a round cut by the user is left out. LLMs without tool
support get the history without them (:func:`plain_history`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from voicekit.clock import now
from voicekit.events import BotTurn, Event, ToolCall, ToolResult, ToolStatus
from voicekit.roles import LLM, Message, ToolSpec

log = logging.getLogger(__name__)


class Outcome(Protocol):
    content: str
    status: ToolStatus


class ToolSource(Protocol):
    """What the loop needs of the tools (see :class:`voicekit.tools.toolbox.Toolbox`)."""

    @property
    def specs(self) -> tuple[ToolSpec, ...]: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def call(self, name: str, arguments: str) -> Outcome: ...


class ToolLoop:
    """Runs the tool calls of one conversation's replies; see the module docstring.

    ``emit`` receives a ``ToolResult`` per call as it ends. ``filler`` is a sentence to say
    when a round has run ``filler_after_s`` without an answer (``None``: say nothing).
    ``history`` is the conversation's history list, where :meth:`on_event` files each
    turn's exchange when the turn ends.
    """

    def __init__(
        self,
        tools: ToolSource,
        *,
        timeout_s: float = 10.0,
        max_rounds: int = 3,
        filler: str | None = None,
        filler_after_s: float = 1.0,
        emit: Callable[[Event], None] = lambda event: None,
        history: list[Message] | None = None,
    ) -> None:
        self.tools = tools
        self.timeout_s = timeout_s
        self.max_rounds = max_rounds
        self.filler = filler
        self.filler_after_s = filler_after_s
        self.emit = emit
        self.history = history
        self._exchanges: dict[int, list[Message]] = {}
        self._started = False
        self._closed = False

    # --- lifecycle (the tools' servers live as long as the conversation) ------------------

    async def start(self) -> None:
        """Start the tools (MCP servers); safe to call again."""
        if not self._started:
            await self.tools.start()
            self._started = True

    async def aclose(self) -> None:
        """Stop the tools; safe to call twice."""
        if not self._closed:
            self._closed = True
            await self.tools.aclose()

    # --- one reply ----------------------------------------------------------------------

    def offered_to(self, llm: LLM) -> bool:
        """Whether ``llm`` gets tools: it declares tool support and there are tools."""
        return llm.capabilities.tools and bool(self.tools.specs)

    def specs_for_round(self, rounds_done: int) -> tuple[ToolSpec, ...]:
        """The tools to offer on a model call after ``rounds_done`` rounds: none after the last."""
        return self.tools.specs if rounds_done < self.max_rounds else ()

    async def run(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run one round's calls in parallel; one result per call, in the calls' order."""
        return list(await asyncio.gather(*(self._run_one(call) for call in calls)))

    async def _run_one(self, call: ToolCall) -> ToolResult:
        started = now()

        def result(content: str, status: ToolStatus) -> ToolResult:
            duration = round((now() - started) * 1000, 2)
            return ToolResult(call.id, call.name, content, status, duration_ms=duration)

        try:
            outcome = await asyncio.wait_for(self.tools.call(call.name, call.arguments), self.timeout_s)
            done = result(outcome.content, outcome.status)
        except TimeoutError:
            done = result(f"error: the tool did not answer within {self.timeout_s:g} s", "timeout")
        except asyncio.CancelledError:
            self.emit(result("cancelled: the user interrupted", "cancelled"))
            raise
        except Exception as exc:  # noqa: BLE001 - a tool source's own failure is still only news for the model
            log.warning("tool %s failed: %s", call.name, exc)
            done = result(f"error: {type(exc).__name__}: {exc}", "error")
        self.emit(done)
        return done

    # --- history --------------------------------------------------------------------------

    def exchange(self, turn: int) -> list[Message]:
        """The finished tool rounds of ``turn`` (one assistant message each, calls and results)."""
        return self._exchanges.setdefault(turn, [])

    def on_event(self, event: Event) -> None:
        """Observer: when a turn ends, file its tool rounds before its final assistant message."""
        if not isinstance(event, BotTurn):
            return
        exchange = self._exchanges.pop(event.turn, None)
        for dropped in [turn for turn in self._exchanges if turn < event.turn]:
            del self._exchanges[dropped]  # turns answered afresh together with the next words
        history = self.history
        if not exchange or history is None or not history or history[-1].role != "assistant":
            return
        history[len(history) - 1 : len(history) - 1] = exchange


def plain_history(history: Sequence[Message]) -> Sequence[Message]:
    """The history as an LLM without tool support reads it: user and assistant text only."""
    if not any(m.tool_calls for m in history):
        return history
    return [Message(m.role, m.text, m.interrupted) for m in history if m.text.strip()]


__all__ = ["ToolLoop", "ToolSource", "plain_history"]
