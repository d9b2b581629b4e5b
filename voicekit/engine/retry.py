"""The one retry policy: when a failed backend call is tried again, and how long to wait.

Backends raise; the core decides. A failure is retried only when it says a retry may
help (:attr:`~voicekit.errors.BackendError.retryable`: dropped connections, 5xx, 429),
never more than the role's :class:`~voicekit.options.RetryPolicy` allows (``attempts``
in all, waits from ``initial_ms`` doubling to ``max_ms`` with full jitter, at most
``budget_ms`` of waiting in all). A wait the service asks for (``retry_after``, parsed
from ``Retry-After`` or ``retryDelay`` by :func:`retry_after_seconds`) replaces the
computed one, and a wait longer than what is left of the budget ends the retries at once.

Two ways to use it:

- :func:`call` and :func:`stream` wrap one request (the engine uses them around
  ``start()``, ``respond()`` until its first event, ``speak()``);
- a :class:`Retrier` serves a reconnect loop inside a backend that keeps a connection
  for a whole conversation (a streaming STT, a live model)::

      retrier = Retrier(self.context.retry, label=self.label)
      while True:
          try:
              await self._one_connection()
              return
          except BackendError as exc:
              await retrier.wait(exc)   # raises exc when retrying cannot help any more
          # after a connection that worked for a while: retrier.reset()
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from voicekit.clock import now
from voicekit.errors import BackendError, VoicekitError
from voicekit.options import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Retrier", "RetryPolicy", "call", "retry_after_seconds", "stream"]


def retry_after_seconds(value: Any) -> float | None:
    """Seconds to wait, from whatever a service sent: a ``Retry-After`` header (seconds or
    an HTTP date), a Google ``retryDelay`` (``"1.5s"``), a number, or a mapping of
    headers / an error body holding one of those. ``None`` when there is nothing usable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return max(0.0, float(value))
    if isinstance(value, Mapping):
        for key in ("retry-after", "Retry-After", "retry_after", "retryDelay", "retry_delay"):
            if key in value:
                return retry_after_seconds(value[key])
        error = value.get("error")
        if isinstance(error, Mapping):
            return retry_after_seconds(error)
        details = value.get("details")
        if isinstance(details, list):
            for item in details:
                found = retry_after_seconds(item) if isinstance(item, Mapping) else None
                if found is not None:
                    return found
        return None
    text = str(value).strip()
    if not text:
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*s?", text)
    if match:
        return float(match.group(1))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retryable(error: BaseException) -> bool:
    return isinstance(error, VoicekitError) and bool(getattr(error, "retryable", False))


class Retrier:
    """Counts the tries of one failing operation and waits between them.

    :meth:`wait` either sleeps the right time (the caller then tries again) or raises the
    error it was given (not retryable, tries used up, budget spent). :meth:`reset` starts
    afresh, e.g. once a reconnected stream has worked for a while.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        label: str = "",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy.model_validate({})
        self.label = label
        self._sleep = sleep
        self.failures = 0
        self.waited_s = 0.0

    def reset(self) -> None:
        self.failures = 0
        self.waited_s = 0.0

    def delay_for(self, error: BaseException) -> float | None:
        """How long to wait before the next try, or ``None`` when no retry should follow."""
        policy = self.policy
        if not _retryable(error) or getattr(error, "retries_spent", False) or self.failures + 1 >= policy.attempts:
            return None
        left = policy.budget_ms / 1000 - self.waited_s
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            delay = float(asked)
        else:
            ceiling = min(policy.max_ms, policy.initial_ms * 2**self.failures) / 1000
            delay = random.uniform(
                ceiling / 2, ceiling
            )  # jittered: clients that failed together do not return together
        if delay > left + 1e-9:
            return None
        return max(0.0, delay)

    async def wait(self, error: BaseException) -> None:
        """Sleep before the next try, or raise ``error`` when trying again cannot help.

        An error raised because the policy is used up is marked ``retries_spent``, so that
        the engine does not retry, around a backend, what the backend already retried.
        """
        delay = self.delay_for(error)
        if delay is None:
            if _retryable(error):
                error.retries_spent = True  # type: ignore[attr-defined]
            raise error
        self.failures += 1
        self.waited_s += delay
        log.info(
            "%s: %s; try %d of %d in %.2f s",
            self.label or "backend",
            error,
            self.failures + 1,
            self.policy.attempts,
            delay,
        )
        await self._sleep(delay)

    async def wait_or_give_up(self, error: BaseException, *, check: str) -> None:
        """:meth:`wait`; but once the policy is spent, raise one line that says so and what to
        ``check`` (``"the network, stt.base_url and stt.retry"``) — no longer retryable, so
        nobody retries it again (a fallback still may take over)."""
        try:
            await self.wait(error)
        except VoicekitError as spent:
            if not spent.retries_spent:
                raise
            tries = self.failures + 1
            raise BackendError(
                f"{spent}; gave up after {tries} {'try' if tries == 1 else 'tries'}: check {check}",
                retry_after=getattr(spent, "retry_after", None),
            ) from spent


async def call(op: Callable[[], Awaitable[T]], policy: RetryPolicy | None = None, *, label: str = "") -> T:
    """``await op()``, tried again per ``policy`` while it fails retryably."""
    retrier = Retrier(policy, label=label)
    while True:
        try:
            return await op()
        except VoicekitError as exc:
            await retrier.wait(exc)


async def stream(
    open_stream: Callable[[], AsyncIterator[T]], policy: RetryPolicy | None = None, *, label: str = ""
) -> AsyncIterator[T]:
    """The items of ``open_stream()``; a retryable failure before the first item opens it again.

    Once an item has been passed on, a failure is raised as it is: trying again would
    repeat what the listener already got (a reply spoken twice).
    """
    retrier = Retrier(policy, label=label)
    started = now()
    while True:
        iterator = open_stream()
        got_any = False
        try:
            async for item in iterator:
                got_any = True
                yield item
            return
        except VoicekitError as exc:
            if got_any:
                raise
            await retrier.wait(exc)
            log.debug("%s: retrying %.2f s after the first try", label, now() - started)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
