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
  as 24 kHz PCM over the session websocket and the avatar lip-syncs it.

The session is kept alive between turns, ended by us before ``max_session_duration``,
and always stopped, through the session ledger (``voicekit sessions``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from voicekit.errors import BackendError
from voicekit.events import OutputEvent
from voicekit.options import CloudOptions, NestedOutput
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

DEFAULT_BASE_URL = "https://api.liveavatar.com"
KEY_ENV = "LIVEAVATAR_API_KEY"
URL_ENV = "LIVEAVATAR_BASE_URL"
CONTROL_TOPIC = "agent-control"
RESPONSE_TOPIC = "agent-response"


def command(event_type: str, session_id: str | None, **data: Any) -> bytes:
    """A FULL-mode command as it goes on the data channel (topic ``agent-control``)."""
    return json.dumps(
        {"event_id": uuid.uuid4().hex, "event_type": event_type, "session_id": session_id, **data}, ensure_ascii=False
    ).encode("utf-8")


class LiveAvatarOptions(CloudOptions):
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
        None, gt=0, description="Longest session in seconds (your plan's limit at most); ended cleanly before it"
    )
    sandbox: bool = Field(False, description="Use a sandbox session (free, limited)")
    tts: NestedOutput = Field(
        default_factory=lambda: {"use": "espeak"},
        description="LITE mode: the voice, as an output backend spec: {use: espeak, voice: ...}",
    )
    chunk_ms: int = Field(1000, ge=20, le=10000, description="LITE mode: audio per websocket message")
    local_audio: bool = Field(False, description="LITE mode: also play our voice locally (AudioOut)")
    keepalive_interval_s: float = Field(60.0, gt=0, description="Seconds between keep-alives (idle timeout: 5 min)")
    connect_room: bool = Field(
        True, description="Join the avatar's LiveKit room (FULL-mode text, speaking events, recording)"
    )
    room_timeout_s: float = Field(10.0, gt=0, description="How long to try joining the LiveKit room")
    record: bool = Field(False, description="With `chat --record DIR`, record the avatar's video to DIR/avatar.mp4")


class LiveAvatarOutput(Output):
    """Speaks through a LiveAvatar avatar whose picture and voice play in its LiveKit room.

    ``speak`` yields ``SpeakingStarted`` / ``SpeakingEnded`` per sentence as the avatar
    says it (and, in LITE mode with ``local_audio``, our voice as ``AudioOut``).
    """

    Options: ClassVar[type[LiveAvatarOptions]] = LiveAvatarOptions
    capabilities = Capabilities(streaming=True, produces_audio=False, remote_session=True)
    api_key_env: ClassVar[str | None] = KEY_ENV
    extra: ClassVar[str | None] = "avatar"
    sample_rate: int = 24000
    options: LiveAvatarOptions

    def __init__(self, options: LiveAvatarOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self.session_id: str | None = None
        self.session_token: str | None = None
        self.started: dict[str, Any] = {}
        self.room: Any = None
        self.recorder: Any = None
        self.tts: Output | None = None
        self._api: AvatarAPI | None = None
        self._lite: Any = None
        self._rs: Any = None
        self._own_sessions: Any = None
        self._timeline = SpeechTimeline()
        self._interrupted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._ended_reason: str | None = None
        self._closing = False
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------

    def _new_api(self) -> AvatarAPI:
        return AvatarAPI(
            vendor="LiveAvatar",
            base_url=base_url(self.options.base_url, URL_ENV, DEFAULT_BASE_URL),
            headers={"X-API-KEY": self.api_key()},
            key_env=KEY_ENV,
            timeout_s=self.options.timeout_s,
        )

    async def start(self) -> None:
        if not self.options.avatar_id:
            raise BackendError("liveavatar: set output.avatar_id to the id of one of your LiveAvatar avatars")
        self._api = self._new_api()
        self._timeline = SpeechTimeline(fast=self.context.fast)
        if self.options.mode == "LITE":
            await self._start_tts()
        sessions, owned = remote_sessions_of(self.context)
        self._own_sessions = sessions if owned else None
        self._rs = sessions.opening("liveavatar", meta={"avatar_id": self.options.avatar_id, "mode": self.options.mode})
        try:
            data = await open_tracked(
                self._rs,
                self._create,
                "session_id",
                self._closer_for,
                lambda d: {"avatar_id": self.options.avatar_id, "mode": self.options.mode},
            )
            self.session_id, self.session_token = str(data["session_id"]), str(data.get("session_token") or "")
            started = await self._api.call(
                "POST",
                "/v1/sessions/start",
                headers={"Authorization": f"Bearer {self.session_token}"},
                auth="token",
            )
            self.started = started if isinstance(started, dict) else {}
            log.info("LiveAvatar %s session %s started", self.options.mode, self.session_id)
            self._schedule_deadline()
            await self._join_room()
            if self.options.mode == "LITE":
                await self._open_lite()
            self._tasks.append(every(self.options.keepalive_interval_s, self._keep_alive, "liveavatar-keepalive"))
            self.recorder = await start_recorder(self.context, self.room, self.options.record, "LiveAvatar")
        except BaseException:
            await self.aclose()
            raise

    async def _start_tts(self) -> None:
        spec = dict(self.options.tts)
        if not spec.get("use") or spec.get("use") in ("liveavatar", "heygen"):
            raise BackendError("liveavatar: LITE mode needs a voice: set output.tts to e.g. {use: espeak}")
        tts = self.context.build("output", spec, key="tts")
        if not isinstance(tts, Output):
            raise BackendError(f"liveavatar: output.tts '{spec['use']}' is not an output backend")
        self.tts = tts
        await tts.start()

    async def _create(self) -> dict[str, Any]:
        assert self._api is not None
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
        try:
            data = await self._api.call("POST", "/v1/sessions/token", json=body)
        except AvatarAPIError as exc:
            raise self._explain(exc) from exc
        if not isinstance(data, dict):
            raise BackendError(f"LiveAvatar sessions/token answered without data: {data!r}")
        return data

    def _explain(self, exc: AvatarAPIError) -> BackendError:
        detail = exc.detail.lower()
        if "avatar" in detail and ("not found" in detail or "invalid" in detail or "does not exist" in detail):
            return BackendError(
                f"LiveAvatar: avatar '{self.options.avatar_id}' not found ({exc.detail}); "
                "set output.avatar_id to an avatar of your LiveAvatar account"
            )
        if "concurren" in detail:
            return BackendError(
                f"LiveAvatar: too many sessions open at once ({exc.detail}); see `voicekit sessions list` "
                "and close leftovers with `voicekit sessions close --stale`",
                retryable=True,
            )
        if "max_session_duration" in detail or "duration" in detail:
            return BackendError(f"LiveAvatar: {exc.detail}; lower output.max_session_duration_s")
        return exc

    def _schedule_deadline(self) -> None:
        limit = self.started.get("max_session_duration") or self.options.max_session_duration_s
        if isinstance(limit, (int, float)) and limit > 0:
            delay = max(0.0, float(limit) - deadline_margin_s(float(limit)))
            self._tasks.append(after(delay, lambda: self._end_at_limit(float(limit)), "liveavatar-deadline"))

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
        self._lite = LiteChannel(str(ws_url), self._timeline, self._lite_closed)
        await self._lite.open(self.options.timeout_s)
        self._timeline.use_signals = True

    def _lite_closed(self, reason: str) -> None:
        if not self._closing and not self._ended_reason:
            self._ended_reason = reason
            self._interrupted.set()

    def _closer_for(self, session_id: str) -> Any:
        async def close() -> None:
            await self._stop(session_id)

        return close

    async def _stop(self, session_id: str) -> None:
        """Stop the session; one that no longer exists counts as stopped."""
        api = self._api if self._api is not None and not self._closed else self._new_api()
        try:
            await api.call(
                "POST", "/v1/sessions/stop", json={"session_id": session_id, "reason": "USER_CLOSED"}, idempotent=True
            )
            log.info("LiveAvatar session %s stopped", session_id)
        except AvatarAPIError as exc:
            if not exc.gone:
                raise
            log.info("LiveAvatar session %s was already closed", session_id)
        finally:
            if api is not self._api:
                await api.aclose()

    async def _stop_session(self) -> None:
        rs = self._rs
        if rs is None or rs.closed:
            return
        if rs.remote_id is None:
            rs.mark_closed()
            return
        try:
            await self._stop(rs.remote_id)
        except Exception as exc:  # noqa: BLE001 - the ledger row stays for `sessions close --stale`
            log.warning("could not stop LiveAvatar session %s: %s", rs.remote_id, exc)
            return
        rs.mark_closed()

    async def _keep_alive(self) -> None:
        if self._ended_reason or self.session_id is None:
            return
        if self._lite is not None:
            await self._lite.keep_alive()
            return
        assert self._api is not None
        try:
            await self._api.call(
                "POST", "/v1/sessions/keep-alive", json={"session_id": self.session_id}, idempotent=True
            )
        except AvatarAPIError as exc:
            if exc.gone:
                self._ended_reason = "the service closed it (idle timeout?)"
                return
            raise

    async def _end_at_limit(self, limit_s: float) -> None:
        log.warning("LiveAvatar session %s reaches its %.0f s limit: ending it", self.session_id, limit_s)
        self._ended_reason = f"it reached its maximum duration ({limit_s:.0f} s, output.max_session_duration_s)"
        self._interrupted.set()
        await self._stop_session()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closing = True
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
        if self._lite is not None:
            lite, self._lite = self._lite, None
            await lite.aclose()
        if self.room is not None:
            room, self.room = self.room, None
            try:
                await asyncio.wait_for(room.disconnect(), 5)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001
                log.debug("leaving the LiveKit room failed: %s", exc)
        await self._stop_session()
        self._closed = True
        if self.tts is not None:
            await self.tts.aclose()
        if self._api is not None:
            await self._api.aclose()
        if self._own_sessions is not None:
            await self._own_sessions.close_all()

    # --- LiveKit room ---------------------------------------------------------------

    def attach_room(self, room: Any) -> None:
        """Use ``room`` for FULL-mode commands and speaking events (any ``rtc.Room`` that emits them)."""
        self.room = room
        if self.options.mode == "FULL":
            self._timeline.use_signals = True

        def on_data(packet: Any) -> None:
            if packet.topic != RESPONSE_TOPIC or self.options.mode != "FULL":
                return
            try:
                message = json.loads(bytes(packet.data).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            kind = message.get("event_type") if isinstance(message, dict) else None
            if kind == "avatar.speak_started":
                self._timeline.signal("started")
            elif kind == "avatar.speak_ended":
                self._timeline.signal("ended")
            elif kind == "session.stopped":
                self._ended_reason = f"the service stopped it ({message.get('end_reason') or 'no reason given'})"
                self._interrupted.set()

        room.on("data_received", on_data)

    def _room_connected(self) -> bool:
        """Commands need a connected room (an attached but unconnected one only gives us events)."""
        return self.room is not None and bool(self.room.isconnected())

    async def _publish(self, payload: bytes) -> None:
        try:
            await self.room.local_participant.publish_data(payload, reliable=True, topic=CONTROL_TOPIC)
        except Exception as exc:
            raise BackendError(f"LiveAvatar: sending to the avatar's room failed ({exc})", retryable=True) from exc

    # --- speaking -------------------------------------------------------------------

    async def speak(self, sentences: AsyncIterator[str]) -> AsyncIterator[OutputEvent]:
        """Hand each sentence to the avatar at once; yield its speaking events as it says it."""
        self._check_open()
        self._interrupted = interrupted = asyncio.Event()
        self._timeline.reset()
        items: asyncio.Queue[Utterance | BaseException | None] = asyncio.Queue()
        if self._lite is not None:
            from voicekit.plugins.output.avatar.lite import stream_sentences

            assert self.tts is not None
            sender = asyncio.ensure_future(
                stream_sentences(
                    self.tts,
                    self._lite,
                    sentences,
                    items,
                    interrupted,
                    chunk_ms=self.options.chunk_ms,
                    keep_audio=self.options.local_audio,
                )
            )
        else:
            sender = asyncio.ensure_future(self._send_text(sentences, items, interrupted))
        try:
            async for event in self._timeline.play(items, interrupted):
                yield event
        finally:
            await cancel(sender)
        if self._ended_reason and not self._closed:
            raise BackendError(f"the LiveAvatar session ended: {self._ended_reason}")

    async def _send_text(
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
                if not text:
                    continue
                if self._room_connected():
                    await self._publish(command("avatar.speak_text", self.session_id, text=text))
                items.put_nowait(Utterance(text, estimate_duration_s(text)))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            items.put_nowait(exc)
        finally:
            items.put_nowait(None)

    def _check_open(self) -> None:
        if self._ended_reason:
            raise BackendError(f"the LiveAvatar session ended: {self._ended_reason}")
        if self._api is None or self.session_id is None or self._closed:
            raise BackendError("LiveAvatar output is not started (call start() first)")

    async def interrupt(self) -> None:
        """Stop the avatar now: the current ``speak`` ends and queued speech is dropped."""
        self._interrupted.set()
        if self._closed or self._ended_reason:
            return
        if self._lite is not None:
            await self._lite.interrupt()
        elif self._room_connected() and self.options.mode == "FULL":
            await self._publish(command("avatar.interrupt", self.session_id))


class LiveAvatarSessionManager(VendorSessionManager):
    """Lists and stops the LiveAvatar sessions of the key in ``LIVEAVATAR_API_KEY``."""

    backend = "liveavatar"
    vendor = "LiveAvatar"
    key_env, url_env, default_url = KEY_ENV, URL_ENV, DEFAULT_BASE_URL
    key_header = "X-API-KEY"
    list_path, list_params = "/v1/sessions", {"type": "active"}
    stop_path, stop_extra = "/v1/sessions/stop", {"reason": "USER_CLOSED"}
