"""Record a conversation as it happens: both sides' audio, the transcript and the metrics.

``DIR/conversation.wav`` is 16 kHz stereo, the user on the left and the bot on the
right, time-aligned; ``DIR/transcript.jsonl`` gets one line per transcript event (tool calls and
their results included) as it happens (flushed, so a crash keeps what came before); ``DIR/metrics.json`` is
written when the conversation ends.
"""

from __future__ import annotations

import json
import time
import wave
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from voicekit.audio.pcm import StreamResampler
from voicekit.clock import now
from voicekit.engine.metrics import summarize
from voicekit.events import (
    BackendSwitched,
    BargeIn,
    BotSentence,
    BotTurn,
    ErrorEvent,
    Event,
    Final,
    ToolCall,
    ToolCallsCancelled,
    ToolResult,
    TurnMetrics,
    UserTurn,
)

RATE = 16000
_FLUSH_SAMPLES = RATE // 2
_LOGGED = (
    Final,
    UserTurn,
    BotSentence,
    ToolCall,
    ToolResult,
    ToolCallsCancelled,
    BotTurn,
    BargeIn,
    TurnMetrics,
    BackendSwitched,
    ErrorEvent,
)


class ConversationRecorder:
    """Observer and audio tap of a :class:`voicekit.engine.conversation.Conversation`."""

    def __init__(self, directory: str | Path, *, profile: str = "", conversation_id: str = "") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.wav_path = self.directory / "conversation.wav"
        self._wav = wave.open(str(self.wav_path), "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self._transcript: TextIO = (self.directory / "transcript.jsonl").open("w", encoding="utf-8")
        self._metrics: list[TurnMetrics] = []
        self._meta = {"profile": profile, "conversation_id": conversation_id, "started_at": time.time()}
        self._user = bytearray()
        self._bot = bytearray()
        self._flushed = 0  # samples already on disk (both channels)
        self._t0: float | None = None
        self._resampler: StreamResampler | None = None
        self.closed = False

    # audio
    def user_audio(self, pcm: bytes) -> None:
        if self._t0 is None:
            self._t0 = now() - len(pcm) / 2 / RATE
        self._user += pcm
        if len(self._user) // 2 >= _FLUSH_SAMPLES:
            self._flush(len(self._user) // 2)

    def bot_audio(self, pcm: bytes, sample_rate: int, at: float | None) -> None:
        if self._resampler is None or self._resampler.from_rate != sample_rate:
            self._resampler = StreamResampler(sample_rate, RATE)
        pcm = self._resampler.push(pcm)
        bot_end = self._flushed + len(self._bot) // 2
        if at is not None and self._t0 is not None:
            position = max(int((at - self._t0) * RATE), bot_end)
        else:
            position = max(bot_end, self._flushed + len(self._user) // 2)
        self._bot += bytes((position - bot_end) * 2) + pcm

    def _flush(self, samples: int) -> None:
        if samples <= 0:
            return
        for side in (self._user, self._bot):
            if len(side) < samples * 2:
                side += bytes(samples * 2 - len(side))
        left = np.frombuffer(bytes(self._user[: samples * 2]), dtype=np.int16)
        right = np.frombuffer(bytes(self._bot[: samples * 2]), dtype=np.int16)
        self._wav.writeframes(np.column_stack((left, right)).tobytes())
        del self._user[: samples * 2]
        del self._bot[: samples * 2]
        self._flushed += samples

    # events
    def __call__(self, event: Event) -> None:
        if not isinstance(event, _LOGGED) or self.closed:
            return
        if isinstance(event, TurnMetrics):
            self._metrics.append(event)
        record: dict[str, Any] = {"type": type(event).__name__, **asdict(event)}
        self._transcript.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._transcript.flush()

    def close(self, *, status: str = "ended", reason: str | None = None) -> None:
        """Write everything still buffered and finish the files; safe to call twice.

        ``status`` (ended, interrupted, failed) and ``reason`` go into metrics.json.
        """
        if self.closed:
            return
        self.closed = True
        self._flush(max(len(self._user), len(self._bot)) // 2)
        self._wav.close()
        self._transcript.close()
        summary = {
            stage: {k: v for k, v in asdict(s).items() if k != "values"}
            for stage, s in summarize(self._metrics).items()
        }
        document = {
            **self._meta,
            "ended_at": time.time(),
            "status": status,
            "reason": reason,
            "turns": [asdict(m) for m in self._metrics],
            "summary": summary,
        }
        (self.directory / "metrics.json").write_text(json.dumps(document, indent=2, ensure_ascii=False))
