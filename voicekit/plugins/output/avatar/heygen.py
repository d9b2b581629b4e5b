"""HeyGen Interactive Avatar (the streaming v1 API): a talking avatar that repeats our text.

HeyGen is moving these integrations to LiveAvatar (``output: {use: liveavatar}``); this
backend keeps existing HeyGen keys working. Per conversation it opens one billable
session (``streaming.new`` → ``streaming.start``), sends every sentence as a ``repeat``
task the moment the sentence exists, keeps the session alive between turns and always
stops it (``streaming.stop``), through the session ledger so that even a killed process
leaves a row that ``voicekit sessions close --stale`` closes.

Speaking state comes from the avatar's LiveKit room (``avatar_start_talking`` /
``avatar_stop_talking`` data messages) when we are connected to it, else from each
task's ``duration_ms``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from voicekit.errors import BackendError
from voicekit.events import OutputEvent
from voicekit.options import CloudOptions
from voicekit.plugins.output.avatar.base import (
    AvatarAPI,
    AvatarAPIError,
    SpeechTimeline,
    Utterance,
    VendorSessionManager,
    after,
    base_url,
    cancel,
    connect_room,
    deadline_margin_s,
    estimate_duration_s,
    every,
    open_tracked,
    remote_sessions_of,
    start_recorder,
    viewer_link,
)
from voicekit.roles import BackendContext, Capabilities, Output

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.heygen.com"
KEY_ENV = "HEYGEN_API_KEY"
URL_ENV = "HEYGEN_BASE_URL"


class HeyGenOptions(CloudOptions):
    """Options of the HeyGen Interactive Avatar output."""

    avatar_id: str = Field("default", description="HeyGen avatar id (see your HeyGen account's avatars)")
    quality: Literal["high", "medium", "low"] = Field(
        "medium", description="Video quality: high 720p/2 Mbps, medium 480p/1 Mbps, low 360p/500 kbps"
    )
    voice_id: str | None = Field(None, description="HeyGen voice id; default: the avatar's own voice")
    voice_rate: float = Field(1.0, ge=0.5, le=1.5, description="Speaking rate of the voice, 0.5-1.5")
    emotion: Literal["Excited", "Serious", "Friendly", "Soothing", "Broadcaster"] | None = Field(
        None, description="Voice emotion (only some voices support it)"
    )
    language: str | None = Field(None, description="Language the avatar speaks; default: the profile's language")
    video_encoding: Literal["H264", "VP8"] = Field("H264", description="Codec of the avatar's video track")
    activity_idle_timeout_s: int = Field(
        120, ge=30, le=3600, description="The service closes the session after this long without activity"
    )
    keepalive_interval_s: float | None = Field(
        None, gt=0, description="Seconds between keep-alives; default: a third of activity_idle_timeout_s"
    )
    connect_room: bool = Field(
        True, description="Join the avatar's LiveKit room (speaking events, recording); failure only warns"
    )
    room_timeout_s: float = Field(10.0, gt=0, description="How long to try joining the LiveKit room")
    record: bool = Field(False, description="With `chat --record DIR`, record the avatar's video to DIR/avatar.mp4")


class HeyGenOutput(Output):
    """Speaks through a HeyGen Interactive Avatar; the sound and picture play in its LiveKit room.

    ``speak`` yields ``SpeakingStarted`` / ``SpeakingEnded`` per sentence as the avatar
    says it; no ``AudioOut`` (the avatar's voice is in the room, not in our speaker).
    """

    Options: ClassVar[type[HeyGenOptions]] = HeyGenOptions
    capabilities = Capabilities(streaming=True, produces_audio=False, remote_session=True)
    api_key_env: ClassVar[str | None] = KEY_ENV
    extra: ClassVar[str | None] = "avatar"
    options: HeyGenOptions

    def __init__(self, options: HeyGenOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.session_id: str | None = None
        self.room_url: str | None = None
        self.access_token: str | None = None
        self.room: Any = None
        self.recorder: Any = None
        self._api: AvatarAPI | None = None
        self._rs: Any = None
        self._own_sessions: Any = None
        self._timeline = SpeechTimeline()
        self._interrupted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ended_reason: str | None = None
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------

    def _new_api(self) -> AvatarAPI:
        return AvatarAPI(
            vendor="HeyGen",
            base_url=base_url(self.options.base_url, URL_ENV, DEFAULT_BASE_URL),
            headers={"x-api-key": self.api_key()},
            key_env=KEY_ENV,
            timeout_s=self.options.timeout_s,
        )

    async def start(self) -> None:
        self._api = self._new_api()
        self._timeline = SpeechTimeline(fast=self.context.fast)
        sessions, owned = remote_sessions_of(self.context)
        self._own_sessions = sessions if owned else None
        self._rs = sessions.opening("heygen", meta={"avatar_id": self.options.avatar_id})
        try:
            data = await open_tracked(
                self._rs,
                self._create,
                "session_id",
                self._closer_for,
                lambda d: {"avatar_id": self.options.avatar_id, "url": d.get("url")},
            )
            self.session_id = str(data["session_id"])
            self.room_url, self.access_token = data.get("url"), data.get("access_token")
            await self._api.call("POST", "/v1/streaming.start", json={"session_id": self.session_id})
            log.info("HeyGen session %s started", self.session_id)
            interval = self.options.keepalive_interval_s or self.options.activity_idle_timeout_s / 3
            self._tasks.append(every(interval, self._keep_alive, "heygen-keepalive"))
            limit = data.get("session_duration_limit")
            if isinstance(limit, (int, float)) and limit > 0:
                delay = max(0.0, float(limit) - deadline_margin_s(float(limit)))
                self._tasks.append(after(delay, lambda: self._end_at_limit(float(limit)), "heygen-deadline"))
            if self.room_url and self.access_token:
                log.info("watch the avatar: %s", viewer_link(self.room_url, self.access_token))
                if self.options.connect_room:
                    room = await connect_room(self.room_url, self.access_token, self.options.room_timeout_s, "HeyGen")
                    if room is not None:
                        self.attach_room(room)
            self.recorder = await start_recorder(self.context, self.room, self.options.record, "HeyGen")
        except BaseException:
            await self.aclose()
            raise

    async def _create(self) -> dict[str, Any]:
        assert self._api is not None
        voice: dict[str, Any] = {"rate": self.options.voice_rate}
        if self.options.voice_id:
            voice["voice_id"] = self.options.voice_id
        if self.options.emotion:
            voice["emotion"] = self.options.emotion
        body: dict[str, Any] = {
            "version": "v2",
            "quality": self.options.quality,
            "avatar_id": self.options.avatar_id,
            "voice": voice,
            "video_encoding": self.options.video_encoding,
            "activity_idle_timeout": self.options.activity_idle_timeout_s,
        }
        language = self.options.language or self.context.language
        if language:
            body["language"] = language
        try:
            data = await self._api.call("POST", "/v1/streaming.new", json=body)
        except AvatarAPIError as exc:
            raise self._explain(exc) from exc
        if not isinstance(data, dict):
            raise BackendError(f"HeyGen streaming.new answered without data: {data!r}")
        return data

    def _explain(self, exc: AvatarAPIError) -> BackendError:
        if exc.code == 10013 or "avatar not found" in exc.detail.lower():
            return BackendError(
                f"HeyGen: avatar '{self.options.avatar_id}' not found (code {exc.code}); "
                "set output.avatar_id to an avatar of your HeyGen account"
            )
        if "concurren" in exc.detail.lower():
            return BackendError(
                f"HeyGen: too many sessions open at once ({exc.detail}); see `voicekit sessions list` "
                "and close leftovers with `voicekit sessions close --stale`",
                retryable=True,
            )
        return exc

    def _closer_for(self, session_id: str) -> Any:
        async def close() -> None:
            await self._stop(session_id)

        return close

    async def _stop(self, session_id: str) -> None:
        """Stop the session; one that no longer exists counts as stopped."""
        api = self._api if self._api is not None and not self._closed else self._new_api()
        try:
            await api.call("POST", "/v1/streaming.stop", json={"session_id": session_id}, idempotent=True)
            log.info("HeyGen session %s stopped", session_id)
        except AvatarAPIError as exc:
            if not exc.gone:
                raise
            log.info("HeyGen session %s was already closed", session_id)
        finally:
            if api is not self._api:
                await api.aclose()

    async def _stop_session(self) -> None:
        rs = self._rs
        if rs is None or rs.closed:
            return
        if rs.remote_id is None:  # never created: nothing to close on the service
            rs.mark_closed()
            return
        try:
            await self._stop(rs.remote_id)
        except Exception as exc:  # noqa: BLE001 - the ledger row stays for `sessions close --stale`
            log.warning("could not stop HeyGen session %s: %s", rs.remote_id, exc)
            return
        rs.mark_closed()

    async def _keep_alive(self) -> None:
        if self._api is None or self.session_id is None or self._ended_reason:
            return
        try:
            await self._api.call(
                "POST", "/v1/streaming.keep_alive", json={"session_id": self.session_id}, idempotent=True
            )
        except AvatarAPIError as exc:
            if exc.gone:
                self._ended_reason = "the service closed it (idle timeout?)"
                log.warning("HeyGen session %s is gone: %s", self.session_id, exc.detail)
                if self._rs is not None:
                    self._rs.mark_closed()
                return
            raise

    async def _end_at_limit(self, limit_s: float) -> None:
        log.warning("HeyGen session %s reaches its %.0f s duration limit: ending it", self.session_id, limit_s)
        self._ended_reason = f"it reached HeyGen's session duration limit ({limit_s:.0f} s)"
        self._interrupted.set()
        await self._stop_session()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._interrupted.set()
        for task in self._tasks:
            await cancel(task)
        self._tasks.clear()
        if self.recorder is not None:
            try:
                await self.recorder.aclose()
            except Exception as exc:  # noqa: BLE001 - the session must still be stopped
                log.warning("avatar recording failed: %s", exc)
            self.recorder = None
        if self.room is not None:
            room, self.room = self.room, None
            try:
                await asyncio.wait_for(room.disconnect(), 5)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001
                log.debug("leaving the LiveKit room failed: %s", exc)
        await self._stop_session()
        self._closed = True
        if self._api is not None:
            await self._api.aclose()
        if self._own_sessions is not None:
            await self._own_sessions.close_all()

    # --- LiveKit room ---------------------------------------------------------------

    def attach_room(self, room: Any) -> None:
        """Take speaking events from ``room`` (connected, or any ``rtc.Room`` that emits them)."""
        self.room = room
        self._timeline.use_signals = True

        def on_data(packet: Any) -> None:
            try:
                message = json.loads(bytes(packet.data).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if not isinstance(message, dict):
                return
            kind = message.get("type")
            key = message.get("task_id")
            if kind == "avatar_start_talking":
                self._timeline.signal("started", str(key) if key else None)
            elif kind == "avatar_stop_talking":
                self._timeline.signal("ended", str(key) if key else None)

        room.on("data_received", on_data)

    # --- speaking -------------------------------------------------------------------

    async def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        """Send each sentence as a task at once; yield its speaking events as the avatar says it."""
        self._check_open()
        self._interrupted = interrupted = asyncio.Event()
        self._timeline.reset()
        items: asyncio.Queue[Utterance | BaseException | None] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send_all(sentences, items, interrupted))
        try:
            async for event in self._timeline.play(items, interrupted):
                yield event
        finally:
            await cancel(sender)
        if self._ended_reason and not self._closed:
            raise BackendError(f"the HeyGen session ended: {self._ended_reason}")

    async def _send_all(
        self,
        sentences: AsyncIterator[str],
        items: asyncio.Queue[Utterance | BaseException | None],
        interrupted: asyncio.Event,
    ) -> None:
        try:
            async for sentence in sentences:
                text = sentence.strip()
                if interrupted.is_set():
                    break
                if text:
                    items.put_nowait(await self._send_task(text))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            items.put_nowait(exc)
        finally:
            items.put_nowait(None)

    async def _send_task(self, text: str) -> Utterance:
        assert self._api is not None and self.session_id is not None
        body = {"session_id": self.session_id, "text": text, "task_type": "repeat", "task_mode": "async"}
        try:
            data = await self._api.call("POST", "/v1/streaming.task", json=body)
        except AvatarAPIError as exc:
            if exc.code == 400006:
                raise BackendError(f"HeyGen session {self.session_id} is not ready for tasks ({exc.detail})") from exc
            if exc.gone:
                self._ended_reason = "the service closed it (idle timeout or duration limit)"
                raise BackendError(f"HeyGen session {self.session_id} has ended ({exc.detail})") from exc
            raise
        data = data if isinstance(data, dict) else {}
        duration_ms = data.get("duration_ms")
        duration = float(duration_ms) / 1000 if isinstance(duration_ms, (int, float)) and duration_ms > 0 else None
        task_id = data.get("task_id")
        return Utterance(text, duration or estimate_duration_s(text), key=str(task_id) if task_id else None)

    def _check_open(self) -> None:
        if self._ended_reason:
            raise BackendError(f"the HeyGen session ended: {self._ended_reason}")
        if self._api is None or self.session_id is None or self._closed:
            raise BackendError("HeyGen output is not started (call start() first)")

    async def interrupt(self) -> None:
        """Stop the avatar now: the current ``speak`` ends and HeyGen drops queued tasks."""
        self._interrupted.set()
        if self._api is None or self.session_id is None or self._closed or self._ended_reason:
            return
        try:
            await self._api.call("POST", "/v1/streaming.interrupt", json={"session_id": self.session_id})
        except AvatarAPIError as exc:
            if not exc.gone:
                raise


class HeyGenSessionManager(VendorSessionManager):
    """Lists and stops the HeyGen streaming sessions of the key in ``HEYGEN_API_KEY``."""

    backend = "heygen"
    vendor = "HeyGen"
    key_env, url_env, default_url = KEY_ENV, URL_ENV, DEFAULT_BASE_URL
    key_header = "x-api-key"
    list_path = "/v1/streaming.list"
    stop_path = "/v1/streaming.stop"
