"""Bot audio on its way to the listener, and what of each sentence was heard.

The reply puts what the output yields on one ordered queue — a sentence starts, its
audio, it ends, the turn ends — and :meth:`Playback.run` plays it: resampling to the
sink's rate, pacing like a speaker, telling turn-taking when the bot's first audio
reached the listener and when the reply was heard to its end. Items of a cancelled
turn, or of a reply that was started afresh, are skipped.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from voicekit.audio.pcm import StreamResampler
from voicekit.audio.sinks import AudioSink
from voicekit.clock import now
from voicekit.engine.turns import BotTurn, SentenceProgress, TurnTaking
from voicekit.events import AudioOut

_SENTENCE, _AUDIO, _SENTENCE_END, _TURN_END, _STOP, _ABANDON = range(6)


class Recorder(Protocol):
    """Receives both sides' audio; see :class:`voicekit.recording.ConversationRecorder`."""

    def user_audio(self, pcm: bytes) -> None: ...
    def bot_audio(self, pcm: bytes, sample_rate: int, at: float | None) -> None: ...


class Playback:
    """Plays replies in order; see the module docstring.

    ``remote_output`` is an avatar: its speech plays in its own room, so a sentence
    counts as heard when the avatar says it started, not when audio reaches our sink.
    """

    def __init__(
        self,
        sink: AudioSink,
        turns: TurnTaking,
        *,
        recorder: Recorder | None = None,
        fast: bool = False,
        remote_output: bool = False,
    ) -> None:
        self.sink = sink
        self.turns = turns
        self.recorder = recorder
        self.fast = fast
        self.remote_output = remote_output
        self._queue: asyncio.Queue[tuple[int, BotTurn | None, int, Any]] = asyncio.Queue()
        self._resamplers: dict[int, StreamResampler] = {}

    # --- from the reply (never blocks) -------------------------------------------------------

    def sentence_started(self, turn: BotTurn, text: str) -> None:
        self._queue.put_nowait((_SENTENCE, turn, turn.generation, text))

    def audio(self, turn: BotTurn, event: AudioOut) -> None:
        self._queue.put_nowait((_AUDIO, turn, turn.generation, event))

    def sentence_ended(self, turn: BotTurn, text: str) -> None:
        self._queue.put_nowait((_SENTENCE_END, turn, turn.generation, text))

    def sentence_abandoned(self, turn: BotTurn) -> None:
        """The voice failed inside a sentence, which another voice says again from its start."""
        self._queue.put_nowait((_ABANDON, turn, turn.generation, None))

    def turn_ended(self, turn: BotTurn) -> None:
        self._queue.put_nowait((_TURN_END, turn, turn.generation, None))

    def stop(self) -> None:
        """End :meth:`run` once what is queued before it has been played."""
        self._queue.put_nowait((_STOP, None, 0, None))

    def silence(self, turn: BotTurn) -> None:
        """Stop what is playing now (barge-in, a reply started afresh)."""
        self.sink.clear()
        self._resamplers.pop(turn.index, None)

    # --- the player ------------------------------------------------------------------------

    async def run(self) -> None:
        queue, sink = self._queue, self.sink
        while True:
            kind, turn, generation, payload = await queue.get()
            if kind == _STOP:
                return
            assert turn is not None
            if turn.tentative and not await turn.confirmed():
                continue  # a preemptive reply is heard only once the user's turn is confirmed
            if turn.cancelled or turn.finished or generation != turn.generation:
                continue
            if kind == _AUDIO:
                await self._play(turn, generation, payload)
            elif kind == _SENTENCE:
                turn.sentences.append(SentenceProgress(payload))
                if self.remote_output:
                    self.turns.bot_audio_started(turn, now())
            elif kind == _SENTENCE_END:
                if turn.sentences:
                    turn.sentences[-1].synthesized = turn.sentences[-1].played = True
            elif kind == _ABANDON:
                if turn.sentences and not turn.sentences[-1].synthesized:
                    turn.sentences.pop()
            elif kind == _TURN_END:
                resampler = self._resamplers.pop(turn.index, None)
                if resampler is not None and (tail := resampler.flush()):
                    await sink.play(tail)
                if sink.realtime:  # let the last chunk finish before the mic opens again
                    await asyncio.sleep(max(0.0, sink.busy_until - now()))
                if generation == turn.generation:
                    self.turns.bot_done(turn)

    async def _play(self, turn: BotTurn, generation: int, event: AudioOut) -> None:
        if not turn.sentences:
            turn.sentences.append(SentenceProgress(turn.text))
        sentence = turn.sentences[-1]
        sentence.bytes_queued += len(event.pcm)
        pcm = event.pcm
        if event.sample_rate != self.sink.sample_rate:
            resampler = self._resamplers.get(turn.index)
            if resampler is None or resampler.from_rate != event.sample_rate:
                resampler = self._resamplers[turn.index] = StreamResampler(event.sample_rate, self.sink.sample_rate)
            pcm = resampler.push(pcm)
        if not pcm:
            return
        started = await self.sink.play(pcm)
        if turn.cancelled or generation != turn.generation:
            return
        sentence.bytes_played += len(event.pcm)
        sentence.seconds_played += len(event.pcm) / 2 / event.sample_rate
        self.turns.bot_audio_started(turn, started)
        if self.recorder is not None:
            self.recorder.bot_audio(pcm, self.sink.sample_rate, None if self.fast else started)
