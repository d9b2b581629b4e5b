"""A loopback "language model" that repeats what the user said.

It needs nothing: no key, no model, no network. It makes the offline profile a
complete voice loop (you hear your own words back) and gives tests and demos a
deterministic reply. It is not a language model and never pretends to be one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

from pydantic import Field

from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.options import BackendOptions
from voicekit.roles import LLM, Capabilities, Message

_PREFIXES = {"en": "You said: ", "ru": "Вы сказали: "}
_NOTHING = {"en": "I did not hear anything.", "ru": "Я ничего не услышал."}


class EchoOptions(BackendOptions):
    """Options of the echo loopback."""

    prefix: str | None = Field(
        None, description='Text before the echoed words; default by language: en "You said: ", ru "Вы сказали: "'
    )
    token_delay_ms: float = Field(0.0, ge=0, le=10_000, description="Pause before each streamed word, to mimic a model")
    language: str | None = Field(None, description="Language of the fixed phrases; default: the profile's language")


class EchoLLM(LLM):
    """Loopback, not a model: replies "You said: <user text>." streamed word by word."""

    Options: ClassVar[type[EchoOptions]] = EchoOptions
    capabilities = Capabilities(streaming=True)
    options: EchoOptions

    def reply_text(self, user_text: str) -> str:
        """The whole reply to ``user_text``."""
        language = (self.options.language or self.context.language or "en").split("-")[0].lower()
        words = user_text.strip().rstrip(".!?…。 ")
        if not words:
            return _NOTHING.get(language, _NOTHING["en"])
        prefix = self.options.prefix if self.options.prefix is not None else _PREFIXES.get(language, _PREFIXES["en"])
        return f"{prefix}{words}."

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        text = self.reply_text(user_text)
        delay = self.options.token_delay_ms / 1000
        # Each piece is a word with the whitespace before it, so the pieces join back to the text.
        for piece in re.findall(r"\s*\S+", text):
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the engine interleave, as a streaming model would
            yield TextDelta(piece)
        yield LLMDone(text)
