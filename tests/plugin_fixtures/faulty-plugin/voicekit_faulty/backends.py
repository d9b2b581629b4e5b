"""An LLM and a voice that work until told to fail: at start, or on the Nth turn.

``error`` picks the failure: ``auth`` (the service rejected the key), ``server`` (a 5xx,
retryable), ``timeout`` (no answer in time, retryable) or ``crash`` (a bug in the plugin:
a plain ``RuntimeError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from pydantic import Field

from voicekit.errors import AuthError, BackendError
from voicekit.events import AudioOut, LLMDone, SpeakingEnded, SpeakingStarted, TextDelta
from voicekit.options import BackendOptions
from voicekit.roles import LLM, Capabilities, Message, Output, RealtimeStream


class FaultOptions(BackendOptions):
    reply: str = Field("All good.", description="What the LLM answers while it works")
    fail: Literal["never", "start", "turn"] = Field("never", description="When to fail")
    on_turn: int = Field(1, ge=1, description="With fail: turn, the turn that fails (and every later one)")
    error: Literal["auth", "server", "timeout", "crash"] = Field("crash", description="How it fails")


def _error(kind: str) -> BaseException:
    if kind == "auth":
        return AuthError("faulty rejected the API key (401); set FAULTY_API_KEY to a valid key")
    if kind == "server":
        return BackendError("faulty answered 503 Service Unavailable", retryable=True)
    if kind == "timeout":
        return BackendError("faulty: no answer within 1 s", retryable=True)
    return RuntimeError("faulty plugin bug: list index out of range")


class FaultyLLM(LLM):
    """Answers ``reply``, or fails per its options."""

    Options = FaultOptions
    capabilities = Capabilities(streaming=True)
    options: FaultOptions

    def __init__(self, options: Any = None, context: Any = None) -> None:
        super().__init__(options, context)
        self.turns = 0

    async def start(self) -> None:
        if self.options.fail == "start":
            raise _error(self.options.error)

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[Any]:  # type: ignore[override]
        self.turns += 1
        if self.options.fail == "turn" and self.turns >= self.options.on_turn:
            await asyncio.sleep(0)
            raise _error(self.options.error)
        yield TextDelta(self.options.reply)
        yield LLMDone(self.options.reply)


class FaultyOutput(Output):
    """Speaks a short tone per sentence, or fails per its options."""

    Options = FaultOptions
    capabilities = Capabilities(streaming=True, produces_audio=True, sample_rates=(16000,))
    sample_rate = 16000
    options: FaultOptions

    def __init__(self, options: Any = None, context: Any = None) -> None:
        super().__init__(options, context)
        self.turns = 0

    async def start(self) -> None:
        if self.options.fail == "start":
            raise _error(self.options.error)

    async def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[Any]:  # type: ignore[override]
        self.turns += 1
        async for sentence in sentences:
            if self.options.fail == "turn" and self.turns >= self.options.on_turn:
                raise _error(self.options.error)
            yield SpeakingStarted(sentence)
            yield AudioOut(bytes(3200), 16000)
            yield SpeakingEnded(sentence)


class _BrokenLiveStream(RealtimeStream):
    """Takes audio, then fails the way a plugin's bug does."""

    def __init__(self) -> None:
        self._audio = asyncio.Event()

    def push_audio(self, pcm: bytes) -> None:
        self._audio.set()

    async def send_text(self, text: str) -> None:
        self._audio.set()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncIterator[Any]:
        await self._audio.wait()
        raise RuntimeError("faulty live plugin bug: 'NoneType' object is not subscriptable")
        yield  # an async generator

    async def aclose(self) -> None:
        pass


class FaultyLiveLLM(LLM):
    """A speech-to-speech model whose stream fails as soon as it hears something."""

    Options = FaultOptions
    capabilities = Capabilities(streaming=True, accepts_audio=True, produces_audio=True)
    options: FaultOptions

    def realtime(self, history: Sequence[Message] = ()) -> RealtimeStream:
        return _BrokenLiveStream()
