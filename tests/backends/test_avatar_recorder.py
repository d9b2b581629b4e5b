"""The avatar A/V recorder: LiveKit tracks in, a playable fragmented MP4 out.

No LiveKit server can run here, so tracks are local ``VideoSource``/``AudioSource``
tracks handed to an unconnected ``rtc.Room`` through ``room.emit("track_subscribed")``:
the recorder sees exactly what a connected room would give it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.avatar_media import i420_frames, probe, tone
from voicekit.recording_av import AvatarRecorder

rtc = pytest.importorskip("livekit.rtc")


async def _feed_tracks(vsrc: object, asrc: object, seconds: float, size: tuple[int, int]) -> None:
    frames = i420_frames(*size)
    start = time.monotonic()

    async def video() -> None:
        for i in range(int(seconds * 25)):
            frame = rtc.VideoFrame(size[0], size[1], rtc.VideoBufferType.I420, frames[i % len(frames)])
            vsrc.capture_frame(frame)  # type: ignore[attr-defined]
            await asyncio.sleep(max(0.0, start + (i + 1) / 25 - time.monotonic()))

    async def audio() -> None:
        for i in range(int(seconds * 100)):
            pcm = tone(480, start=i * 480)
            await asrc.capture_frame(rtc.AudioFrame(pcm, 48000, 1, 480))  # type: ignore[attr-defined]
            await asyncio.sleep(max(0.0, start + (i + 1) / 100 - time.monotonic()))

    await asyncio.gather(video(), audio())


async def test_room_tracks_are_recorded_with_both_streams(tmp_path: Path) -> None:
    out = tmp_path / "rec" / "avatar.mp4"
    recorder = AvatarRecorder(out, start_wait_s=1.0)
    room = rtc.Room()
    recorder.attach(room)
    vsrc = rtc.VideoSource(320, 240)
    asrc = rtc.AudioSource(48000, 1)
    vtrack = rtc.LocalVideoTrack.create_video_track("avatar-video", vsrc)
    atrack = rtc.LocalAudioTrack.create_audio_track("avatar-audio", asrc)
    room.emit("track_subscribed", vtrack, None, None)
    room.emit("track_subscribed", atrack, None, None)

    await _feed_tracks(vsrc, asrc, 2.0, (320, 240))
    await asyncio.sleep(0.2)
    stats = await recorder.aclose()
    await recorder.aclose()  # twice is fine

    info = probe(str(out))
    assert set(info) == {"video", "audio"}
    assert info["video"]["end"] == pytest.approx(2.0, abs=0.35)
    assert info["audio"]["end"] == pytest.approx(2.0, abs=0.35)
    assert abs(info["video"]["end"] - info["audio"]["end"]) < 0.3
    assert 40 <= info["video"]["frames"] <= 52
    assert info["audio"]["peak"] > 0.1  # the tone, not silence
    assert stats.audio_samples_dropped == 0


async def test_old_video_is_dropped_when_behind_but_never_audio(tmp_path: Path) -> None:
    out = tmp_path / "avatar.mp4"
    recorder = AvatarRecorder(out, video_queue=3, start_wait_s=0.1)
    frames = i420_frames(1280, 720, count=5)
    # four seconds of both, pushed at once: far faster than x264 can encode 720p
    for i in range(100):
        recorder.push_video(rtc.VideoFrame(1280, 720, rtc.VideoBufferType.I420, frames[i % 5]), i * 40_000)
        for k in range(4):
            recorder.push_audio(tone(480, start=(i * 4 + k) * 480))
    stats = await recorder.aclose()

    assert stats.video_dropped > 0
    assert stats.video_encoded + stats.video_dropped == 100
    assert stats.audio_samples_dropped == 0
    assert stats.audio_samples_encoded >= 4 * 48000
    info = probe(str(out))
    assert info["audio"]["end"] == pytest.approx(4.0, abs=0.1)
    assert info["video"]["frames"] == stats.video_encoded


async def test_audio_only_when_no_video_arrives(tmp_path: Path) -> None:
    out = tmp_path / "avatar.mp4"
    recorder = AvatarRecorder(out, start_wait_s=0.2)
    for i in range(50):
        recorder.push_audio(tone(480, start=i * 480))
    await asyncio.sleep(0.4)
    await recorder.aclose()
    info = probe(str(out))
    assert set(info) == {"audio"}
    assert info["audio"]["end"] == pytest.approx(0.5, abs=0.05)


_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from livekit import rtc
    from tests.avatar_media import i420_frames, tone
    from voicekit.recording_av import AvatarRecorder

    async def main():
        rec = AvatarRecorder(sys.argv[1], start_wait_s=0.5)
        frames = i420_frames(320, 240)
        start = time.monotonic()
        for i in range(10_000):
            rec.push_video(rtc.VideoFrame(320, 240, rtc.VideoBufferType.I420, frames[i % 25]), i * 40_000)
            for k in range(4):
                rec.push_audio(tone(480, start=(i * 4 + k) * 480))
            if i == 75:
                print("recording", flush=True)
            await asyncio.sleep(max(0.0, start + (i + 1) / 25 - time.monotonic()))

    asyncio.run(main())
    """
)


def test_sigkilled_recorder_leaves_a_playable_file(tmp_path: Path) -> None:
    out = tmp_path / "avatar.mp4"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "recording"
        time.sleep(1.0)  # about 4 s recorded: at least three one-second fragments are on disk
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    info = probe(str(out))
    assert set(info) == {"video", "audio"}
    assert info["video"]["end"] >= 2.0
    assert info["audio"]["end"] >= 2.0
    assert abs(info["video"]["end"] - info["audio"]["end"]) < 1.1


async def test_avatar_outputs_record_to_record_dir(tmp_path: Path) -> None:
    from voicekit.plugins.output.avatar.room import start_recorder
    from voicekit.roles import BackendContext

    room = rtc.Room()
    context = BackendContext(record_dir=tmp_path / "rec")
    assert await start_recorder(context, room, False, "Test") is None  # record: false
    assert await start_recorder(BackendContext(), room, True, "Test") is None  # no --record
    recorder = await start_recorder(context, room, True, "Test")
    assert isinstance(recorder, AvatarRecorder) and recorder.path == tmp_path / "rec" / "avatar.mp4"
    vsrc, asrc = rtc.VideoSource(160, 120), rtc.AudioSource(48000, 1)
    room.emit("track_subscribed", rtc.LocalVideoTrack.create_video_track("v", vsrc), None, None)
    room.emit("track_subscribed", rtc.LocalAudioTrack.create_audio_track("a", asrc), None, None)
    await _feed_tracks(vsrc, asrc, 0.6, (160, 120))
    await recorder.aclose()
    assert set(probe(str(tmp_path / "rec" / "avatar.mp4"))) == {"video", "audio"}
