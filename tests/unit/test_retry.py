"""The one retry policy: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from voicekit.engine import retry
from voicekit.engine.retry import Retrier, retry_after_seconds
from voicekit.errors import AuthError, BackendError
from voicekit.options import RetryPolicy


def policy(**kw: int) -> RetryPolicy:
    return RetryPolicy.model_validate(kw)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("1.5s", 1.5),  # Google's retryDelay
        (" 2 ", 2.0),
        (7, 7.0),
        ({"Retry-After": "4"}, 4.0),
        ({"retry-after": "0"}, 0.0),
        ({"error": {"details": [{"@type": "x.RetryInfo", "retryDelay": "12s"}]}}, 12.0),
        ({"details": [{"other": 1}, {"retryDelay": "0.25s"}]}, 0.25),
        ("soon", None),
        ("", None),
        (None, None),
        ({"nothing": 1}, None),
    ],
)
def test_retry_after_forms(value: object, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_seconds(when) <= 30  # type: ignore[operator]
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(past) == 0.0


async def test_waits_grow_with_jitter_up_to_max() -> None:
    sleeps = Sleeps()
    retrier = Retrier(policy(attempts=6, initial_ms=100, max_ms=400, budget_ms=60_000), sleep=sleeps)
    error = BackendError("503", retryable=True)
    for _ in range(5):
        await retrier.wait(error)
    ceilings = [0.1, 0.2, 0.4, 0.4, 0.4]
    assert len(sleeps.waits) == 5
    for wait, ceiling in zip(sleeps.waits, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling
    with pytest.raises(BackendError):
        await retrier.wait(error)  # six tries in all: no seventh


async def test_not_retryable_is_raised_at_once() -> None:
    sleeps = Sleeps()
    retrier = Retrier(policy(attempts=5), sleep=sleeps)
    with pytest.raises(AuthError):
        await retrier.wait(AuthError("bad key"))
    with pytest.raises(BackendError):
        await retrier.wait(BackendError("bad request", retryable=False))
    with pytest.raises(ValueError):
        await retrier.wait(ValueError("a bug"))
    assert sleeps.waits == []


async def test_retry_after_replaces_backoff_and_respects_the_budget() -> None:
    sleeps = Sleeps()
    retrier = Retrier(policy(attempts=5, initial_ms=100, max_ms=100, budget_ms=5000), sleep=sleeps)
    await retrier.wait(BackendError("429", retryable=True, retry_after=3.0))
    assert sleeps.waits == [3.0]
    with pytest.raises(BackendError, match="429 again"):  # 3 + 2.5 s would overspend the 5 s budget
        await retrier.wait(BackendError("429 again", retryable=True, retry_after=2.5))
    retrier.reset()
    await retrier.wait(BackendError("429", retryable=True, retry_after=2.5))
    assert sleeps.waits == [3.0, 2.5]


async def test_attempts_one_means_no_retry() -> None:
    with pytest.raises(BackendError):
        await Retrier(policy(attempts=1), sleep=Sleeps()).wait(BackendError("x", retryable=True))


def test_policy_rejects_max_below_initial() -> None:
    with pytest.raises(ValueError, match="max_ms"):
        policy(initial_ms=500, max_ms=100)


async def test_call_retries_until_success() -> None:
    tries = 0

    async def flaky() -> str:
        nonlocal tries
        tries += 1
        if tries < 3:
            raise BackendError("dropped", retryable=True)
        return "ok"

    assert await retry.call(flaky, policy(attempts=3, initial_ms=0, max_ms=0)) == "ok"
    assert tries == 3


async def test_stream_retries_only_before_the_first_item() -> None:
    opened = 0

    async def fails_first_time() -> AsyncIterator[str]:
        nonlocal opened
        opened += 1
        if opened == 1:
            raise BackendError("503", retryable=True)
        yield "a"
        yield "b"

    got = [x async for x in retry.stream(fails_first_time, policy(attempts=2, initial_ms=0, max_ms=0))]
    assert got == ["a", "b"] and opened == 2

    async def fails_midway() -> AsyncIterator[str]:
        yield "a"
        raise BackendError("dropped", retryable=True)

    got = []
    with pytest.raises(BackendError, match="dropped"):
        async for item in retry.stream(fails_midway, policy(attempts=5, initial_ms=0, max_ms=0)):
            got.append(item)
    assert got == ["a"], "a stream that already gave something is not started again"


async def test_an_error_that_used_up_a_policy_is_not_retried_again() -> None:
    """A backend that retried inside (a reconnect loop) hands on an error nobody retries twice."""
    inner = Retrier(policy(attempts=2, initial_ms=0, max_ms=0), sleep=Sleeps())
    error = BackendError("dropped", retryable=True)
    await inner.wait(error)
    with pytest.raises(BackendError) as caught:
        await inner.wait(error)
    assert caught.value.retries_spent
    outer_sleeps = Sleeps()
    with pytest.raises(BackendError):
        await Retrier(policy(attempts=5), sleep=outer_sleeps).wait(caught.value)
    assert outer_sleeps.waits == []
