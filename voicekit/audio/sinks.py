"""Where bot audio goes: a WAV file, nowhere, or a speaker (see devices.py).

A sink paces itself like a speaker when ``realtime`` is true: :meth:`AudioSink.play`
returns once the chunk is due to play, keeping at most ``lookahead_ms`` queued, so
:meth:`AudioSink.clear` (barge-in) silences the bot within that much audio.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from voicekit.audio.pcm import duration_ms
from voicekit.audio.wav import WavSink
from voicekit.clock import now

log = logging.getLogger(__name__)


class AudioSink:
    """Plays int16 mono PCM at ``sample_rate``."""

    def __init__(self, sample_rate: int, *, realtime: bool = True, lookahead_ms: float = 40.0) -> None:
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.lookahead = lookahead_ms / 1000
        self._play_until = 0.0
        self.played_ms = 0.0

    async def play(self, pcm: bytes) -> float:
        """Play a chunk; returns the time its playback starts."""
        start = now()
        if self.realtime:
            ahead = self._play_until - start - self.lookahead
            if ahead > 0:
                await asyncio.sleep(ahead)
            start = max(now(), self._play_until)
            self._play_until = start + duration_ms(pcm, self.sample_rate) / 1000
        self._write(pcm)
        self.played_ms += duration_ms(pcm, self.sample_rate)
        return start

    def clear(self) -> None:
        """Drop whatever is queued: playback stops now."""
        self._play_until = min(self._play_until, now())
        self._clear()

    @property
    def busy_until(self) -> float:
        """When the audio written so far will have finished playing."""
        return self._play_until

    def _write(self, pcm: bytes) -> None:
        """Hand the chunk to the device or file."""

    def _clear(self) -> None:
        """Drop device-side buffers."""

    async def aclose(self) -> None:
        """Finish and release the device or file."""


class NullSink(AudioSink):
    """Discards audio (still paced when realtime, so timing stays true)."""


class WavFileSink(AudioSink):
    """Writes what is played to a WAV file, put in place when the sink is closed.

    Until then the audio is in a temporary file beside the target, so an existing file is
    never truncated: :meth:`discard` (a conversation that never started) leaves it as it
    was, and so does a conversation that played nothing at all (it failed at its start,
    most likely); :meth:`aclose` after any audio replaces it.
    """

    def __init__(self, path: str | Path, sample_rate: int, *, realtime: bool = True) -> None:
        super().__init__(sample_rate, realtime=realtime)
        self._wav = WavSink(path, sample_rate)
        self.path = self._wav.path

    def _write(self, pcm: bytes) -> None:
        self._wav.write(pcm)

    def discard(self) -> None:
        """Drop what was written; an existing file at ``path`` stays as it was."""
        self._wav.discard()

    async def aclose(self) -> None:
        if not self._wav.bytes_written and self.path.is_file():
            log.warning("no reply audio was played: %s is left as it was", self.path)
            self._wav.discard()
            return
        self._wav.close()
