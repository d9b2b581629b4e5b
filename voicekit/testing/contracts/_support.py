"""What the three contracts share: failure messages, bounded waits, and the checks every backend passes.

Every check fails through :func:`expect` (``pytest.fail``) with a sentence that names the
event, the sentence or reply it belongs to, and what was expected; events are described
by :func:`describe`, which gives the size of audio instead of its bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, ClassVar, NoReturn

import pydantic
import pytest

from voicekit.clock import now
from voicekit.events import AudioOut
from voicekit.roles import Backend, Capabilities


def fail(message: str) -> NoReturn:
    """Fail the running contract test with ``message`` (and no dump of the values involved)."""
    __tracebackhide__ = True
    pytest.fail(message, pytrace=True)


def expect(ok: object, message: str) -> None:
    """Fail with ``message`` unless ``ok``."""
    __tracebackhide__ = True
    if not ok:
        fail(message)


def clip(text: str, limit: int = 60) -> str:
    """``repr(text)``, shortened in the middle of long texts."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[: limit - 20] + "…" + text[-15:])


def describe(event: object) -> str:
    """One event as a message shows it: ``SpeakingStarted('Hello there.')``, ``AudioOut(960 bytes at 24000 Hz)``."""
    name = type(event).__name__
    if isinstance(event, AudioOut):
        size = len(event.pcm) if isinstance(event.pcm, (bytes, bytearray, memoryview)) else type(event.pcm).__name__
        return f"{name}({size} bytes at {event.sample_rate} Hz)"
    text = getattr(event, "text", None)
    return f"{name}({clip(text)})" if isinstance(text, str) else f"{name}()"


def short(events: Sequence[object], limit: int = 8) -> str:
    """A list of events for a message: runs of audio as one item, at most ``limit`` items; ``nothing`` if empty."""
    if not events:
        return "nothing"
    items: list[str] = []
    run: list[AudioOut] = []

    def end_run() -> None:
        if len(run) == 1:
            items.append(describe(run[0]))
        elif run:
            size = sum(len(a.pcm) if isinstance(a.pcm, bytes) else 0 for a in run)
            items.append(f"{len(run)} × AudioOut ({size} bytes at {run[0].sample_rate} Hz)")
        run.clear()

    for event in events:
        if isinstance(event, AudioOut) and (not run or run[0].sample_rate == event.sample_rate):
            run.append(event)
            continue
        end_run()
        if isinstance(event, AudioOut):
            run.append(event)
        else:
            items.append(describe(event))
    end_run()
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(events)} events in all)" if len(items) > limit else "")


def duration(seconds: float) -> str:
    """``0.3 ms``, ``12 ms``, ``5 s``, ``1.8e+09 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def check_stamps(events: Sequence[Any], since: float, what: str) -> None:
    """Every event is stamped with ``voicekit.clock.now()``: a float, not before ``since``, never going back, not
    in the future."""
    __tracebackhide__ = True
    previous: object = None
    last = since
    for event in events:
        t = getattr(event, "t", None)
        if not isinstance(t, float):
            fail(f"{describe(event)} from {what} is stamped t={t!r}: events carry a voicekit.clock.now() float")
        if t > now():
            fail(
                f"{describe(event)} from {what} is stamped {duration(t - now())} in the future: "
                "stamp with voicekit.clock.now(), not time.time()"
            )
        if t < last:
            before = f"the {describe(previous)} before it" if previous is not None else f"the call to {what}"
            fail(
                f"{describe(event)} from {what} is stamped {duration(last - t)} before {before}: "
                "stamps never go back in time (stamp with voicekit.clock.now() when the event happens)"
            )
        previous, last = event, t


def call(what: str, function: Any, *args: Any) -> Any:
    """``function(*args)``; fails the test, naming ``what``, if it raises."""
    __tracebackhide__ = True
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - any error of the backend fails the contract, named
        fail(f"{what} raised {type(exc).__name__}: {exc}")


async def drain(events: AsyncIterable[Any], timeout: float, what: str, into: list[Any] | None = None) -> list[Any]:
    """Everything ``events`` yields until it ends, read in this task.

    Fails if it does not end within ``timeout`` seconds, raises, or lets out a
    ``CancelledError`` that nobody asked for.
    """
    __tracebackhide__ = True
    collected: list[Any] = [] if into is None else into
    start = len(collected)
    try:
        async with asyncio.timeout(timeout) as deadline:
            async for event in events:
                collected.append(event)
    except TimeoutError:
        if not deadline.expired():
            fail(f"{what} raised TimeoutError (it had yielded {short(collected[start:])})")
        fail(f"{what} did not end within {timeout:g} s; it yielded {short(collected[start:])}")
    except asyncio.CancelledError:
        if current_task_cancelling():
            raise
        fail(
            f"{what} raised CancelledError although nothing cancelled its reader (it had yielded "
            f"{short(collected[start:])}): a backend that cancels its own tasks keeps their CancelledError in"
        )
    except Exception as exc:  # noqa: BLE001 - any error of the backend fails the contract, named
        fail(f"{what} raised {type(exc).__name__}: {exc} (it had yielded {short(collected[start:])})")
    return collected


async def next_event(events: AsyncIterator[Any], timeout: float, what: str) -> Any:
    """The next event of ``events``; fails on timeout, on its end and on an exception."""
    __tracebackhide__ = True
    try:
        async with asyncio.timeout(timeout) as deadline:
            return await anext(events)
    except TimeoutError:
        if not deadline.expired():
            fail(f"{what} raised TimeoutError")
        fail(f"{what}: no event within {timeout:g} s")
    except StopAsyncIteration:
        fail(f"{what} ended early")
    except Exception as exc:  # noqa: BLE001 - any error of the backend fails the contract, named
        fail(f"{what} raised {type(exc).__name__}: {exc}")


async def within(timeout: float, what: str, awaitable: Any) -> Any:
    """Await ``awaitable`` in this task; fails if it takes longer than ``timeout`` or raises."""
    __tracebackhide__ = True
    try:
        async with asyncio.timeout(timeout) as deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            fail(f"{what} raised TimeoutError")
        fail(f"{what} did not return within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any error of the backend fails the contract, named
        fail(f"{what} raised {type(exc).__name__}: {exc}")


async def feed(texts: Iterable[str], gap_s: float = 0.0) -> AsyncIterator[str]:
    """Sentences as the engine hands them over, optionally spaced like a streaming LLM."""
    for i, text in enumerate(texts):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        yield text


def current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class BackendContract:
    """What every backend, whatever its role, must do."""

    role: ClassVar[str]
    base: ClassVar[type[Backend]]
    #: upper bound of every wait, in seconds
    timeout_s: ClassVar[float] = 30.0

    @pytest.fixture
    def backend(self) -> Any:
        """Override in your subclass: an async fixture yielding a started backend."""
        fail(f"{type(self).__name__}: define a `backend` fixture that yields a started backend")

    def test_role(self, backend: Backend) -> None:
        """The backend subclasses the class of its role (``STT``, ``LLM`` or ``Output`` of ``voicekit.roles``)."""
        name = type(backend).__name__
        expect(isinstance(backend, self.base), f"{name} must subclass voicekit.roles.{self.base.__qualname__}")
        expect(backend.role == self.role, f"{name}.role is {backend.role!r}, expected {self.role!r}")

    def test_capabilities_declared(self, backend: Backend) -> None:
        """``capabilities`` is a ``voicekit.roles.Capabilities`` whose sample rates are positive integers and
        whose languages are non-empty strings."""
        caps = backend.capabilities
        expect(
            isinstance(caps, Capabilities),
            f"{type(backend).__name__}.capabilities is a {type(caps).__name__}, not a voicekit.roles.Capabilities",
        )
        bad_rates = [r for r in caps.sample_rates if not (isinstance(r, int) and r > 0)]
        expect(not bad_rates, f"capabilities.sample_rates holds {bad_rates}: rates are positive integers in Hz")
        bad_languages = [lang for lang in caps.languages if not (isinstance(lang, str) and lang)]
        expect(not bad_languages, f"capabilities.languages holds {bad_languages}: languages are codes such as 'en'")

    def test_options_forbid_unknown_keys(self, backend: Backend) -> None:
        """``Options`` is a pydantic model that rejects an unknown key, so a typo in a profile is an error."""
        options_cls = type(backend).Options
        expect(
            isinstance(options_cls, type) and issubclass(options_cls, pydantic.BaseModel),
            "Options must be a pydantic model (subclass voicekit.options.BackendOptions)",
        )
        expect(
            isinstance(backend.options, options_cls),
            f"the backend keeps a {type(backend.options).__name__} in .options, not its {options_cls.__name__}",
        )
        try:
            options_cls.model_validate({**backend.options.model_dump(), "no_such_option_xyz": 1})
        except pydantic.ValidationError as exc:
            kinds = sorted({e["type"] for e in exc.errors()})
            expect("extra_forbidden" in kinds, f"an unknown key failed as {kinds}, not as extra_forbidden")
        else:
            fail(f"{options_cls.__name__} accepted the unknown key 'no_such_option_xyz': set extra='forbid'")

    def test_options_are_documented(self, backend: Backend) -> None:
        """Every option has a description (``Field(..., description=...)``): ``voicekit plugins`` shows them."""
        undocumented = [n for n, f in type(backend).Options.model_fields.items() if not f.description]
        expect(not undocumented, f"options without a description: {undocumented}")

    @pytest.mark.asyncio
    async def test_aclose_twice(self, backend: Backend) -> None:
        """``aclose()`` may be called twice (the engine and a ``finally`` may both close)."""
        await within(self.timeout_s, "the first aclose()", backend.aclose())
        await within(self.timeout_s, "aclose() after aclose()", backend.aclose())
