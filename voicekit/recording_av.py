"""Record an avatar's LiveKit video and audio to a fragmented MP4 while the call runs.

Frames are never kept: an encoder thread turns them into H.264 + AAC as they come and
writes fragmented MP4 (``frag_keyframe+empty_moov+default_base_moof``), so the file on
disk is playable at every moment and a killed process loses at most the last second.

The thread is fed by two bounded queues. When encoding falls behind, the *oldest*
video frames are dropped (the picture skips); audio is never dropped while its queue
(``audio_queue_s`` seconds) has room. Timestamps come from the frames: video from each
frame's ``timestamp_us``, audio from the sample count, both placed on one timeline that
starts when the first frame of either kind arrives.

The recorder is fed from any ``livekit.rtc.Room``: :meth:`AvatarRecorder.attach` listens
for ``track_subscribed`` and opens a bounded ``VideoStream`` / ``AudioStream`` on the
avatar's tracks. ``push_video`` / ``push_audio`` feed it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import BackendError
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from livekit import rtc

log = logging.getLogger(__name__)

_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"


@dataclass
class RecorderStats:
    """Counters of one recording (read them after :meth:`AvatarRecorder.aclose`)."""

    video_in: int = 0
    video_dropped: int = 0
    video_encoded: int = 0
    audio_samples_in: int = 0
    audio_samples_dropped: int = 0
    audio_samples_encoded: int = 0
    silence_inserted: int = 0  # samples of silence put where the audio had gaps


class AvatarRecorder:
    """Encodes one avatar participant's video and audio tracks into an MP4 file.

    :param path: the output file (``.mp4``); its folder is created.
    :param participant: record only this participant identity (default: the first
        participant whose tracks are subscribed).
    :param fps: nominal frame rate given to the encoder (real timing comes from the frames).
    :param preset: x264 preset; ``veryfast`` keeps 720p25 well within real time on one core.
    :param video_queue: video frames waiting for the encoder before the oldest is dropped.
    :param audio_queue_s: seconds of audio that may wait for the encoder.
    :param start_wait_s: how long to wait for the second kind of track before the file is
        started with only the first one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        participant: str | None = None,
        fps: int = 25,
        preset: str = "veryfast",
        crf: int = 23,
        keyframe_interval_s: float = 1.0,
        audio_rate: int = 48000,
        video_queue: int = 8,
        audio_queue_s: float = 30.0,
        start_wait_s: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.participant = participant
        self.fps = fps
        self.preset = preset
        self.crf = crf
        self.keyframe_interval_s = keyframe_interval_s
        self.audio_rate = audio_rate
        self.start_wait_s = start_wait_s
        self.stats = RecorderStats()
        self._video: deque[tuple[Any, int, float]] = deque(maxlen=max(1, video_queue))
        self._audio: deque[tuple[bytes, float]] = deque()
        self._audio_cap = int(audio_queue_s * audio_rate)
        self._audio_queued = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._pumps: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._rooms: list[tuple[Any, Any, Any]] = []
        self._own_room: Any = None
        self._closed = False

    # --- feeding -------------------------------------------------------------------

    def push_video(self, frame: rtc.VideoFrame, timestamp_us: int, *, captured_at: float | None = None) -> None:
        """Queue one video frame; drops the oldest queued frame if the encoder is behind.

        ``captured_at`` is when it was captured, in ``time.monotonic()`` seconds (default: now).
        """
        if self._closing:
            return
        self._ensure_thread()
        with self._cond:
            if len(self._video) == self._video.maxlen:
                self.stats.video_dropped += 1
            self._video.append((frame, int(timestamp_us), time.monotonic() if captured_at is None else captured_at))
            self.stats.video_in += 1
            self._cond.notify()

    def push_audio(self, pcm: bytes, *, captured_at: float | None = None) -> None:
        """Queue 16-bit mono PCM at ``audio_rate``; ``captured_at`` as for :meth:`push_video`
        (it places the audio on the timeline and finds gaps in it)."""
        if self._closing or not pcm:
            return
        self._ensure_thread()
        n = len(pcm) // 2
        with self._cond:
            self.stats.audio_samples_in += n
            if self._audio_queued + n > self._audio_cap:
                # only when the encoder has been stuck for audio_queue_s: memory must stay bounded
                self.stats.audio_samples_dropped += n
                log.error("avatar recorder: encoder stalled, dropping %d audio samples", n)
                return
            self._audio.append((bytes(pcm), time.monotonic() if captured_at is None else captured_at))
            self._audio_queued += n
            self._cond.notify()

    # --- LiveKit -------------------------------------------------------------------

    def attach(self, room: rtc.Room) -> None:
        """Record the avatar's tracks of ``room`` as they are subscribed (room may be unconnected)."""
        rtc_mod = import_sdk("livekit.rtc", package="livekit", extra="avatar", backend="recorder")

        def on_subscribed(track: Any, publication: Any, participant: Any) -> None:
            self._on_track(rtc_mod, track, participant)

        def on_unsubscribed(track: Any, publication: Any, participant: Any) -> None:
            for kind, (pump_track, task) in list(self._pumps.items()):
                if pump_track is track:
                    task.cancel()
                    del self._pumps[kind]

        room.on("track_subscribed", on_subscribed)
        room.on("track_unsubscribed", on_unsubscribed)
        self._rooms.append((room, on_subscribed, on_unsubscribed))
        with contextlib.suppress(Exception):  # an unconnected room has no participants yet
            for participant in room.remote_participants.values():
                for publication in participant.track_publications.values():
                    if publication.track is not None:
                        self._on_track(rtc_mod, publication.track, participant)

    async def join(self, url: str, token: str, *, timeout_s: float = 10.0) -> rtc.Room:
        """Connect a room of our own with ``token`` and record from it."""
        rtc_mod = import_sdk("livekit.rtc", package="livekit", extra="avatar", backend="recorder")
        room: rtc.Room = rtc_mod.Room()
        self.attach(room)
        try:
            await asyncio.wait_for(room.connect(url, token, rtc_mod.RoomOptions(auto_subscribe=True)), timeout_s)
        except (TimeoutError, Exception) as exc:
            with contextlib.suppress(Exception):
                await room.disconnect()
            raise BackendError(f"avatar recorder could not join the LiveKit room {url}: {exc}", retryable=True) from exc
        self._own_room = room
        return room

    def _on_track(self, rtc_mod: Any, track: Any, participant: Any) -> None:
        identity = getattr(participant, "identity", None)
        if self.participant and identity and identity != self.participant:
            return
        if track.kind == rtc_mod.TrackKind.KIND_VIDEO:
            kind = "video"
        elif track.kind == rtc_mod.TrackKind.KIND_AUDIO:
            kind = "audio"
        else:
            return
        if kind in self._pumps or self._closing:
            return
        if self.participant is None and identity:
            self.participant = identity  # stick to the first participant seen
        if kind == "video":
            stream = rtc_mod.VideoStream(track, capacity=2)
        else:
            stream = rtc_mod.AudioStream(track, sample_rate=self.audio_rate, num_channels=1, capacity=200)
        task = asyncio.get_running_loop().create_task(self._pump(kind, stream), name=f"recorder-{kind}")
        self._pumps[kind] = (track, task)
        log.debug("avatar recorder: recording %s of %s", kind, identity or "a local track")

    async def _pump(self, kind: str, stream: Any) -> None:
        try:
            async for event in stream:
                if kind == "video":
                    self.push_video(event.frame, event.timestamp_us)
                else:
                    self.push_audio(bytes(event.frame.data))
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    # --- closing -------------------------------------------------------------------

    async def aclose(self) -> RecorderStats:
        """Stop reading tracks, encode what is queued, finish the file. Safe to call twice."""
        if self._closed:
            return self.stats
        self._closed = True
        for room, on_sub, on_unsub in self._rooms:
            with contextlib.suppress(Exception):
                room.off("track_subscribed", on_sub)
                room.off("track_unsubscribed", on_unsub)
        tasks = [task for _, task in self._pumps.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._pumps.clear()
        if self._own_room is not None:
            with contextlib.suppress(Exception):
                await self._own_room.disconnect()
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        if self._error is not None:
            raise BackendError(f"avatar recording to {self.path} failed: {self._error}") from self._error
        return self.stats

    # --- encoder thread ------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="avatar-recorder", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            _Encoder(self).run()
        except BaseException as exc:
            log.exception("avatar recorder failed")
            self._error = exc
            with self._cond:
                self._closing = True
                self._video.clear()
                self._audio.clear()


class _Encoder:
    """The encoder thread's state: the container, streams and the shared timeline."""

    def __init__(self, rec: AvatarRecorder) -> None:
        import av
        import numpy as np

        self.av = av
        self.np = np
        self.rec = rec
        self.container: Any = None
        self.vstream: Any = None
        self.astream: Any = None
        self.t0: float | None = None
        self.first_item_at: float | None = None
        self.video_ts0: int | None = None
        self.video_offset_ms = 0
        self.last_video_pts = -1
        self.audio_pos: int | None = None  # next audio pts, in samples
        self.size: tuple[int, int] | None = None
        self.pending_video: list[tuple[Any, int, float]] = []
        self.pending_audio: list[tuple[bytes, float]] = []

    def run(self) -> None:
        rec = self.rec
        while True:
            with rec._cond:
                while not rec._video and not rec._audio and not rec._closing:
                    rec._cond.wait(timeout=0.5 if self.container is None and self.first_item_at else None)
                    if self.container is None and self.first_item_at and self._start_wait_over():
                        break
                audio = list(rec._audio)
                rec._audio.clear()
                rec._audio_queued = 0
                video = rec._video.popleft() if rec._video else None
                closing = rec._closing and not rec._video and not rec._audio
            if self.container is None:
                self.pending_audio.extend(audio)
                if video is not None:
                    self.pending_video.append(video)
                    self._trim_pending_video()
                if self.first_item_at is None and (self.pending_audio or self.pending_video):
                    self.first_item_at = time.monotonic()
                if not (self._ready() or (closing and (self.pending_audio or self.pending_video))):
                    if closing:
                        return
                    continue
                self._open()
                audio, self.pending_audio = self.pending_audio, []
                videos, self.pending_video = self.pending_video, []
            else:
                videos = [video] if video is not None else []
            if audio:
                self._encode_audio(audio)
            for item in videos:
                self._encode_video(item)
            if closing:
                self._finish()
                return

    def _start_wait_over(self) -> bool:
        return self.first_item_at is not None and time.monotonic() - self.first_item_at >= self.rec.start_wait_s

    def _ready(self) -> bool:
        have_both = bool(self.pending_video) and bool(self.pending_audio)
        return have_both or ((bool(self.pending_video) or bool(self.pending_audio)) and self._start_wait_over())

    def _trim_pending_video(self) -> None:
        limit = self.rec._video.maxlen or 1
        while len(self.pending_video) > limit:
            self.pending_video.pop(0)
            self.rec.stats.video_dropped += 1

    def _open(self) -> None:
        rec = self.rec
        rec.path.parent.mkdir(parents=True, exist_ok=True)
        arrivals = [t for _, _, t in self.pending_video] + [t for _, t in self.pending_audio]
        self.t0 = min(arrivals)
        self.container = self.av.open(
            str(rec.path),
            "w",
            format="mp4",
            options={"movflags": _MOVFLAGS, "frag_duration": "1000000", "flush_packets": "1"},
        )
        if self.pending_video:
            frame = self.pending_video[0][0]
            width, height = int(frame.width) // 2 * 2, int(frame.height) // 2 * 2
            self.size = (width, height)
            gop = max(1, round(rec.fps * rec.keyframe_interval_s))
            self.vstream = self.container.add_stream(
                "libx264",
                rate=rec.fps,
                options={"preset": rec.preset, "tune": "zerolatency", "crf": str(rec.crf), "g": str(gop)},
            )
            self.vstream.width, self.vstream.height, self.vstream.pix_fmt = width, height, "yuv420p"
            self.vstream.codec_context.time_base = Fraction(1, 1000)
        if self.pending_audio:
            self.astream = self.container.add_stream("aac", rate=rec.audio_rate, layout="mono")
        log.debug("avatar recorder: writing %s (video=%s audio=%s)", rec.path, self.size, self.astream is not None)

    def _encode_video(self, item: tuple[Any, int, float]) -> None:
        if self.vstream is None or self.t0 is None:
            return
        frame, ts_us, arrived = item
        if self.video_ts0 is None:
            self.video_ts0 = ts_us
            self.video_offset_ms = round((arrived - self.t0) * 1000)
        pts = self.video_offset_ms + (ts_us - self.video_ts0) // 1000
        if pts <= self.last_video_pts:
            pts = self.last_video_pts + 1
        self.last_video_pts = pts
        av_frame = self._to_av(frame)
        av_frame.pts = pts
        av_frame.time_base = Fraction(1, 1000)
        for packet in self.vstream.encode(av_frame):
            self.container.mux(packet)
        self.rec.stats.video_encoded += 1

    def _to_av(self, frame: Any) -> Any:
        av, np = self.av, self.np
        assert self.size is not None
        width, height = int(frame.width), int(frame.height)
        data = None
        if int(frame.type) == 5 and width % 2 == 0 and height % 2 == 0:  # I420, as LiveKit delivers it
            buf = np.frombuffer(frame.data, dtype=np.uint8)
            if buf.size == width * height * 3 // 2:
                data = av.VideoFrame.from_ndarray(buf.reshape(height * 3 // 2, width), format="yuv420p")
        if data is None:
            from livekit import rtc

            rgba = frame.convert(rtc.VideoBufferType.RGBA)
            arr = np.frombuffer(rgba.data, dtype=np.uint8).reshape(height, width, 4)
            data = av.VideoFrame.from_ndarray(arr, format="rgba")
        if (data.width, data.height) != self.size or data.format.name != "yuv420p":
            data = data.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
        return data

    def _encode_audio(self, chunks: list[tuple[bytes, float]]) -> None:
        if self.astream is None or self.t0 is None:
            return
        rate = self.rec.audio_rate
        first_arrival = chunks[0][1]
        # arrival stamps are taken when a chunk is queued, i.e. at its end
        first_n = len(chunks[0][0]) // 2
        arrived_pos = round((first_arrival - self.t0) * rate) - first_n
        if self.audio_pos is None:
            self.audio_pos = max(0, arrived_pos)
        elif arrived_pos - self.audio_pos > rate // 2:
            # the track went quiet (no frames): keep the timeline with silence
            gap = arrived_pos - self.audio_pos
            self._encode_pcm(b"\x00\x00" * gap)
            self.rec.stats.silence_inserted += gap
        self._encode_pcm(b"".join(chunk for chunk, _ in chunks))

    def _encode_pcm(self, pcm: bytes) -> None:
        np, av = self.np, self.av
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.rec.audio_rate
        frame.pts = self.audio_pos
        frame.time_base = Fraction(1, self.rec.audio_rate)
        for packet in self.astream.encode(frame):
            self.container.mux(packet)
        n = samples.shape[1]
        assert self.audio_pos is not None
        self.audio_pos += n
        self.rec.stats.audio_samples_encoded += n

    def _finish(self) -> None:
        if self.container is None:
            return
        for stream in (self.vstream, self.astream):
            if stream is not None:
                for packet in stream.encode(None):
                    self.container.mux(packet)
        self.container.close()
        self.container = None
