"""What the avatar outputs (HeyGen, LiveAvatar) share.

- :class:`AvatarAPI`: JSON over HTTPS with the vendors' ``{"code", "message", "data"}``
  envelope, 429 + Retry-After retried, errors turned into one clear line.
- :func:`open_tracked`: create a billable session so that it is in the ledger before it
  exists and bound to its remote id as soon as it does, even under cancellation.
- :class:`SpeechTimeline`: turns "sentence sent to the avatar" into ``SpeakingStarted`` /
  ``SpeakingEnded`` in the avatar's own time, from its speaking signals when we receive
  them, else from the expected duration.
- :func:`connect_room`: best-effort LiveKit connection (no room is not fatal for most uses).
- :func:`every`: a periodic task (keep-alive) whose failures are logged, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.clock import now
from voicekit.errors import AuthError, BackendError, MissingSecretError
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.ledger.remote import RemoteSessionInfo, RemoteSessionManager
from voicekit.roles import BackendContext, RemoteSessionTracker
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from voicekit.ledger.remote import RemoteSession

log = logging.getLogger(__name__)

SUCCESS_CODES = (100, 1000)


class AvatarAPIError(BackendError):
    """A failed call: HTTP ``status`` and the vendor's ``code`` (either may be ``None``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: int | None,
        detail: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def gone(self) -> bool:
        """The session does not exist (any more): for a stop, that means it is closed."""
        text = self.detail.lower()
        return (
            self.code == 400004
            or self.status == 404
            or "does not exist" in text
            or "not found" in text
            or "already closed" in text
            or "already stopped" in text
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from datetime import datetime
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class AvatarAPI:
    """One vendor's REST API through an ``httpx.AsyncClient``."""

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        headers: dict[str, str],
        key_env: str,
        timeout_s: float,
        max_retries: int = 3,
        max_retry_wait_s: float = 30.0,
    ) -> None:
        httpx = import_sdk("httpx", package="httpx", extra="avatar", backend=vendor.lower())
        self.vendor = vendor
        self.key_env = key_env
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self._httpx = httpx
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        auth: str = "key",
    ) -> Any:
        """The ``data`` of a successful reply. ``idempotent`` calls are also retried on 5xx
        and dropped connections; every call is retried on 429 (the service did nothing)."""
        name = path.rsplit("/", 1)[-1] if "." in path else path
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                resp = await self._client.request(method, path, json=json, params=params, headers=headers)
            except self._httpx.TransportError as exc:
                if idempotent and not last:
                    await asyncio.sleep(0.5 * 2**attempt)
                    continue
                raise AvatarAPIError(
                    f"{self.vendor} {name}: cannot reach {self.base_url} ({type(exc).__name__}: {exc}); "
                    "check the network or the backend's base_url",
                    status=None,
                    code=None,
                    retryable=True,
                ) from exc
            if resp.status_code == 429:
                wait = _retry_after(resp.headers.get("retry-after"))
                delay = 1.0 * 2**attempt if wait is None else wait
                if not last and delay <= self.max_retry_wait_s:
                    log.info("%s %s: rate limited, retrying in %.1f s", self.vendor, name, delay)
                    await asyncio.sleep(delay)
                    continue
                raise AvatarAPIError(
                    f"{self.vendor} {name}: rate limited (HTTP 429); retry after {delay:.0f} s",
                    status=429,
                    code=None,
                    retryable=True,
                    retry_after=delay,
                )
            if resp.status_code >= 500 and idempotent and not last:
                await asyncio.sleep(0.5 * 2**attempt)
                continue
            return self._result(resp, name, auth)
        raise AssertionError("unreachable")

    def _result(self, resp: Any, name: str, auth: str) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        code = code if isinstance(code, int) else None
        if 200 <= resp.status_code < 300 and (code is None or code in SUCCESS_CODES):
            return body.get("data") if isinstance(body, dict) else body
        message = ""
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("detail") or body.get("error") or "")
        message = message or resp.text[:200] or resp.reason_phrase
        if resp.status_code in (401, 403) and auth == "key":
            raise AuthError(
                f"{self.vendor} rejected the API key (HTTP {resp.status_code}: {message}); "
                f"check the environment variable {self.key_env}"
            )
        return_code = f", code {code}" if code is not None else ""
        raise AvatarAPIError(
            f"{self.vendor} {name} failed (HTTP {resp.status_code}{return_code}): {message}",
            status=resp.status_code,
            code=code,
            detail=message,
            retryable=resp.status_code >= 500,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def base_url(option: str | None, env: str, default: str) -> str:
    """The endpoint: the ``base_url`` option, else the ``env`` variable, else the vendor's."""
    return (option or os.environ.get(env) or default).rstrip("/")


# --- ledger -------------------------------------------------------------------------


def remote_sessions_of(context: BackendContext) -> tuple[RemoteSessionTracker, bool]:
    """The conversation's remote sessions, or our own (returned ``True``) when run standalone."""
    if context.remote_sessions is not None:
        return context.remote_sessions, False
    from voicekit.ledger.ledger import SessionLedger
    from voicekit.ledger.remote import RemoteSessions

    return RemoteSessions(SessionLedger(), context.conversation_id or None), True


async def open_tracked(
    rs: RemoteSession,
    create: Callable[[], Awaitable[dict[str, Any]]],
    id_key: str,
    closer_for: Callable[[str], Callable[[], Awaitable[None]]],
    meta: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Run ``create`` and bind the session it makes; if cancelled meanwhile, still close it."""
    task = asyncio.ensure_future(create())
    try:
        data = await asyncio.shield(task)
    except asyncio.CancelledError:
        # the request may already be on the service: let it finish, then stop what it made
        with contextlib.suppress(Exception, asyncio.CancelledError):
            data = await asyncio.wait_for(task, 10)
            rs.bind(str(data[id_key]), closer_for(str(data[id_key])), meta(data))
            await rs.closer()  # type: ignore[misc]
            rs.mark_closed()
        raise
    remote_id = data.get(id_key) if isinstance(data, dict) else None
    if not remote_id:
        raise BackendError(f"the service answered without a {id_key}: {str(data)[:200]}")
    rs.bind(str(remote_id), closer_for(str(remote_id)), meta(data))
    return data


# --- timing -------------------------------------------------------------------------


@dataclass
class Utterance:
    """One sentence handed to the avatar: ``key`` matches its speaking signals if any."""

    text: str
    duration_s: float
    key: str | None = None
    sent_at: float = field(default_factory=now)
    audio: list[bytes] = field(default_factory=list)  # PCM to yield as AudioOut (LITE local audio)
    sample_rate: int = 24000


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

    async def play(
        self, items: asyncio.Queue[Utterance | BaseException | None], interrupted: asyncio.Event
    ) -> AsyncIterator[OutputEvent]:
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


# --- background tasks ---------------------------------------------------------------


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


async def cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def deadline_margin_s(limit_s: float) -> float:
    """How long before a hard session limit we end the session ourselves."""
    return min(15.0, max(0.1, limit_s * 0.1))


# --- LiveKit ------------------------------------------------------------------------


async def connect_room(url: str, token: str, timeout_s: float, vendor: str) -> Any:
    """A connected ``rtc.Room``, or ``None`` with a warning if it cannot be reached."""
    rtc = import_sdk("livekit.rtc", package="livekit", extra="avatar", backend=vendor.lower())
    room = rtc.Room()
    try:
        await asyncio.wait_for(room.connect(url, token, rtc.RoomOptions(auto_subscribe=True)), timeout_s)
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - the caller decides whether it is fatal
        log.warning("%s: could not join the avatar's LiveKit room %s (%s); going on without it", vendor, url, exc)
        with contextlib.suppress(Exception):
            await room.disconnect()
        return None
    return room


def viewer_link(url: str, token: str) -> str:
    """A link that shows the room in a browser (LiveKit's hosted Meet client)."""
    from urllib.parse import urlencode

    return "https://meet.livekit.io/custom?" + urlencode({"liveKitUrl": url, "token": token})


async def start_recorder(context: BackendContext, room: Any, enabled: bool, vendor: str) -> Any:
    """An :class:`~voicekit.recording_av.AvatarRecorder` on ``room`` if recording is asked for."""
    record_dir = context.record_dir
    if not enabled or not record_dir:
        return None
    if room is None:
        log.warning("%s: no LiveKit room, so the avatar's video is not recorded", vendor)
        return None
    from voicekit.recording_av import AvatarRecorder

    recorder = AvatarRecorder(Path(record_dir) / "avatar.mp4")
    recorder.attach(room)
    return recorder


# --- session managers ---------------------------------------------------------------


def session_rows(data: Any) -> list[dict[str, Any]]:
    """The session list, whether ``data`` is the list itself or wraps it."""
    if isinstance(data, dict):
        for key in ("sessions", "results", "items", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


class VendorSessionManager(RemoteSessionManager):
    """A vendor's active sessions through its REST API (key from the environment)."""

    vendor = ""
    key_env = ""
    url_env = ""
    default_url = ""
    key_header = ""
    list_path = ""
    list_params: dict[str, str] | None = None
    stop_path = ""
    stop_extra: dict[str, str] = {}  # noqa: RUF012 - read-only class constant

    def __init__(self, api_key: str | None = None, base_url: str | None = None) -> None:
        self._key = api_key
        self._base_url = base_url
        self._client: AvatarAPI | None = None

    def _api(self) -> AvatarAPI:
        if self._client is None:
            key = self._key or os.environ.get(self.key_env)
            if not key:
                raise MissingSecretError(
                    f"{self.backend}: set the environment variable {self.key_env} to list or close its sessions"
                )
            self._client = AvatarAPI(
                vendor=self.vendor,
                base_url=base_url(self._base_url, self.url_env, self.default_url),
                headers={self.key_header: key},
                key_env=self.key_env,
                timeout_s=15.0,
            )
        return self._client

    async def list_active(self) -> list[RemoteSessionInfo]:
        data = await self._api().call("GET", self.list_path, params=self.list_params, idempotent=True)
        infos = []
        for row in session_rows(data):
            remote_id = row.get("session_id") or row.get("id")
            if not remote_id:
                continue
            created = row.get("created_at")
            infos.append(
                RemoteSessionInfo(
                    self.backend,
                    str(remote_id),
                    str(row.get("status", "active")),
                    float(created) if isinstance(created, (int, float)) else None,
                    {k: v for k, v in row.items() if k not in ("session_id", "id", "status", "created_at")},
                )
            )
        return infos

    async def close(self, remote_id: str) -> bool:
        try:
            await self._api().call(
                "POST", self.stop_path, json={"session_id": remote_id, **self.stop_extra}, idempotent=True
            )
        except AvatarAPIError as exc:
            if not exc.gone:
                raise
        return True

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
