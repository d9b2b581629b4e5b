"""The avatar's LiveKit room: joining it (best effort), a link to watch it, leaving it, and
recording its tracks to ``avatar.mp4`` (:class:`~voicekit.recording_av.AvatarRecorder`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from voicekit.roles import BackendContext
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)


async def connect_room(url: str, token: str, timeout_s: float, vendor: str) -> Any:
    """A connected ``rtc.Room``, or ``None`` with a warning if it cannot be reached."""
    rtc = import_sdk("livekit.rtc", package="livekit", extra="avatar", backend=vendor.lower())
    room = rtc.Room()
    try:
        async with asyncio.timeout(timeout_s):  # not wait_for, which can swallow a cancellation on 3.11
            await room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - the caller decides whether it is fatal
        log.warning("%s: could not join the avatar's LiveKit room %s (%s); going on without it", vendor, url, exc)
        with contextlib.suppress(Exception):
            await room.disconnect()
        return None
    return room


async def leave_room(room: Any) -> None:
    """Disconnect; a room that does not answer in time is left behind (it is the service's to close)."""
    try:
        async with asyncio.timeout(5):
            await room.disconnect()
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - the session is stopped either way
        log.debug("leaving the LiveKit room failed: %s", exc)


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


async def stop_recorder(recorder: Any) -> None:
    """Finish the recording; a failure is logged (the session must still be stopped)."""
    try:
        await recorder.aclose()
    except Exception as exc:  # noqa: BLE001 - what was recorded so far stays playable
        log.warning("avatar recording failed: %s", exc)
