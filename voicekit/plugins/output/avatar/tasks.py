"""The avatar session's background tasks: keep-alive ticks, the end before the duration
limit, and cancelling a task while still hearing our own cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


def deadline_margin_s(limit_s: float) -> float:
    """How long before a hard session limit we end the session ourselves."""
    return min(15.0, max(0.1, limit_s * 0.1))


def every(interval_s: float, fn: Callable[[], Awaitable[Any]], name: str) -> asyncio.Task[None]:
    """Call ``fn`` every ``interval_s`` seconds until cancelled; a failure is logged."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next tick may work; the session end will tell
                log.warning("%s failed: %s", name, exc)

    return asyncio.get_running_loop().create_task(loop(), name=name)


def after(delay_s: float, fn: Callable[[], Awaitable[Any]], name: str) -> asyncio.Task[None]:
    """Call ``fn`` once after ``delay_s`` seconds (unless cancelled before)."""

    async def later() -> None:
        await asyncio.sleep(delay_s)
        await fn()

    return asyncio.get_running_loop().create_task(later(), name=name)


async def cancel(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it is done (our own cancellation still reaches us)."""
    if task.done():
        return
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r while being cancelled", task, task.exception())
