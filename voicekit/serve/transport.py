"""Audio and messages between one websocket and one conversation.

- :class:`FrameSource` is the conversation's microphone: 16 kHz mono 20 ms frames.
- :class:`InputAudio` turns the client's audio frames (any rate, any channel count)
  into those frames.
- :class:`Outbox` is the one queue in front of the socket, so messages and audio
  leave in the order they were made, and queued audio can be dropped on barge-in.
- :class:`SocketSink` is the conversation's speaker: it paces bot audio in real time
  with a small lookahead, so a barge-in leaves little audio on the client.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np

from voicekit.audio.pcm import StreamResampler, frame_bytes
from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.serve.wire import AudioFrame, WireError, encode_audio, encode_message

log = logging.getLogger(__name__)

INPUT_RATE = 16000
FRAME_BYTES = frame_bytes(INPUT_RATE, 20)


class FrameSource:
    """An async iterable of 16 kHz mono int16 20 ms frames, fed by :meth:`put`.

    ``started`` is set when the conversation begins to read it: from then on the
    conversation is running. If the reader falls ``max_backlog`` frames behind, the
    oldest frames are dropped (and counted) rather than growing without bound.
    """

    def __init__(self, max_backlog: int = 250) -> None:
        self.started = asyncio.Event()
        self.dropped = 0
        self._max = max_backlog
        self._frames: collections.deque[bytes | None] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, frame: bytes | None) -> None:
        """Queue a frame; ``None`` ends the input."""
        if frame is not None and len(self._frames) >= self._max:
            self._frames.popleft()
            if not self.dropped:
                log.warning("the conversation is %d frames behind its microphone: dropping the oldest", self._max)
            self.dropped += 1
        self._frames.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self.put(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.started.set()
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        frames = self._frames
        while True:
            while not frames:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                self._waiter = None
            frame = frames.popleft()
            if frame is None:
                return
            yield frame


class InputAudio:
    """The client's audio, mixed to mono, resampled to 16 kHz and cut into 20 ms frames.

    ``received_s`` counts the seconds of audio received and ``first_at`` when the first came,
    so the connection can tell a client that sends faster than real time.
    """

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self._resampler: StreamResampler | None = None
        self._buffer = bytearray()
        self.received_s = 0.0
        self.first_at: float | None = None

    def ahead_s(self, more_s: float = 0.0) -> float:
        """How far the audio received (and ``more_s`` seconds more) runs ahead of the time since it began."""
        if self.first_at is None:
            return more_s
        return self.received_s + more_s - (now() - self.first_at)

    def push(self, frame: AudioFrame) -> None:
        self.push_pcm(frame.audio, frame.sample_rate, frame.num_channels)

    def push_pcm(self, pcm: bytes, rate: int, channels: int) -> None:
        rate = rate or INPUT_RATE  # an unset field reads as 0
        channels = channels or 1
        if not 8000 <= rate <= 192000:
            raise WireError(f"unsupported audio sample rate {rate} Hz (8000 to 192000)")
        if channels > 8:
            raise WireError(f"unsupported audio channel count {channels}")
        if len(pcm) % (2 * channels):
            raise WireError(f"audio of {len(pcm)} bytes is not whole 16-bit samples of {channels} channel(s)")
        if self.first_at is None:
            self.first_at = now()
        self.received_s += len(pcm) / (2 * channels * rate)
        if channels > 1:
            samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, channels).mean(axis=1)
            pcm = np.rint(samples).astype("<i2").tobytes()
        if rate != INPUT_RATE or self._resampler is not None:
            if self._resampler is None or self._resampler.from_rate != rate:
                self._resampler = StreamResampler(rate, INPUT_RATE) if rate != INPUT_RATE else None
            if self._resampler is not None:
                pcm = self._resampler.push(pcm)
        buffer = self._buffer
        buffer += pcm
        while len(buffer) >= FRAME_BYTES:
            self.source.put(bytes(buffer[:FRAME_BYTES]))
            del buffer[:FRAME_BYTES]


class Outbox:
    """Everything the server sends, in order, written by one task.

    Audio items can be dropped while still queued (:meth:`drop_audio`). When the
    client stops reading and more than ``max_pending`` items or ``max_bytes`` bytes
    pile up, ``overflow`` is set and the session ends.
    """

    def __init__(
        self, send: Callable[[bytes], Awaitable[None]], max_pending: int = 2000, max_bytes: int = 4 << 20
    ) -> None:
        self._send = send
        self._items: collections.deque[tuple[bool, bytes]] = collections.deque()  # (is_audio, payload)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._max = max_pending
        self._max_bytes = max_bytes
        self.pending_bytes = 0
        self.overflow = asyncio.Event()
        self.closed = False

    def message(self, msg: dict[str, object]) -> None:
        self._put(False, encode_message(json.dumps(msg, ensure_ascii=False, separators=(",", ":"))))

    def audio(self, pcm: bytes, sample_rate: int) -> None:
        self._put(True, encode_audio(pcm, sample_rate))

    def drop_audio(self) -> None:
        """Forget the audio not yet sent; messages stay."""
        if any(is_audio for is_audio, _ in self._items):
            self._items = collections.deque(item for item in self._items if not item[0])
            self.pending_bytes = sum(len(payload) for _, payload in self._items)

    def _put(self, is_audio: bool, payload: bytes) -> None:
        if self.closed:
            return
        self._items.append((is_audio, payload))
        self.pending_bytes += len(payload)
        self._idle.clear()
        self._wake.set()
        if len(self._items) > self._max or self.pending_bytes > self._max_bytes:
            self.overflow.set()

    async def run(self) -> None:
        """Send until cancelled or the socket fails."""
        try:
            while True:
                while not self._items:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                payload = self._items.popleft()[1]
                self.pending_bytes -= len(payload)
                await self._send(payload)
        finally:
            self.closed = True
            self._idle.set()

    async def flush(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) until everything queued has been sent."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.debug("outbox not flushed in %.1f s", timeout)


class SocketSink(AudioSink):
    """Bot audio to the socket, paced like a speaker.

    Each chunk is cut into ``chunk_ms`` pieces; a piece is sent when it is due to
    play within ``lookahead_ms``, so after :meth:`clear` (barge-in) the client holds
    at most that much of the cut reply. Pieces that were waiting when ``clear``
    came are never sent.
    """

    def __init__(
        self,
        outbox: Outbox,
        on_audio: Callable[[], None],
        sample_rate: int = 24000,
        *,
        chunk_ms: float = 40.0,
        lookahead_ms: float = 60.0,
    ) -> None:
        super().__init__(sample_rate, realtime=True, lookahead_ms=lookahead_ms)
        self.outbox = outbox
        self.on_audio = on_audio
        self.generation = 0  # bumped by clear(): a play() that sees it change stops
        self._piece = max(2, frame_bytes(sample_rate, chunk_ms))
        self.sent_bytes = 0

    async def play(self, pcm: bytes) -> float:
        generation = self.generation
        first: float | None = None
        piece_s = self._piece / 2 / self.sample_rate
        for offset in range(0, len(pcm), self._piece):
            piece = pcm[offset : offset + self._piece]
            ahead = self._play_until - now() - self.lookahead
            if ahead > 0:
                await asyncio.sleep(ahead)
            if generation != self.generation:
                break  # cleared while waiting: this reply was cut
            start = max(now(), self._play_until)
            self._play_until = start + (piece_s if len(piece) == self._piece else len(piece) / 2 / self.sample_rate)
            self.on_audio()
            self.outbox.audio(piece, self.sample_rate)
            self.sent_bytes += len(piece)
            self.played_ms += len(piece) / 2 / self.sample_rate * 1000
            if first is None:
                first = start
        return first if first is not None else now()

    def _clear(self) -> None:
        self.generation += 1
        self.outbox.drop_audio()
