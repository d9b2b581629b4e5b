"""The ElevenLabs text-to-speech websocket, as data: server messages, sentence attribution,
and the text of a turn kept for saying it again on a new connection.

Pure Python (no SDK, no socket), so the tests can feed it the vendor's own example
messages. Field names differ between ElevenLabs' docs and its SDK (``isFinal`` and
``is_final``, ``contextId`` and ``context_id``, ``charDurationsMs`` and
``charsDurationsMs``): both spellings are read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from bisect import bisect_right
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """One message from the stream-input / multi-stream-input socket."""

    context_id: str | None = None
    audio: bytes = b""
    chars: tuple[str, ...] | None = None  # alignment of this chunk (the text as sent), if given
    starts_ms: tuple[float, ...] = ()  # start of each char, relative to this chunk
    final: bool = False
    error: str | None = None  # the service's error code, e.g. "invalid_api_key"
    message: str | None = None  # its human-readable text


def _first(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if obj.get(name) is not None:
            return obj[name]
    return None


def parse_server_message(raw: str | bytes | dict[str, Any]) -> ServerMessage:
    """Read one server message; unknown fields are ignored, bad base64 is an error message."""
    obj = raw if isinstance(raw, dict) else json.loads(raw)
    if not isinstance(obj, dict):
        return ServerMessage(error="bad_message", message=f"unexpected message: {str(obj)[:200]}")
    context_id = _first(obj, "contextId", "context_id")
    error = obj.get("error")
    if error or ("message" in obj and "audio" not in obj and not _first(obj, "isFinal", "is_final")):
        return ServerMessage(
            context_id=context_id,
            error=str(error or obj.get("code") or "error"),
            message=str(obj.get("message") or error),
        )
    audio = b""
    if obj.get("audio"):
        try:
            audio = base64.b64decode(obj["audio"], validate=True)
        except (binascii.Error, ValueError):
            return ServerMessage(context_id=context_id, error="bad_audio", message="audio is not valid base64")
    chars: tuple[str, ...] | None = None
    starts: tuple[float, ...] = ()
    alignment = obj.get("alignment")
    if isinstance(alignment, dict) and alignment.get("chars") is not None:
        chars = tuple(str(c) for c in alignment["chars"])
        raw_starts = alignment.get("charStartTimesMs") or alignment.get("char_start_times_ms") or ()
        starts = tuple(float(s) for s in raw_starts)
        if len(starts) != len(chars):
            chars, starts = None, ()  # unusable: treat the chunk as unaligned
    return ServerMessage(
        context_id=context_id,
        audio=audio,
        chars=chars,
        starts_ms=starts,
        final=bool(_first(obj, "isFinal", "is_final")),
    )


class SentenceAttributor:
    """Splits a context's audio between the sentences it speaks, using the alignment.

    Why alignment: one context carries a whole turn, and its audio arrives in chunks
    that do not respect sentence boundaries (a chunk may end one sentence and start the
    next; the multi-context socket sends no per-flush marker). Each chunk's alignment
    lists the characters it speaks with their start times, so counting the non-blank
    characters tells which sentence every character belongs to, and the start time of a
    sentence's first character is where the chunk is cut. Blanks are not counted because
    the service may drop or add spaces between the pieces of text we send. Audio without
    alignment goes to the sentence being spoken; the context's final message ends the rest.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.sentences: list[str] = []
        self._ends: list[int] = []  # cumulative count of non-blank chars at the end of each sentence
        self._seen = 0  # non-blank chars spoken so far
        self.current = 0  # index of the sentence being spoken
        self.aligned = False  # at least one chunk carried alignment

    def add(self, text: str) -> int:
        """Register the next sentence (as sent); returns its index."""
        self.sentences.append(text)
        self._ends.append((self._ends[-1] if self._ends else 0) + sum(1 for c in text if not c.isspace()))
        return len(self.sentences) - 1

    @property
    def pending(self) -> bool:
        """Some registered text has not been heard in the alignment yet."""
        return bool(self._ends) and self._seen < self._ends[-1]

    def _sentence_of(self, k: int) -> int:
        return min(bisect_right(self._ends, k), max(len(self._ends) - 1, 0))

    def split(self, pcm: bytes, chars: tuple[str, ...] | None, starts_ms: tuple[float, ...]) -> list[tuple[int, bytes]]:
        """``(sentence index, pcm)`` pieces of one chunk, in order; empty pieces are left out."""
        if chars is None or not self.sentences:
            return [(self.current, pcm)] if pcm else []
        self.aligned = True
        pieces: list[tuple[int, bytes]] = []
        n_samples = len(pcm) // 2
        cut = 0  # in samples
        owner = self.current
        for char, start in zip(chars, starts_ms, strict=True):
            if char.isspace():
                continue
            index = self._sentence_of(self._seen)
            self._seen += 1
            if index > owner:
                at = min(max(round(start * self.sample_rate / 1000), cut), n_samples)
                if at > cut:
                    pieces.append((owner, pcm[cut * 2 : at * 2]))
                cut, owner = at, index
        if len(pcm) > cut * 2:
            pieces.append((owner, pcm[cut * 2 :]))
        self.current = owner
        return pieces


class SentenceTimeline:
    """Turns one context's audio messages into the sentence-framed events of ``speak``.

    ``SpeakingStarted(s)`` comes right before the first audio of ``s``; ``SpeakingEnded(s)``
    when audio of a later sentence starts, or at the context's final message.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.attributor = SentenceAttributor(sample_rate)
        self._started: set[int] = set()
        self._done = 0  # sentences before this index have ended
        self._carry = b""  # an odd byte left from the previous chunk

    def _end_before(self, index: int) -> list[OutputEvent]:
        events: list[OutputEvent] = []
        sentences = self.attributor.sentences
        while self._done < index:
            if self._done not in self._started:
                events.append(SpeakingStarted(sentences[self._done]))
            events.append(SpeakingEnded(sentences[self._done]))
            self._done += 1
        return events

    def audio(self, msg: ServerMessage) -> list[OutputEvent]:
        if not msg.audio:
            return []
        pcm, self._carry = self._carry + msg.audio, b""
        if len(pcm) % 2:
            pcm, self._carry = pcm[:-1], pcm[-1:]
        events: list[OutputEvent] = []
        for index, piece in self.attributor.split(pcm, msg.chars, msg.starts_ms):
            events += self._end_before(index)
            if index not in self._started:
                self._started.add(index)
                events.append(SpeakingStarted(self.attributor.sentences[index]))
            events.append(AudioOut(piece, self.sample_rate))
        return events

    def finish(self) -> list[OutputEvent]:
        """Every sentence not ended yet ends now (the context's final message came)."""
        return self._end_before(len(self.attributor.sentences))


class SourceFailed(Exception):
    """The turn's sentences (the language model) failed; ``error`` is raised unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class TurnText:
    """The sentences of one turn, read from the language model in a task of their own.

    Kept whole, so that a new connection can be told the turn again from its first
    sentence; and read in one place, so that cancelling a sender never cancels (and so
    closes) the model's iterator. Blank sentences are dropped, spaces normalized.
    """

    def __init__(self, source: AsyncIterator[str]) -> None:
        self.sentences: list[str] = []
        self._done = False
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read(source))

    async def _read(self, source: AsyncIterator[str]) -> None:
        try:
            async for sentence in source:
                text = " ".join(sentence.split())
                if text:
                    self.sentences.append(text)
                    self._changed.set()
        except Exception as exc:  # noqa: BLE001 - raised to the sender by get()
            self._error = exc
        finally:
            self._done = True
            self._changed.set()

    async def get(self, index: int) -> str | None:
        """Sentence ``index`` once the model has written it; ``None`` after the last one."""
        while index >= len(self.sentences):
            if self._done:
                if self._error is not None:
                    raise SourceFailed(self._error)
                return None
            self._changed.clear()
            await self._changed.wait()
        return self.sentences[index]

    async def close(self) -> None:
        """Stop reading the model (the turn is over, spoken or not)."""
        self._task.cancel()
        await asyncio.wait({self._task})
