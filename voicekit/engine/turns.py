"""Turn-taking state: what the bot is saying now, and what of it the user actually heard."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from voicekit.engine.metrics import TurnClock

DuplexMode = Literal["half_duplex", "full_duplex"]

# what the playback queue carries, in order: a sentence starts, its audio, it ends; a turn ends; stop
SENTENCE, AUDIO, SENTENCE_END, TURN_END, STOP = range(5)


@dataclass
class SentenceProgress:
    """One sentence of the reply and how much of its audio has been played."""

    text: str
    bytes_queued: int = 0
    bytes_played: int = 0
    synthesized: bool = False  # the output finished producing it
    played: bool = False  # all of it reached the listener


@dataclass
class BotTurn:
    """One reply in progress: its tasks, its sentences and its clock."""

    index: int
    user_text: str
    clock: TurnClock
    task: asyncio.Task[None] | None = None
    text: str = ""  # everything the LLM wrote so far
    sentences: list[SentenceProgress] = field(default_factory=list)
    audio_started: bool = False
    cancelled: bool = False
    finished: bool = False

    def spoken_text(self) -> str:
        """The part of the reply the user heard: whole played sentences plus the played
        share of the words of a sentence cut mid-way."""
        parts: list[str] = []
        for sentence in self.sentences:
            if sentence.played:
                parts.append(sentence.text)
            elif sentence.bytes_played and sentence.bytes_queued:
                words = sentence.text.split()
                share = sentence.bytes_played / sentence.bytes_queued
                heard = words[: int(len(words) * share)]
                if heard:
                    parts.append(" ".join(heard) + "…")
                break
            else:
                break
        return " ".join(parts)
