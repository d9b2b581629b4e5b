"""When an avatar speaks each sentence: ``SpeakingStarted`` / ``SpeakingEnded`` in its own time.

A sentence handed to the avatar becomes an :class:`Utterance`; :class:`SpeechTimeline`
turns the queue of them into speaking events, from the avatar's own start/stop signals
when we receive them, else from the expected duration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from voicekit.clock import now
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted

log = logging.getLogger(__name__)


@dataclass
class Utterance:
    """One sentence handed to the avatar: ``key`` matches its speaking signals if any."""

    text: str
    duration_s: float
    key: str | None = None
    sent_at: float = field(default_factory=now)
    audio: list[bytes] = field(default_factory=list)  # PCM to yield as AudioOut (LITE local audio)
    sample_rate: int = 24000


#: what :meth:`SpeechTimeline.play` reads: utterances, then ``None``; an exception is raised to the listener
UtteranceQueue: TypeAlias = "asyncio.Queue[Utterance | BaseException | None]"


class SpeechTimeline:
    """Per-sentence ``SpeakingStarted`` / ``SpeakingEnded`` in the avatar's time.

    With ``use_signals`` the avatar's own start/stop signals (fed through :meth:`signal`)
    mark each sentence, matched by ``key`` when both sides have one, else in order. Where
    a signal does not come in time the expected duration stands in. In ``fast`` mode the
    estimates are not waited for (tests, ``chat --fast``).
    """

    def __init__(self, *, fast: bool = False, signal_timeout_s: float = 8.0) -> None:
        self.fast = fast
        self.use_signals = False
        self.signal_timeout_s = signal_timeout_s
        self._signals: asyncio.Queue[tuple[str, str | None, float]] = asyncio.Queue()

    def signal(self, kind: str, key: str | None = None) -> None:
        """``kind`` is ``"started"`` or ``"ended"``; stamped now, when it arrives."""
        self._signals.put_nowait((kind, key, now()))

    def reset(self) -> None:
        while not self._signals.empty():
            self._signals.get_nowait()

    async def play(self, items: UtteranceQueue, interrupted: asyncio.Event) -> AsyncIterator[OutputEvent]:
        """Events for the utterances put in ``items`` (``None`` ends; an exception is raised)."""
        free_at = last = now()
        while True:
            item = await _until(items.get(), interrupted, None)
            if item is _INTERRUPTED or item is None:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Utterance)
            start_by = max(item.sent_at, free_at)
            started = await self._wait_signal("started", item, interrupted, self.signal_timeout_s)
            if started is _INTERRUPTED:
                return
            if started is None:  # no signal: the avatar starts when it is free
                if await self._sleep_until(start_by, interrupted):
                    return
            # stamped when the avatar said it started, which may be before we got here
            event = SpeakingStarted(item.text, t=max(started[2], last)) if started else SpeakingStarted(item.text)
            yield event
            start = last = event.t
            for pcm in item.audio:
                yield AudioOut(pcm, item.sample_rate)
            end_by = start + item.duration_s
            ended = (
                await self._wait_signal("ended", item, interrupted, item.duration_s + self.signal_timeout_s)
                if started is not None
                else None
            )
            if ended is _INTERRUPTED:
                return
            if ended is None and await self._sleep_until(end_by, interrupted):
                return
            if interrupted.is_set():
                return
            free_at = now() if ended is not None else end_by
            ended_event = SpeakingEnded(item.text, t=max(ended[2], last)) if ended else SpeakingEnded(item.text)
            last = ended_event.t
            yield ended_event

    async def _sleep_until(self, deadline: float, interrupted: asyncio.Event) -> bool:
        """Wait (unless fast); ``True`` if interrupted meanwhile."""
        delay = 0.0 if self.fast else deadline - now()
        if delay > 0:
            return await _until(asyncio.sleep(delay), interrupted, None) is _INTERRUPTED
        return interrupted.is_set()

    async def _wait_signal(self, kind: str, item: Utterance, interrupted: asyncio.Event, timeout: float) -> Any:
        if not self.use_signals:
            return None
        deadline = now() + timeout
        while True:
            remaining = deadline - now()
            if remaining <= 0:
                log.debug("avatar: no '%s' signal for %r in time; using the estimate", kind, item.text[:40])
                return None
            got = await _until(self._signals.get(), interrupted, remaining)
            if got is _INTERRUPTED or got is None:
                return got
            got_kind, key, _ = got
            if got_kind == kind and (key is None or item.key is None or key == item.key):
                return got


_INTERRUPTED = object()


async def _until(aw: Awaitable[Any], interrupted: asyncio.Event, timeout: float | None) -> Any:
    """``aw``'s result, ``_INTERRUPTED`` if ``interrupted`` is set first, ``None`` on timeout."""
    task = asyncio.ensure_future(aw)
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        done, _ = await asyncio.wait({task, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stop):
            if not pending.done():
                pending.cancel()
    if task in done:
        return task.result()
    return _INTERRUPTED if stop in done else None


def estimate_duration_s(text: str) -> float:
    """How long speaking ``text`` takes, roughly (about 14 characters a second)."""
    return max(0.4, len(text) / 14.0)
