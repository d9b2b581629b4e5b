"""The LLM contract fails models that are wrong in the ways real ones have been wrong (a swallowed cancellation,
a client closed after one reply, a task left running), each with a message that names the event and what was
expected.

Every broken model below is the scripted one with one method changed; ``EXPECTED`` says
which contract tests it fails and what each failure says (see ``test_contracts_catch.run_cases``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import pytest
from pydantic import ConfigDict

from tests.contract.test_contracts_catch import fails, run_cases
from voicekit.errors import BackendError
from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.roles import Message
from voicekit.testing.contracts import LLMContract
from voicekit.testing.scripted import ScriptedLLM, ScriptedLLMOptions

pytest_plugins = ["pytester"]


class Model(ScriptedLLM):
    """The scripted model, with the pace of its deltas as a class attribute."""

    token_ms: ClassVar[float] = 20.0


class SlowModel(Model):
    """Slow enough between deltas that a cancellation lands in the middle of a reply, however busy the machine."""

    token_ms = 150.0


class ReplyCase(LLMContract):
    """The scripted model passes every test: the broken ones below differ from it in one thing."""

    timeout_s = 2.0
    model: type[Model] = Model

    @pytest.fixture
    async def backend(self) -> AsyncIterator[ScriptedLLM]:
        options = self.model.Options(replies=["Hello there, friend."], token_ms=self.model.token_ms)
        async with self.model(options) as llm:
            yield llm


class LooseOptions(ScriptedLLMOptions):
    """Takes unknown keys, and has an option without a description."""

    model_config = ConfigDict(extra="allow")
    speed: float = 1.0


class LooseLLM(Model):
    Options = LooseOptions


class LooseCase(ReplyCase):
    model = LooseLLM


class BadDone(Model):
    """Puts only the first delta in LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield LLMDone(text=reply.split()[0]) if isinstance(event, LLMDone) else event


class NoDone(Model):
    """Forgets LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            if isinstance(event, TextDelta):
                yield event


class DeltaAfterDone(Model):
    """Sends a last delta after LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield event
        yield TextDelta(text=" Bye.")


class WallClockLLM(Model):
    """Stamps its deltas with time.time()."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield TextDelta(text=event.text, t=time.time()) if isinstance(event, TextDelta) else event


class DoneOnCancel(SlowModel):
    """Catches the cancellation and ends the reply with LLMDone."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        said = ""
        try:
            async for event in super()._stream(start, reply):
                said += event.text if isinstance(event, TextDelta) else ""
                yield event
        except asyncio.CancelledError:
            yield LLMDone(text=said)


class GoesOnAfterCancel(SlowModel):
    """Catches the cancellation and writes the rest of the reply anyway."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        words = reply.split(" ")
        for i, word in enumerate(words):
            try:
                await asyncio.sleep(self.token_ms / 1000)
            except asyncio.CancelledError:
                pass
            yield TextDelta(text=word + (" " if i < len(words) - 1 else ""))
        yield LLMDone(text=reply)


class HangsOnCancel(SlowModel):
    """Catches the cancellation and waits for the service to finish, far longer than the contract waits."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except asyncio.CancelledError:
            await asyncio.sleep(5)
            raise


class ErrorOnCancel(SlowModel):
    """Turns the cancellation into an error of its own."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except asyncio.CancelledError:
            raise BackendError("the request was aborted") from None


class Closing(Model):
    """Base of models that close their client at the wrong moment."""

    closed = False

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        if self.closed:
            raise RuntimeError("the client is closed")
        return super().respond(history, user_text)


class ClosesAfterReply(Closing):
    """Closes its client after a whole reply."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        async for event in super()._stream(start, reply):
            yield event
        self.closed = True


class ClosesOnCancel(Closing):
    """Closes its client when the reply is cancelled."""

    token_ms = SlowModel.token_ms

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except asyncio.CancelledError:
            self.closed = True
            raise


class ClosesOnAclose(Closing):
    """Closes its client when the reply is closed early."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except GeneratorExit:
            self.closed = True
            raise


class IgnoresClose(Model):
    """Yields once more when it is closed early."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        try:
            async for event in super()._stream(start, reply):
                yield event
        except GeneratorExit:
            yield LLMDone(text=reply)


class NoAclose(Model):
    """Returns a hand-written iterator that cannot be closed."""

    def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        return _Plain(super().respond(history, user_text))


class _Plain:
    def __init__(self, inner: AsyncIterator[Any]) -> None:
        self.inner = inner

    def __aiter__(self) -> _Plain:
        return self

    async def __anext__(self) -> Any:
        return await anext(self.inner)


class Producer(SlowModel):
    """Writes the reply in a task of its own, which goes on when the reply is closed or cancelled."""

    async def _stream(self, start: float, reply: str) -> AsyncIterator[LLMEvent]:
        queue: asyncio.Queue[LLMEvent] = asyncio.Queue()

        async def produce() -> None:
            async for event in ScriptedLLM._stream(self, start, reply):
                queue.put_nowait(event)
            await asyncio.sleep(5)  # "the rest of the billed tokens"

        producer = asyncio.ensure_future(produce())
        while not isinstance(event := await queue.get(), LLMDone):
            yield event
        yield event
        producer.cancel()


def llm_case(model: type[Model]) -> type[ReplyCase]:
    return type(f"{model.__name__}Case", (ReplyCase,), {"model": model, "__module__": __name__})


CASES: dict[str, type] = {
    cls.__name__: cls
    for cls in [
        ReplyCase,
        LooseCase,
        *map(
            llm_case,
            [
                BadDone,
                NoDone,
                DeltaAfterDone,
                WallClockLLM,
                DoneOnCancel,
                GoesOnAfterCancel,
                HangsOnCancel,
                ErrorOnCancel,
                ClosesAfterReply,
                ClosesOnCancel,
                ClosesOnAclose,
                IgnoresClose,
                NoAclose,
                Producer,
            ],
        ),
    ]
}

EXPECTED: dict[str, dict[str, str]] = {
    "LooseCase": {
        "test_options_forbid_unknown_keys": r"^Failed: LooseOptions accepted the unknown key 'no_such_option_xyz': "
        r"set extra='forbid'$",
        "test_options_are_documented": r"^Failed: options without a description: \['speed'\]$",
    },
    "BadDoneCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: .*: LLMDone.text is 'Hello' but the TextDeltas join to 'Hello there, friend.'$",
    ),
    "NoDoneCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: .* ended without an LLMDone after TextDelta\('Hello '\), TextDelta\('there, '\), "
        r"TextDelta\('friend.'\)$",
    ),
    "DeltaAfterDoneCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: .* yielded TextDelta\(' Bye.'\) after LLMDone\('Hello there, friend.'\): LLMDone comes last$",
    ),
    "WallClockLLMCase": fails(
        "respond_streams_deltas_then_done history_accepted two_replies_in_a_row stop_reading_mid_stream "
        "cancel_mid_stream",
        r"^Failed: TextDelta\('Hello '\) from .* is stamped 1.\de\+09 s in the future: "
        r"stamp with voicekit.clock.now\(\), not time.time\(\)$",
    ),
    "DoneOnCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: respond\(\) swallowed the cancellation of the task reading it: after the cancel it yielded "
        r"LLMDone\('Hello [^']*'\), and the reader finished normally; let CancelledError through",
    ),
    "GoesOnAfterCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: respond\(\) swallowed the cancellation of the task reading it: after the cancel it yielded "
        r"(TextDelta\('[^']+'\), )+LLMDone\('Hello there, friend.'\), and the reader finished normally",
    ),
    "HangsOnCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: respond\(\) was still running 2 s after the task reading it was cancelled \(barge-in\); "
        r"after the cancel it yielded nothing: let CancelledError through and stop$",
    ),
    "ErrorOnCancelCase": fails(
        "cancel_mid_stream",
        r"^Failed: cancelling the task reading respond\(\) made it raise BackendError: the request was aborted; "
        r"let CancelledError through",
    ),
    "ClosesAfterReplyCase": fails(
        "two_replies_in_a_row stop_reading_mid_stream cancel_mid_stream",
        r"^Failed: (the second reply, right after a whole first one|respond\(\) after a whole reply) raised "
        r"RuntimeError: the client is closed$",
    ),
    "ClosesOnCancelCase": fails(
        "cancel_mid_stream", r"^Failed: the reply after a cancelled one raised RuntimeError: the client is closed$"
    ),
    "ClosesOnAcloseCase": fails(
        "stop_reading_mid_stream",
        r"^Failed: the reply after one closed after its first TextDelta raised RuntimeError: the client is closed$",
    ),
    "IgnoresCloseCase": fails(
        "stop_reading_mid_stream",
        r"^Failed: closing the reply \(aclose\(\)\) after its first TextDelta raised RuntimeError: "
        r"async generator ignored GeneratorExit$",
    ),
    "ProducerCase": fails(
        "stop_reading_mid_stream cancel_mid_stream",
        r"^Failed: once the (reply was closed after its first TextDelta|task reading the reply was cancelled), tasks "
        r"the reply started were still running 2 s later: Task-\d+ \(Producer._stream.<locals>.produce\); stop what "
        r"a reply started when it is cancelled or closed$",
    ),
    "NoAcloseCase": fails(
        "stop_reading_mid_stream",
        r"^Failed: respond\(\) returned a _Plain without aclose\(\): the engine closes each reply with "
        r"contextlib.aclosing\(\), so return an async generator$",
    ),
}


def test_llm_contract_fails_broken_models(pytester: pytest.Pytester) -> None:
    run_cases(pytester, __name__, CASES, EXPECTED)
