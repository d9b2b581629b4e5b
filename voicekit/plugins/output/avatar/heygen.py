"""HeyGen Interactive Avatar (the streaming v1 API): a talking avatar that repeats our text.

HeyGen is moving these integrations to LiveAvatar (``output: {use: liveavatar}``); this
backend keeps existing HeyGen keys working. Per conversation it opens one billable
session (``streaming.new`` → ``streaming.start``), sends every sentence as a ``repeat``
task the moment the sentence exists, keeps the session alive between turns
(``streaming.keep_alive``) and always stops it (``streaming.stop``); the session's life
is :class:`~voicekit.plugins.output.avatar.base.RemoteAvatarOutput`'s.

Speaking state comes from the avatar's LiveKit room (``avatar_start_talking`` /
``avatar_stop_talking`` data messages) when we are connected to it, else from each
task's ``duration_ms``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar, Literal

from pydantic import Field

from voicekit.errors import BackendError
from voicekit.plugins.output.avatar.api import AvatarAPI, AvatarAPIError, AvatarService, too_many_sessions
from voicekit.plugins.output.avatar.base import RemoteAvatarOptions, RemoteAvatarOutput
from voicekit.plugins.output.avatar.room import connect_room, viewer_link
from voicekit.plugins.output.avatar.sessions import VendorSessionManager
from voicekit.plugins.output.avatar.timeline import Utterance, estimate_duration_s
from voicekit.roles import BackendContext

log = logging.getLogger(__name__)

HEYGEN = AvatarService(
    vendor="HeyGen",
    backend="heygen",
    key_env="HEYGEN_API_KEY",
    url_env="HEYGEN_BASE_URL",
    default_url="https://api.heygen.com",
    key_header="x-api-key",
)
DEFAULT_BASE_URL, KEY_ENV, URL_ENV = HEYGEN.default_url, HEYGEN.key_env, HEYGEN.url_env


class HeyGenOptions(RemoteAvatarOptions):
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
        None, gt=0, le=3600, description="Seconds between keep-alives; default: a third of activity_idle_timeout_s"
    )


class HeyGenOutput(RemoteAvatarOutput):
    """Speaks through a HeyGen Interactive Avatar; the sound and picture play in its LiveKit room.

    ``speak`` yields ``SpeakingStarted`` / ``SpeakingEnded`` per sentence as the avatar
    says it; no ``AudioOut`` (the avatar's voice is in the room, not in our speaker).
    """

    Options: ClassVar[type[HeyGenOptions]] = HeyGenOptions
    api_key_env: ClassVar[str | None] = KEY_ENV
    service: ClassVar[AvatarService] = HEYGEN
    options: HeyGenOptions

    def __init__(self, options: HeyGenOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.room_url: str | None = None
        self.access_token: str | None = None
        self._limit_s: float | None = None

    # --- the session ----------------------------------------------------------------

    def ledger_meta(self) -> dict[str, Any]:
        return {"avatar_id": self.options.avatar_id}

    def bound_meta(self, created: dict[str, Any]) -> dict[str, Any]:
        return {"avatar_id": self.options.avatar_id, "url": created.get("url")}

    async def create_session(self, api: AvatarAPI) -> Any:
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
        return await api.call("POST", "/v1/streaming.new", json=body)

    def explain(self, exc: AvatarAPIError) -> BackendError:
        if exc.code == 10013 or "avatar not found" in exc.detail.lower():
            return BackendError(
                f"HeyGen: avatar '{self.options.avatar_id}' not found (code {exc.code}); "
                "set output.avatar_id to an avatar of your HeyGen account"
            )
        return too_many_sessions("HeyGen", exc) or exc

    async def begin(self, created: dict[str, Any]) -> None:
        assert self.api is not None
        self.room_url, self.access_token = created.get("url"), created.get("access_token")
        limit = created.get("session_duration_limit")
        self._limit_s = float(limit) if isinstance(limit, (int, float)) else None
        await self.api.call("POST", "/v1/streaming.start", json={"session_id": self.session_id})
        if self.room_url and self.access_token:
            log.info("watch the avatar: %s", viewer_link(self.room_url, self.access_token))
            if self.options.connect_room:
                room = await connect_room(self.room_url, self.access_token, self.options.room_timeout_s, "HeyGen")
                if room is not None:
                    self.attach_room(room)

    async def stop_call(self, api: AvatarAPI, session_id: str) -> None:
        await api.call("POST", "/v1/streaming.stop", json={"session_id": session_id}, idempotent=True)

    def keepalive_interval_s(self) -> float:
        return self.options.keepalive_interval_s or self.options.activity_idle_timeout_s / 3

    async def keep_alive(self) -> None:
        assert self.api is not None
        await self.api.call("POST", "/v1/streaming.keep_alive", json={"session_id": self.session_id}, idempotent=True)

    def duration_limit_s(self) -> float | None:
        return self._limit_s

    # --- speaking -------------------------------------------------------------------

    def on_room_data(self, packet: Any) -> None:
        try:
            message = json.loads(bytes(packet.data).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        key = str(message["task_id"]) if message.get("task_id") else None
        if kind == "avatar_start_talking":
            self.timeline.signal("started", key)
        elif kind == "avatar_stop_talking":
            self.timeline.signal("ended", key)

    async def send_text(self, text: str) -> Utterance:
        assert self.api is not None
        body = {"session_id": self.session_id, "text": text, "task_type": "repeat", "task_mode": "async"}
        try:
            data = await self.api.call("POST", "/v1/streaming.task", json=body)
        except AvatarAPIError as exc:
            if exc.code == 400006:
                raise BackendError(f"HeyGen session {self.session_id} is not ready for tasks ({exc.detail})") from exc
            if exc.gone:
                self.session_ended("the service closed it (idle timeout or duration limit)", gone=True)
                raise BackendError(f"HeyGen session {self.session_id} has ended ({exc.detail})") from exc
            raise
        data = data if isinstance(data, dict) else {}
        duration_ms = data.get("duration_ms")
        duration = float(duration_ms) / 1000 if isinstance(duration_ms, (int, float)) and duration_ms > 0 else None
        task_id = data.get("task_id")
        return Utterance(text, duration or estimate_duration_s(text), key=str(task_id) if task_id else None)

    async def interrupt_avatar(self) -> None:
        """HeyGen drops the queued tasks and the avatar stops talking."""
        assert self.api is not None
        try:
            await self.api.call("POST", "/v1/streaming.interrupt", json={"session_id": self.session_id})
        except AvatarAPIError as exc:
            if not exc.gone:
                raise


class HeyGenSessionManager(VendorSessionManager):
    """Lists and stops the HeyGen streaming sessions of the key in ``HEYGEN_API_KEY``."""

    service = HEYGEN
    backend = HEYGEN.backend
    list_path = "/v1/streaming.list"
    stop_path = "/v1/streaming.stop"
