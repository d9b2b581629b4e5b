"""Text mode of Gemini Live: ``respond`` over one live session kept for a whole conversation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal

from voicekit.errors import BackendError
from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.roles import Message

if TYPE_CHECKING:
    from voicekit.plugins.llm.gemini_live.link import LiveLink
    from voicekit.plugins.llm.gemini_live.stream import Transcript
    from voicekit.plugins.llm.gemini_live.wire import LiveUpdate

log = logging.getLogger(__name__)


class LiveTextChat:
    """One reply per ``respond``, all over one live session (the backend's ``mode: text``).

    Who does what: the backend opens and closes live sessions (``open_link`` with the
    transcript to seed a fresh one from; ``close_link``). This object keeps what text mode
    needs between turns: the transcript of the turns it carried (the core's history
    replaces it once, at the first turn), and whether a reply was left unread (the
    engine stopped reading at a barge-in), whose rest is skipped before the next reply.
    Sending a lost turn again, replacing a stalled connection and retrying are the
    link's; what its retry policy gives up on is raised here, and the next ``respond``
    opens a new live session told what was said so far.
    """

    def __init__(
        self,
        *,
        open_link: Callable[[Transcript], LiveLink],
        close_link: Callable[[LiveLink], Awaitable[None]],
        label: str,
        text_from: Literal["transcription", "parts"],
    ) -> None:
        self._open_link, self._close_link = open_link, close_link
        self.label = label
        self.text_from = text_from  # output transcription (AUDIO replies) or text parts (TEXT replies)
        self.link: LiveLink | None = None
        self.transcript: Transcript = []
        self._synced = False  # the core's history has been handed over
        self._turn_open = False  # a reply was left unread; its rest comes first

    async def start(self) -> None:
        """Open the live session before the first turn (a bad key or model fails here)."""
        if self.link is None:
            await self._open([])

    def forget(self) -> None:
        """The backend closed every live session."""
        self.link = None

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        link = self.link
        reopen = link is not None and not self._synced and any(m.text.strip() for m in history)
        if link is not None and (reopen or link.failed is not None):
            # opened by start() before the history was known, or failed (quota, network): start over
            await self._close_link(link)
            link = None
        if link is None:
            link = await self._open(history if not self._synced else _as_history(self.transcript))
        self._synced = True
        skipping, self._turn_open = self._turn_open, True
        self.transcript.append(("user", user_text))
        link.send("text", user_text)
        pieces: list[str] = []
        try:
            async for update in self._reply_updates(link, skipping):
                text = update.output_text if self.text_from == "transcription" else update.model_text
                if text:
                    pieces.append(text)
                    yield TextDelta(text)
                if update.connection_lost:
                    log.warning(
                        "%s: the connection broke during the reply; it ends after %d characters, "
                        "and the live session goes on without it",
                        self.label,
                        sum(map(len, pieces)),
                    )
                if update.turn_complete or update.interrupted or update.connection_lost:
                    break
            self._turn_open = False
        finally:
            if pieces:
                self.transcript.append(("assistant", "".join(pieces)))
        yield LLMDone("".join(pieces))

    async def _open(self, history: Sequence[Message]) -> LiveLink:
        self.transcript = transcript_of(history)
        self._turn_open = False
        link = self.link = self._open_link(self.transcript)
        await link.ready()
        return link

    async def _reply_updates(self, link: LiveLink, skipping: bool) -> AsyncIterator[LiveUpdate]:
        """Updates of this turn's reply, after the rest of an abandoned one.

        The link sees to it that they come: it sends the turn again on a new connection,
        replaces a stalled one, and raises what its retry policy gave up on.
        """
        swallow_complete = False
        while True:
            update = await link.next_update()
            if update is None:
                raise BackendError(f"{self.label}: the live session closed during a reply", retryable=True)
            if skipping:
                if update.interrupted or update.turn_complete or update.connection_lost:
                    skipping = False
                    swallow_complete = update.interrupted and not update.turn_complete
                continue
            if swallow_complete:
                if update.turn_complete and not update.model_output:
                    swallow_complete = False
                    continue  # closes the interrupted turn
                if update.model_output or update.interrupted:
                    swallow_complete = False
            yield update


def transcript_of(history: Sequence[Message]) -> Transcript:
    """The core's history as a transcript (empty entries left out)."""
    return [(m.role, m.text) for m in history if m.text.strip()]


def _as_history(transcript: Transcript) -> list[Message]:
    return [Message(role, text) for role, text in transcript]
