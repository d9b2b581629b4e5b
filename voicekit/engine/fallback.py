"""The backends of one role: the one serving now, and the ``fallback:`` ones behind it.

A :class:`BackendChain` starts its first backend (retrying per the role's policy, moving
on to the next backend when one cannot start), and when the serving backend fails during
the conversation, :meth:`BackendChain.recover` decides: wait and try the same backend
again (the failure is retryable and the policy allows it), or switch to the next backend —
with one warning line and a :class:`~voicekit.events.BackendSwitched` event — or, with
no backend left, raise the failure as one line that names the backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from voicekit.engine.retry import Retrier
from voicekit.errors import VoicekitError
from voicekit.events import BackendSwitched, Event
from voicekit.options import RetryPolicy
from voicekit.roles import Backend

log = logging.getLogger(__name__)

B = TypeVar("B", bound=Backend)

_CLOSE_TIMEOUT_S = 10.0


class BackendFailure(VoicekitError):
    """A backend's failure as the user reads it: one line naming the backend, with the
    exit code, ``retryable`` and ``retry_after`` of the error it wraps (``__cause__``)."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause
        self.exit_code = getattr(cause, "exit_code", 1)
        self.retryable = bool(getattr(cause, "retryable", False))
        self.retry_after: float | None = getattr(cause, "retry_after", None)


def named_failure(error: BaseException, backend: Backend) -> VoicekitError:
    """``error`` as one line that names ``backend``.

    voicekit's own errors already say what to do (which variable holds the key, which extra
    to install); they only get the backend's name in front when they lack it. Anything
    else — a bug in a plugin — becomes "``role:name`` failed: Type: message".
    """
    if isinstance(error, BackendFailure):
        return error
    name = backend.name or type(backend).__name__
    if isinstance(error, VoicekitError):
        text = str(error)
        if name.lower() in text.lower() or backend.label in text:
            return error
        failure = BackendFailure(f"{backend.label}: {text}", error)
    else:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        failure = BackendFailure(f"{backend.label} failed: {detail} (run with -v for the traceback)", error)
    failure.__cause__ = error
    return failure


class BackendChain(Generic[B]):
    """A role's backends in the order they serve; see the module docstring.

    ``emit`` receives the :class:`BackendSwitched` events; ``warn`` gets one line per switch.
    """

    def __init__(
        self,
        role: str,
        backends: Sequence[B],
        policy: RetryPolicy | None = None,
        *,
        emit: Callable[[Event], None] = lambda event: None,
        warn: Callable[[str], None] = log.warning,
    ) -> None:
        if not backends:
            raise ValueError(f"a {role} chain needs at least one backend")
        self.role = role
        self.backends = list(backends)
        self.policy = policy or RetryPolicy.model_validate({})
        self.emit = emit
        self.warn = warn
        self.index = 0
        self.switches = 0
        self._started: list[B] = []
        self._retrier = Retrier(self.policy, label=self.active.label)

    @property
    def active(self) -> B:
        """The backend serving now."""
        return self.backends[self.index]

    @property
    def name(self) -> str:
        return self.active.name or type(self.active).__name__

    async def start(self) -> B:
        """Start the first backend that can start (each tried per the retry policy)."""
        while True:
            backend = self.active
            retrier = Retrier(self.policy, label=backend.label)
            while True:
                if backend not in self._started:
                    self._started.append(backend)  # even half-started: aclose() releases what it opened
                try:
                    await backend.start()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a plugin may raise anything; it is named below
                    try:
                        await retrier.wait(exc)
                    except Exception:  # noqa: BLE001 - no retry left for this backend
                        await self._move_on(named_failure(exc, backend))
                        break
                    continue
                self._retrier = Retrier(self.policy, label=backend.label)
                return backend

    async def recover(self, error: BaseException, *, retry: bool = True) -> B:
        """The serving backend failed: wait and keep it (``retry`` and the policy allow), or
        switch to the next backend and start it. Raises the failure when none is left."""
        if retry:
            try:
                await self._retrier.wait(error)
                return self.active
            except Exception:  # noqa: BLE001 - retrying cannot help: fall back
                pass
        await self._move_on(named_failure(error, self.active))
        return await self.start()

    def succeeded(self) -> None:
        """The serving backend did its job: the next failure gets the whole retry policy again."""
        self._retrier.reset()

    async def _move_on(self, failure: VoicekitError) -> None:
        if self.index + 1 >= len(self.backends):
            raise failure
        failed = self.active
        self.index += 1
        self.switches += 1
        successor = self.active
        reason = str(failure)
        self.warn(f"{self.role} backend '{failed.name}' failed ({reason}); switching to '{successor.name}'")
        self.emit(BackendSwitched(self.role, failed.name, successor.name, reason))
        await self._close(failed)

    async def _close(self, backend: B) -> None:
        if backend not in self._started:
            return
        self._started.remove(backend)
        try:
            await asyncio.wait_for(backend.aclose(), _CLOSE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - keep going; the next backend serves
            log.warning("closing %s failed: %s", backend.label, exc)

    async def aclose(self) -> None:
        """Close every backend that was started, the serving one last."""
        for backend in list(self._started):
            await self._close(backend)

    def backend_error(self, error: BaseException) -> VoicekitError:
        """``error`` of the serving backend as one line naming it."""
        return named_failure(error, self.active)


__all__ = ["BackendChain", "BackendFailure", "named_failure"]
