"""LiveAvatar LITE mode: our own TTS audio, lip-synced by the avatar, over its websocket.

Per sentence the inner voice's audio is resampled to 24 kHz 16-bit mono, sent as base64
``agent.speak`` messages of about ``chunk_ms`` (one ``event_id`` per sentence) and closed
with ``agent.speak_end``; the avatar answers ``agent.speak_started`` / ``agent.speak_ended``
with that ``event_id``, which is when we say the sentence is spoken.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from voicekit.errors import BackendError
from voicekit.events import AudioOut, SpeakingEnded, SpeakingStarted
from voicekit.plugins.output.avatar.timeline import SpeechTimeline, Utterance
from voicekit.roles import Output
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

RATE = 24000  # the only rate the avatar takes


class SessionEnded(Protocol):
    """Told why the websocket closed; ``gone``: the service says the session itself is closed."""

    def __call__(self, reason: str, *, gone: bool = False) -> None: ...


class LiteChannel:
    """The session websocket: commands out, speaking signals in."""

    def __init__(self, ws_url: str, timeline: SpeechTimeline, on_closed: SessionEnded) -> None:
        self.ws_url = ws_url
        self.timeline = timeline
        self.on_closed = on_closed
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def open(self, timeout_s: float) -> None:
        websockets = import_sdk("websockets.asyncio.client", package="websockets", extra="avatar", backend="liveavatar")
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        try:
            async with asyncio.timeout(timeout_s):
                self._ws = await websockets.connect(self.ws_url, max_size=None)
        except (TimeoutError, OSError, Exception) as exc:
            raise BackendError(f"LiveAvatar LITE: cannot open the session websocket ({exc})", retryable=True) from exc
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="liveavatar-ws")
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            raise BackendError("LiveAvatar LITE: the session never reported 'connected'", retryable=True) from None

    async def _read(self) -> None:
        reason, gone = "the websocket closed", False
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                except (ValueError, TypeError):
                    continue
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "session.state_updated":
                    state = message.get("state")
                    if state == "connected":
                        self._connected.set()
                    elif state in ("closing", "closed"):
                        reason = f"the service closed the session ({message.get('reason') or state})"
                        gone = True
                elif kind == "agent.speak_started":
                    self.timeline.signal("started", _event_id(message))
                elif kind == "agent.speak_ended":
                    self.timeline.signal("ended", _event_id(message))
        except Exception as exc:  # noqa: BLE001 - a dropped socket ends the session for us
            reason = f"the websocket failed ({exc})"
        finally:
            self._connected.clear()
            self.on_closed(reason, gone=gone)

    async def send(self, message: dict[str, Any]) -> None:
        if self._ws is None:
            raise BackendError("LiveAvatar LITE: the session websocket is not open")
        try:
            await self._ws.send(json.dumps(message))
        except Exception as exc:
            raise BackendError(f"LiveAvatar LITE: sending to the avatar failed ({exc})", retryable=True) from exc

    async def keep_alive(self) -> None:
        await self.send({"type": "session.keep_alive", "event_id": uuid.uuid4().hex})

    async def interrupt(self) -> None:
        await self.send({"type": "agent.interrupt", "event_id": uuid.uuid4().hex})

    async def aclose(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None


def _event_id(message: dict[str, Any]) -> str | None:
    event_id = message.get("event_id")
    if event_id is None and isinstance(message.get("task"), dict):
        event_id = message["task"].get("id")
    return str(event_id) if event_id is not None else None


async def stream_sentences(
    tts: Output,
    channel: LiteChannel,
    sentences: AsyncIterator[str],
    put: Callable[[Utterance], None],
    interrupted: asyncio.Event,
    *,
    chunk_ms: int,
    keep_audio: bool,
) -> None:
    """Speak ``sentences`` with ``tts`` into the avatar; ``put`` one :class:`Utterance` per sentence."""
    import numpy as np
    import soxr

    chunk_bytes = RATE * 2 * chunk_ms // 1000
    text, event_id = "", ""
    resampler: Any = None
    in_rate = 0
    pending = bytearray()
    sent_samples = 0
    kept: list[bytes] = []

    async def send_audio(pcm: bytes) -> None:
        nonlocal sent_samples
        for i in range(0, len(pcm), chunk_bytes):
            part = pcm[i : i + chunk_bytes]
            await channel.send({"type": "agent.speak", "event_id": event_id, "audio": base64.b64encode(part).decode()})
            sent_samples += len(part) // 2
            if keep_audio:
                kept.append(part)

    def to_24k(pcm: bytes, last: bool = False) -> bytes:
        if in_rate == RATE or resampler is None:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16)
        return bytes(resampler.resample_chunk(samples, last=last).astype(np.int16).tobytes())

    async def only_text() -> AsyncIterator[str]:
        async for sentence in sentences:
            if interrupted.is_set():
                return
            if sentence.strip():
                yield sentence

    async with contextlib.aclosing(tts.speak(only_text())) as events:  # type: ignore[type-var]
        async for event in events:
            if interrupted.is_set():
                break
            if isinstance(event, SpeakingStarted):
                text, event_id = event.text, uuid.uuid4().hex
                resampler, in_rate, sent_samples, kept = None, 0, 0, []
                pending.clear()
            elif isinstance(event, AudioOut):
                if resampler is None and in_rate == 0:
                    in_rate = event.sample_rate
                    if in_rate != RATE:
                        resampler = soxr.ResampleStream(in_rate, RATE, 1, dtype="int16")
                pending.extend(to_24k(event.pcm))
                if len(pending) >= chunk_bytes:
                    whole = len(pending) // chunk_bytes * chunk_bytes
                    await send_audio(bytes(pending[:whole]))
                    del pending[:whole]
            elif isinstance(event, SpeakingEnded):
                pending.extend(to_24k(b"", last=True) if resampler is not None else b"")
                if pending:
                    await send_audio(bytes(pending))
                    pending.clear()
                if sent_samples == 0:
                    continue  # nothing to say (the voice made no sound)
                await channel.send({"type": "agent.speak_end", "event_id": event_id})
                put(
                    Utterance(
                        event.text or text,
                        sent_samples / RATE,
                        key=event_id,
                        audio=kept,
                        sample_rate=RATE,
                    )
                )
