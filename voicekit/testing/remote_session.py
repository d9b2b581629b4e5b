"""The remote-session contract: a backend that opens a billable remote session always closes it.

A backend whose ``capabilities.remote_session`` is set (a talking avatar, say) proves it by
subclassing :class:`RemoteSessionContract` in its tests and giving it three fixtures:

- ``backend_factory``: a function making an *unstarted* backend from the
  :class:`~voicekit.roles.BackendContext` the contract hands it (whose ``remote_sessions``
  write to the contract's test ledger), pointed at a fake of the service;
- ``active_sessions``: a function (plain or ``async``) returning the ids of the sessions
  the service (the fake) has open right now;
- ``chat_profile``: a :class:`ChatProfile` with which ``voicekit chat`` uses the backend
  against the same fake, for the test that interrupts a real ``voicekit chat`` process.

A complete example, with the backend it tests, is in ``docs/plugins.md`` ("A backend with a
billable remote session"); the built-in avatars pass it in
``tests/contract/test_remote_session_contract.py``.

Each test then ends with the same check: the service lists no session as active and the
ledger has no open row, and a failure says which session was left, and after what. The
fake must really make a session for every create it receives, as the service would: the
contract cancels ``start()`` at every point where it waits, the create request in flight
included, and the session made meanwhile must still be stopped.

Like :mod:`voicekit.testing.contracts`, this module imports pytest and needs pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from voicekit.clock import now
from voicekit.ledger import RemoteSessions, SessionLedger
from voicekit.roles import BackendContext, Output
from voicekit.testing.contracts._support import drain as _drain
from voicekit.testing.contracts._support import feed as _feed

__all__ = ["ChatProfile", "RemoteSessionContract"]


async def _read_all(events: AsyncIterator[object]) -> None:
    """Read every event; what the iteration raises goes to the caller."""
    async for _ in events:
        pass


BackendFactory = Callable[[BackendContext], Output]
ActiveSessions = Callable[[], "Iterable[str] | Awaitable[Iterable[str]]"]


@dataclass(frozen=True)
class ChatProfile:
    """How ``voicekit chat`` runs with the backend: ``profile`` (a name or a path), the
    environment it needs (keys, base URLs of the fake) and ``--set`` overrides.

    The contract adds ``--text`` (it types one line, ``chat_line``), ``--output`` (a WAV
    file, no speaker) and ``VOICEKIT_LEDGER`` (a ledger of its own), so the profile's LLM
    must work offline or against a fake too (``llm: {use: echo}`` does).
    """

    profile: str
    env: Mapping[str, str] = field(default_factory=dict)
    overrides: Sequence[str] = ()


class _TurnFailed(RuntimeError):
    """What the sentences of the failing turn raise."""


class RemoteSessionContract:
    """Every way a conversation can end leaves no session open on the service nor in the ledger."""

    #: upper bound of every wait, in seconds
    timeout_s: ClassVar[float] = 30.0
    #: how long the service is watched for a session that appears late (a create that was in flight)
    settle_s: ClassVar[float] = 0.2
    #: the profile's language, given to the backend in its context
    language: ClassVar[str] = "en"
    #: a short reply
    sentences: ClassVar[tuple[str, ...]] = ("Hello there.", "How are you today?")
    #: a reply long enough to be cancelled while it is spoken
    long_sentences: ClassVar[tuple[str, ...]] = (
        "This sentence is long enough that speaking it takes a good while, so it can be cut off.",
        "Nobody should ever hear this second sentence.",
    )
    #: what the SIGINT test types into ``voicekit chat --text``
    chat_line: ClassVar[str] = "Hello there."
    #: seconds between the session's opening and the SIGINT
    sigint_after_s: ClassVar[float] = 0.5
    #: the cancellation sweep of start() gives up (and fails) past this many await points
    max_await_points: ClassVar[int] = 500

    # --- what a subclass provides ------------------------------------------------------

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """Override: a function ``(context) -> backend``, unstarted, talking to the fake service."""
        pytest.fail(f"{type(self).__name__}: define a `backend_factory` fixture (context -> unstarted backend)")

    @pytest.fixture
    def active_sessions(self) -> ActiveSessions:
        """Override: a function returning the ids of the sessions active on the (fake) service."""
        pytest.fail(f"{type(self).__name__}: define an `active_sessions` fixture (() -> ids active on the service)")

    @pytest.fixture
    def chat_profile(self) -> ChatProfile:
        """Override: how ``voicekit chat`` runs with the backend against the fake service."""
        pytest.fail(f"{type(self).__name__}: define a `chat_profile` fixture returning a ChatProfile")

    # --- what the contract sets up -------------------------------------------------------

    @pytest.fixture
    def remote_ledger(self, tmp_path: Path) -> SessionLedger:
        """The ledger every backend of a test writes its rows to."""
        return SessionLedger(tmp_path / "remote-session-contract.sqlite3")

    @pytest.fixture
    async def make_backend(
        self, backend_factory: BackendFactory, remote_ledger: SessionLedger
    ) -> AsyncIterator[Callable[[], Output]]:
        """Unstarted backends wired to ``remote_ledger``; whatever a test leaves is closed after it."""
        made: list[tuple[Output, RemoteSessions]] = []

        def make() -> Output:
            sessions = RemoteSessions(remote_ledger, "contract")
            context = BackendContext(language=self.language, conversation_id="contract", remote_sessions=sessions)
            backend = backend_factory(context)
            assert isinstance(backend, Output), f"backend_factory made {backend!r}, not a voicekit Output"
            made.append((backend, sessions))
            return backend

        yield make
        for backend, sessions in made:
            try:
                await asyncio.wait_for(backend.aclose(), self.timeout_s)
            except Exception:  # noqa: BLE001 - the test has spoken already; this only tidies up
                pass
            sessions.stop_heartbeat()

    # --- checks --------------------------------------------------------------------------

    async def _active(self, active_sessions: ActiveSessions) -> list[str]:
        found = active_sessions()
        if inspect.isawaitable(found):
            found = await found
        return [str(remote_id) for remote_id in found]

    async def _assert_closed(self, active_sessions: ActiveSessions, ledger: SessionLedger, after: str) -> None:
        """Nothing open on the service (watched for ``settle_s``) nor in the ledger."""
        deadline = now() + self.settle_s
        while True:
            active = await self._active(active_sessions)
            if active:
                pytest.fail(f"session {active[0]} still active on the service after {after}")
            if now() >= deadline:
                break
            await asyncio.sleep(min(0.05, self.settle_s))
        for row in ledger.remote_sessions():
            pytest.fail(
                f"ledger row {row.id} ({row.backend} session {row.remote_id or 'not bound to a remote id'}) "
                f"still open after {after}"
            )

    async def _start(self, backend: Output) -> None:
        try:
            await asyncio.wait_for(backend.start(), self.timeout_s)
        except TimeoutError:
            pytest.fail(f"start() did not finish within {self.timeout_s} s")

    # --- the tests -----------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_closed_after_a_normal_end(
        self, make_backend: Callable[[], Output], active_sessions: ActiveSessions, remote_ledger: SessionLedger
    ) -> None:
        """Start, one turn, ``aclose()``: while it runs the ledger row is bound to the session the
        service lists; afterwards the service lists none and the row is closed."""
        backend = make_backend()
        await self._start(backend)
        active = await self._active(active_sessions)
        rows = remote_ledger.remote_sessions()
        assert active, "the service has no active session after start(): does `active_sessions` ask the right fake?"
        assert rows, "start() wrote no ledger row: open one with context.remote_sessions.opening() before the create"
        bound = {row.remote_id for row in rows}
        for remote_id in active:
            assert remote_id in bound, (
                f"session {remote_id} is active on the service but no ledger row is bound to it "
                "(bind the row as soon as the service answers)"
            )
        await _drain(backend.speak(_feed(self.sentences)), self.timeout_s, "speak()")
        await asyncio.wait_for(backend.aclose(), self.timeout_s)
        await self._assert_closed(active_sessions, remote_ledger, "a normal end (start, one turn, aclose)")

    @pytest.mark.asyncio
    async def test_closed_after_an_error_in_a_turn(
        self, make_backend: Callable[[], Output], active_sessions: ActiveSessions, remote_ledger: SessionLedger
    ) -> None:
        """A turn whose sentences raise: ``speak()`` raises that error, and leaving the
        ``async with`` block closes the session."""

        async def failing() -> AsyncIterator[str]:
            yield self.sentences[0]
            raise _TurnFailed("the reply broke")

        backend = make_backend()
        try:
            async with backend:
                await asyncio.wait_for(_read_all(backend.speak(failing())), self.timeout_s)
        except _TurnFailed:
            pass
        except Exception as exc:  # noqa: BLE001 - said in the failure
            pytest.fail(f"speak() raised {exc!r} instead of the error its sentences raised")
        else:
            pytest.fail("speak() ended normally although its sentences raised: the error must reach the caller")
        await self._assert_closed(active_sessions, remote_ledger, "an exception raised inside a turn")

    @pytest.mark.asyncio
    async def test_closed_after_cancellation_mid_turn(
        self, make_backend: Callable[[], Output], active_sessions: ActiveSessions, remote_ledger: SessionLedger
    ) -> None:
        """The task of a conversation cancelled while the avatar speaks (barge-in gone wrong, Ctrl-C)."""
        backend = make_backend()
        speaking = asyncio.Event()

        async def conversation() -> None:
            async with backend, aclosing(backend.speak(_feed(self.long_sentences))) as events:  # type: ignore[type-var]
                async for _event in events:
                    speaking.set()
                    await asyncio.sleep(3600)  # still in the turn when the cancellation comes

        task = asyncio.ensure_future(conversation())
        waiter = asyncio.ensure_future(speaking.wait())
        await asyncio.wait({task, waiter}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # a failure of its own is the error to show
            pytest.fail("speak() yielded nothing: no turn to cancel")
        assert speaking.is_set(), f"speak() yielded nothing within {self.timeout_s} s"
        task.cancel()
        await asyncio.wait({task}, timeout=self.timeout_s)
        assert task.done(), f"the cancelled conversation did not end within {self.timeout_s} s"
        assert task.cancelled(), f"cancelling a turn must end it with CancelledError, not {task.exception()!r}"
        await self._assert_closed(active_sessions, remote_ledger, "cancellation in the middle of a turn")

    @pytest.mark.asyncio
    async def test_closed_after_cancellation_during_start(
        self, make_backend: Callable[[], Output], active_sessions: ActiveSessions, remote_ledger: SessionLedger
    ) -> None:
        """``start()`` cancelled at each of its await points in turn (the create request in flight
        included), then ``aclose()`` as the engine does: nothing stays open, whatever the
        service made meanwhile. ``start()`` lets the ``CancelledError`` through."""
        point = 0
        while True:
            assert point < self.max_await_points, f"start() waited more than {self.max_await_points} times"
            backend = make_backend()
            cancelled_at, waits = await self._start_cancelled_at(backend, point)
            await asyncio.wait_for(backend.aclose(), self.timeout_s)
            if cancelled_at is None:  # start() finished before reaching this point: every point is covered
                await self._assert_closed(active_sessions, remote_ledger, f"a start() that waited {waits} times")
                break
            await self._assert_closed(active_sessions, remote_ledger, f"cancellation during start() ({cancelled_at})")
            point += 1

    async def _start_cancelled_at(self, backend: Output, point: int) -> tuple[str | None, int]:
        """Run ``start()``, cancelling it when it waits for the ``point``-th time (from 0).

        Returns where it was cancelled (``None``: it finished first) and how many times it waited.
        """
        waits, where = [0], [""]
        package = type(backend).__module__.partition(".")[0]
        task = asyncio.ensure_future(_cancel_at(backend.start(), point, waits, where, package))
        await asyncio.wait({task}, timeout=self.timeout_s)
        at = f"at its await point {point}, in {where[0]}"
        if not task.done():
            task.cancel()
            pytest.fail(f"start() did not end within {self.timeout_s} s of its cancellation {at}")
        if task.cancelled():
            return at, waits[0]
        error = task.exception()
        if error is not None:
            pytest.fail(f"start() cancelled {at} raised {error!r}, not CancelledError")
        if waits[0] > point:
            pytest.fail(f"start() went on after it was cancelled {at}: it must let CancelledError out")
        return None, waits[0]

    @pytest.mark.asyncio
    async def test_closed_after_aclose_twice(
        self, make_backend: Callable[[], Output], active_sessions: ActiveSessions, remote_ledger: SessionLedger
    ) -> None:
        """``aclose()`` twice (the engine and a ``finally`` may both close) is harmless and closes it."""
        backend = make_backend()
        await self._start(backend)
        await asyncio.wait_for(backend.aclose(), self.timeout_s)
        await asyncio.wait_for(backend.aclose(), self.timeout_s)
        await self._assert_closed(active_sessions, remote_ledger, "aclose() twice")

    @pytest.mark.asyncio
    async def test_aclose_before_start_opens_nothing(
        self, make_backend: Callable[[], Output], active_sessions: ActiveSessions, remote_ledger: SessionLedger
    ) -> None:
        """``aclose()`` of a backend never started asks nothing of the service and writes no row."""
        backend = make_backend()
        await asyncio.wait_for(backend.aclose(), self.timeout_s)
        await self._assert_closed(active_sessions, remote_ledger, "aclose() before start()")
        rows = remote_ledger.remote_sessions(include_closed=True)
        assert not rows, f"aclose() before start() wrote ledger rows: {rows}"

    @pytest.mark.asyncio
    async def test_closed_after_sigint_of_voicekit_chat(
        self, chat_profile: ChatProfile, active_sessions: ActiveSessions, tmp_path: Path
    ) -> None:
        """A real ``voicekit chat`` process with the profile, interrupted by SIGINT once its
        session is open: the process closes the session itself and exits with 130."""
        ledger_path = tmp_path / "chat-ledger.sqlite3"
        args = ["--profile", chat_profile.profile, "--text", "--output", str(tmp_path / "chat-reply.wav")]
        for override in chat_profile.overrides:
            args += ["--set", override]
        env = {**os.environ, **chat_profile.env, "VOICEKIT_LEDGER": str(ledger_path)}
        with (tmp_path / "chat.out").open("wb") as out, (tmp_path / "chat.err").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voicekit", "chat", *args,
                env=env, stdin=asyncio.subprocess.PIPE, stdout=out, stderr=err,
            )  # fmt: skip
        try:
            await self._interrupt_chat(proc, active_sessions, tmp_path / "chat.err")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 128 + signal.SIGINT, (
            f"voicekit chat exited with {proc.returncode} after SIGINT, not {128 + signal.SIGINT}: "
            f"{_tail(tmp_path / 'chat.err')}"
        )
        ledger = SessionLedger(ledger_path)
        assert ledger.remote_sessions(include_closed=True), "voicekit chat wrote no ledger row for its session"
        await self._assert_closed(active_sessions, ledger, "SIGINT of voicekit chat")

    async def _interrupt_chat(
        self, proc: asyncio.subprocess.Process, active_sessions: ActiveSessions, err: Path
    ) -> None:
        assert proc.stdin is not None
        proc.stdin.write(f"{self.chat_line}\n".encode())
        await proc.stdin.drain()
        deadline = now() + self.timeout_s
        while not await self._active(active_sessions):
            if proc.returncode is not None:
                pytest.fail(f"voicekit chat ended ({proc.returncode}) before opening a session: {_tail(err)}")
            if now() > deadline:
                pytest.fail(f"voicekit chat opened no session on the service within {self.timeout_s} s: {_tail(err)}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(self.sigint_after_s)
        proc.send_signal(signal.SIGINT)
        # the session must close because of the signal, not because the input ends: watch it first
        deadline = now() + self.timeout_s
        while active := await self._active(active_sessions):
            if now() > deadline:
                pytest.fail(f"session {active[0]} still active on the service after SIGINT of voicekit chat")
            await asyncio.sleep(0.05)
        proc.stdin.close()  # `--text` reads stdin in a thread, which only ends with its input
        try:
            await asyncio.wait_for(proc.wait(), self.timeout_s)
        except TimeoutError:
            pytest.fail(f"voicekit chat did not exit within {self.timeout_s} s of SIGINT: {_tail(err)}")


# --- helpers ---------------------------------------------------------------------------


@types.coroutine
def _cancel_at(
    coro: Awaitable[Any], point: int, waits: list[int], where: list[str], package: str
) -> Generator[Any, Any, Any]:
    """Run ``coro`` as the task's body and cancel the task when ``coro`` waits for the ``point``-th time.

    The cancellation lands exactly at that ``await``; ``waits[0]`` counts the waits and
    ``where[0]`` says where in the code the cancelled wait is.
    """
    steps = coro.__await__()
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            waiting_for = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            return stop.value
        if waits[0] == point:
            where[0] = _waiting_at(coro, package)
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # delivered when the task sees what it waits for: at this await
        waits[0] += 1
        try:
            value, error = (yield waiting_for), None
        except BaseException as exc:  # noqa: BLE001 - passed on to the coroutine, as a task would
            value, error = None, exc


def _waiting_at(coro: Any, package: str) -> str:
    """Where a suspended coroutine waits: its innermost frame in ``package`` (the backend's
    own code), else its innermost frame outside asyncio."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    own = [f for f in frames if str(f.f_globals.get("__name__", "")).partition(".")[0] == package]
    outside_asyncio = [f for f in frames if not str(f.f_globals.get("__name__", "")).startswith("asyncio")]
    candidates = own or outside_asyncio or frames
    if not candidates:
        return "an unknown place"
    frame = candidates[-1]
    return f"{frame.f_code.co_name}() at {frame.f_code.co_filename}:{frame.f_lineno}"


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no output)"
