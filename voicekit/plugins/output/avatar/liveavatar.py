"""LiveAvatar (HeyGen's successor to Interactive Avatar): the default avatar output.

One billable session per conversation: ``POST /v1/sessions/token`` (API key) then
``POST /v1/sessions/start`` (the session token) give a LiveKit room and, in LITE mode,
a websocket. Two ways to speak:

- **FULL** (default): the avatar's own voice says our LLM's text, sent as
  ``avatar.speak_text`` on the room's data channel (topic ``agent-control``); its
  ``avatar.speak_started`` / ``avatar.speak_ended`` (topic ``agent-response``) mark each
  sentence. FULL needs the room: with ``connect_room: false`` text is *not* delivered
  (for testing the session lifecycle only).
- **LITE**: our own voice (``tts: {use: espeak, ...}``, any voicekit output) is streamed
  as 24 kHz PCM over the session websocket and the avatar lip-syncs it
  (:mod:`~voicekit.plugins.output.avatar.lite`).

The session is kept alive between turns (``sessions/keep-alive``, or the LITE
websocket's ``session.keep_alive``), ended by us before ``max_session_duration`` and
always stopped (``sessions/stop``): the session's life is
:class:`~voicekit.plugins.output.avatar.base.RemoteAvatarOutput`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from voicekit.errors import BackendError
from voicekit.options import NestedOutput
from voicekit.plugins.output.avatar.api import AvatarAPI, AvatarAPIError, AvatarService, too_many_sessions
from voicekit.plugins.output.avatar.base import RemoteAvatarOptions, RemoteAvatarOutput
from voicekit.plugins.output.avatar.room import connect_room, viewer_link
from voicekit.plugins.output.avatar.sessions import VendorSessionManager
from voicekit.plugins.output.avatar.timeline import Utterance, estimate_duration_s
from voicekit.roles import BackendContext, Output

log = logging.getLogger(__name__)

LIVEAVATAR = AvatarService(
    vendor="LiveAvatar",
    backend="liveavatar",
    key_env="LIVEAVATAR_API_KEY",
    url_env="LIVEAVATAR_BASE_URL",
    default_url="https://api.liveavatar.com",
    key_header="X-API-KEY",
)
DEFAULT_BASE_URL, KEY_ENV, URL_ENV = LIVEAVATAR.default_url, LIVEAVATAR.key_env, LIVEAVATAR.url_env
CONTROL_TOPIC = "agent-control"
RESPONSE_TOPIC = "agent-response"


def command(event_type: str, session_id: str | None, **data: Any) -> bytes:
    """A FULL-mode command as it goes on the data channel (topic ``agent-control``)."""
    return json.dumps(
        {"event_id": uuid.uuid4().hex, "event_type": event_type, "session_id": session_id, **data}, ensure_ascii=False
    ).encode("utf-8")


class LiveAvatarOptions(RemoteAvatarOptions):
    """Options of the LiveAvatar output."""

    avatar_id: str | None = Field(None, description="LiveAvatar avatar id (required)")
    mode: Literal["FULL", "LITE"] = Field(
        "FULL", description="FULL: the avatar's voice speaks our text; LITE: the avatar lip-syncs our own tts"
    )
    voice_id: str | None = Field(None, description="FULL mode: LiveAvatar voice id (default: the avatar's)")
    context_id: str | None = Field(None, description="FULL mode: LiveAvatar context (persona) id")
    language: str | None = Field(None, description="Language the avatar speaks; default: the profile's language")
    persona: dict[str, Any] = Field(
        default_factory=dict, description="More avatar_persona fields sent as they are (voice_settings, ...)"
    )
    quality: Literal["high", "medium", "low"] = Field("high", description="Video quality of the avatar")
    video_encoding: Literal["H264", "VP8"] = Field("H264", description="Codec of the avatar's video track")
    max_session_duration_s: int | None = Field(
        None,
        gt=0,
        le=86_400,
        description="Longest session in seconds (your plan's limit at most); ended cleanly before it",
    )
    sandbox: bool = Field(False, description="Use a sandbox session (free, limited)")
    tts: NestedOutput | None = Field(
        None,
        description="LITE mode: the voice, as an output backend spec: {use: espeak, voice: ...}; default espeak",
    )
    chunk_ms: int = Field(1000, ge=20, le=10000, description="LITE mode: audio per websocket message")
    local_audio: bool = Field(False, description="LITE mode: also play our voice locally (AudioOut)")
    keepalive_interval_s: float = Field(
        60.0, gt=0, le=3600, description="Seconds between keep-alives (idle timeout: 5 min)"
    )
    connect_room: bool = Field(
        True, description="Join the avatar's LiveKit room (FULL-mode text, speaking events, recording)"
    )


class LiveAvatarOutput(RemoteAvatarOutput):
    """Speaks through a LiveAvatar avatar whose picture and voice play in its LiveKit room.

    ``speak`` yields ``SpeakingStarted`` / ``SpeakingEnded`` per sentence as the avatar
    says it (and, in LITE mode with ``local_audio``, our voice as ``AudioOut``).
    """

    Options: ClassVar[type[LiveAvatarOptions]] = LiveAvatarOptions
    api_key_env: ClassVar[str | None] = KEY_ENV
    service: ClassVar[AvatarService] = LIVEAVATAR
    duration_hint: ClassVar[str] = ", output.max_session_duration_s"
    sample_rate: int = 24000
    options: LiveAvatarOptions

    def __init__(self, options: LiveAvatarOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.session_token: str | None = None
        self.started: dict[str, Any] = {}
        self.tts: Output | None = None
        self._lite: Any = None

    # --- the session ----------------------------------------------------------------

    async def prepare(self) -> None:
        if not self.options.avatar_id:
            raise BackendError("liveavatar: set output.avatar_id to the id of one of your LiveAvatar avatars")
        if self.options.mode == "LITE":
            spec = dict(self.options.tts or {"use": "espeak"})
            if not spec.get("use") or spec.get("use") in ("liveavatar", "heygen"):
                raise BackendError("liveavatar: LITE mode needs a voice: set output.tts to e.g. {use: espeak}")
            tts = self.context.build("output", spec, key="tts")
            if not isinstance(tts, Output):
                raise BackendError(f"liveavatar: output.tts '{spec['use']}' is not an output backend")
            self.tts = tts
            await tts.start()

    def ledger_meta(self) -> dict[str, Any]:
        return {"avatar_id": self.options.avatar_id, "mode": self.options.mode}

    async def create_session(self, api: AvatarAPI) -> Any:
        persona: dict[str, Any] = {}
        if self.options.voice_id:
            persona["voice_id"] = self.options.voice_id
        if self.options.context_id:
            persona["context_id"] = self.options.context_id
        language = self.options.language or self.context.language
        if language:
            persona["language"] = language
        persona.update(self.options.persona)
        body: dict[str, Any] = {
            "mode": self.options.mode,
            "avatar_id": self.options.avatar_id,
            "is_sandbox": self.options.sandbox,
            "video_settings": {"quality": self.options.quality, "encoding": self.options.video_encoding},
        }
        if persona:
            body["avatar_persona"] = persona
        if self.options.max_session_duration_s:
            body["max_session_duration"] = self.options.max_session_duration_s
        return await api.call("POST", "/v1/sessions/token", json=body)

    def explain(self, exc: AvatarAPIError) -> BackendError:
        detail = exc.detail.lower()
        if "avatar" in detail and ("not found" in detail or "invalid" in detail or "does not exist" in detail):
            return BackendError(
                f"LiveAvatar: avatar '{self.options.avatar_id}' not found ({exc.detail}); "
                "set output.avatar_id to an avatar of your LiveAvatar account"
            )
        busy = too_many_sessions("LiveAvatar", exc)
        if busy is not None:
            return busy
        if "max_session_duration" in detail or "duration" in detail:
            return BackendError(f"LiveAvatar: {exc.detail}; lower output.max_session_duration_s")
        return exc

    async def begin(self, created: dict[str, Any]) -> None:
        assert self.api is not None
        self.session_token = str(created.get("session_token") or "")
        started = await self.api.call(
            "POST", "/v1/sessions/start", headers={"Authorization": f"Bearer {self.session_token}"}, auth="token"
        )
        self.started = started if isinstance(started, dict) else {}
        await self._join_room()
        if self.options.mode == "LITE":
            await self._open_lite()

    async def _join_room(self) -> None:
        url = self.started.get("livekit_url")
        client_token = self.started.get("livekit_client_token")
        if not url or not client_token:
            return
        log.info("watch the avatar: %s", viewer_link(url, client_token))
        if not self.options.connect_room:
            if self.options.mode == "FULL":
                log.warning(
                    "LiveAvatar FULL mode without its LiveKit room (connect_room: false): "
                    "the text is not delivered to the avatar"
                )
            return
        # our own identity in the room, so that a viewer can use the client token
        token = self.started.get("livekit_agent_token") or client_token
        room = await connect_room(url, token, self.options.room_timeout_s, "LiveAvatar")
        if room is None and self.options.mode == "FULL":
            raise BackendError(
                f"LiveAvatar FULL mode needs the avatar's LiveKit room ({url}), which could not be joined; "
                "check the network, or use output.mode: LITE"
            )
        if room is not None:
            self.attach_room(room)

    async def _open_lite(self) -> None:
        from voicekit.plugins.output.avatar.lite import LiteChannel

        ws_url = self.started.get("ws_url")
        if not ws_url:
            raise BackendError("LiveAvatar did not give a websocket for LITE mode (is the token's mode LITE?)")
        self._lite = LiteChannel(str(ws_url), self.timeline, self.session_ended)
        await self._lite.open(self.options.timeout_s)
        self.timeline.use_signals = True

    async def stop_call(self, api: AvatarAPI, session_id: str) -> None:
        body = {"session_id": session_id, "reason": "USER_CLOSED"}
        await api.call("POST", "/v1/sessions/stop", json=body, idempotent=True)

    def keepalive_interval_s(self) -> float:
        return self.options.keepalive_interval_s

    async def keep_alive(self) -> None:
        if self._lite is not None:
            await self._lite.keep_alive()
            return
        assert self.api is not None
        await self.api.call("POST", "/v1/sessions/keep-alive", json={"session_id": self.session_id}, idempotent=True)

    def duration_limit_s(self) -> float | None:
        limit = self.started.get("max_session_duration") or self.options.max_session_duration_s
        return float(limit) if isinstance(limit, (int, float)) else None

    async def close_channels(self) -> None:
        lite, self._lite = self._lite, None
        if lite is not None:
            await lite.aclose()
        tts, self.tts = self.tts, None
        if tts is not None:
            await tts.aclose()

    # --- speaking -------------------------------------------------------------------

    def speaks_by_room_signals(self) -> bool:
        return self.options.mode == "FULL"

    def on_room_data(self, packet: Any) -> None:
        if packet.topic != RESPONSE_TOPIC or self.options.mode != "FULL":
            return
        try:
            message = json.loads(bytes(packet.data).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        kind = message.get("event_type") if isinstance(message, dict) else None
        if kind == "avatar.speak_started":
            self.timeline.signal("started")
        elif kind == "avatar.speak_ended":
            self.timeline.signal("ended")
        elif kind == "session.stopped":
            self.session_ended(f"the service stopped it ({message.get('end_reason') or 'no reason given'})")

    async def send_sentences(
        self, sentences: AsyncIterator[str], put: Callable[[Utterance], None], interrupted: asyncio.Event
    ) -> None:
        if self._lite is None:
            await super().send_sentences(sentences, put, interrupted)
            return
        from voicekit.plugins.output.avatar.lite import stream_sentences

        assert self.tts is not None
        await stream_sentences(
            self.tts,
            self._lite,
            sentences,
            put,
            interrupted,
            chunk_ms=self.options.chunk_ms,
            keep_audio=self.options.local_audio,
        )

    async def send_text(self, text: str) -> Utterance:
        """FULL mode: the text goes on the room's data channel (not delivered without a room)."""
        if self._room_connected():
            await self._publish(command("avatar.speak_text", self.session_id, text=text))
        return Utterance(text, estimate_duration_s(text))

    async def interrupt_avatar(self) -> None:
        if self._lite is not None:
            await self._lite.interrupt()
        elif self._room_connected() and self.options.mode == "FULL":
            await self._publish(command("avatar.interrupt", self.session_id))

    def _room_connected(self) -> bool:
        """Commands need a connected room (an attached but unconnected one only gives us events)."""
        return self.room is not None and bool(self.room.isconnected())

    async def _publish(self, payload: bytes) -> None:
        try:
            await self.room.local_participant.publish_data(payload, reliable=True, topic=CONTROL_TOPIC)
        except Exception as exc:
            raise BackendError(f"LiveAvatar: sending to the avatar's room failed ({exc})", retryable=True) from exc


class LiveAvatarSessionManager(VendorSessionManager):
    """Lists and stops the LiveAvatar sessions of the key in ``LIVEAVATAR_API_KEY``."""

    service = LIVEAVATAR
    backend = LIVEAVATAR.backend
    list_path, list_params = "/v1/sessions", {"type": "active"}
    stop_path, stop_extra = "/v1/sessions/stop", {"reason": "USER_CLOSED"}
