"""Cutting a stream of 16 kHz PCM into utterances with a VAD, for a recognizer that hears whole utterances.

Whisper transcribes a stretch of audio at once; it does not listen to a stream. So the
stream is cut where the VAD hears speech start and end: an utterance holds the audio from a
little before the detected start (the detector reports a start only after ``min_speech_ms``
of speech, and words begin softly: ``pad_ms`` more is kept) to the end of the hangover
silence that closed it.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from voicekit.audio.vad import VoiceActivityDetector
from voicekit.events import SpeechEnded, SpeechStarted

_BYTES_PER_MS = 32  # 16 kHz, 16-bit mono


@dataclass(frozen=True)
class UtteranceStarted:
    """The VAD heard speech start."""


@dataclass(frozen=True)
class UtteranceEnded:
    """The VAD heard speech end; ``pcm`` is the whole utterance."""

    pcm: bytes


Edge = UtteranceStarted | UtteranceEnded


class UtteranceCutter:
    """Feeds audio to a VAD frame by frame and hands back utterances.

    :param vad: a detector made by :func:`voicekit.audio.vad.create_vad` (its
        ``min_silence_ms`` is the endpoint: the silence that ends an utterance).
    :param lead_ms: audio kept from before the detected start (the detector's
        ``min_speech_ms`` plus some padding).
    """

    def __init__(self, vad: VoiceActivityDetector, *, lead_ms: int) -> None:
        self.vad = vad
        self.frame_bytes = vad.frame_bytes
        self.lead_bytes = lead_ms * _BYTES_PER_MS
        frame_ms = vad.frame_s * 1000
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=int(lead_ms / frame_ms) + 2)
        self._buffer = bytearray()
        self._utterance = bytearray()
        self.in_speech = False

    @property
    def utterance(self) -> bytes:
        """The audio of the utterance heard so far (empty between utterances)."""
        return bytes(self._utterance)

    @property
    def utterance_bytes(self) -> int:
        return len(self._utterance)

    def feed(self, pcm: bytes) -> list[Edge]:
        """Feed PCM of any length; the edges it completes, in order."""
        edges: list[Edge] = []
        buffer = self._buffer
        buffer += pcm
        size = self.frame_bytes
        offset = 0
        while offset + size <= len(buffer):
            edge = self._frame(bytes(buffer[offset : offset + size]))
            offset += size
            if edge is not None:
                edges.append(edge)
        del buffer[:offset]
        return edges

    def finish(self) -> UtteranceEnded | None:
        """End of input: the utterance in progress, if any, ends here."""
        if self.in_speech:
            self._utterance += self._buffer
        self._buffer.clear()
        self.vad.flush()
        if not self.in_speech:
            return None
        return self._end()

    def _frame(self, frame: bytes) -> Edge | None:
        events = self.vad.process(frame)
        if not self.in_speech:
            self._preroll.append(frame)
            if events and isinstance(events[-1], SpeechStarted):
                lead = b"".join(self._preroll)[-self.lead_bytes :]
                # Speech right at the start of the stream: silence in front, as a recording would have.
                self._utterance = bytearray(bytes(self.lead_bytes - len(lead)) + lead)
                self._preroll.clear()
                self.in_speech = True
                return UtteranceStarted()
            return None
        self._utterance += frame
        if events and isinstance(events[-1], SpeechEnded):
            return self._end()
        return None

    def _end(self) -> UtteranceEnded:
        pcm = bytes(self._utterance)
        self._utterance = bytearray()
        self.in_speech = False
        return UtteranceEnded(pcm)
