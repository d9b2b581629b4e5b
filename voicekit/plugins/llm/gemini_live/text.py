"""Text mode of Gemini Live: ``respond`` over one live session kept for a whole conversation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Literal

from voicekit.errors import BackendError
from voicekit.events import LLMDone, LLMEvent, TextDelta, ToolCall
from voicekit.plugins.llm.gemini_live import functions
from voicekit.roles import Message, ToolSpec

if TYPE_CHECKING:
    from voicekit.plugins.llm.gemini_live.link import LiveLink
    from voicekit.plugins.llm.gemini_live.stream import Transcript
    from voicekit.plugins.llm.gemini_live.wire import LiveUpdate

log = logging.getLogger(__name__)


class LiveTextChat:
    """One reply per ``respond``, all over one live session (the backend's ``mode: text``).

    Who does what: the backend opens and closes live sessions (``open_link`` with the
    transcript to seed a fresh one from, and the tools to declare; ``close_link``). This
    object keeps what text mode needs between turns: the transcript of the turns it carried
    (the core's history replaces it once, at the first turn), whether a reply was left
    unread (the engine stopped reading at a barge-in), whose rest is skipped before the next
    reply, and the calls the model waits on. Sending a lost turn again, replacing a stalled
    connection and retrying are the link's; what its retry policy gives up on is raised
    here, and the next ``respond`` opens a new live session told what was said so far.

    Tools: the live session declares the tools of the first ``respond`` that has any (a
    different set opens a new one). A reply that ends in a ``toolCall`` yields its
    ``ToolCall`` s and ``LLMDone``; the next ``respond`` (``user_text=""``, the results in the
    history's last round) sends them as a ``toolResponse`` and reads the model's answer,
    which goes on in the same turn of the service. Asked with ``tools=()`` (the last round),
    a call is answered at once with an error for the model to read. New words while calls
    wait leave them to the service, which withdraws them.
    """

    def __init__(
        self,
        *,
        open_link: Callable[[Transcript, Sequence[ToolSpec]], LiveLink],
        close_link: Callable[[LiveLink], Awaitable[None]],
        label: str,
        text_from: Literal["transcription", "parts"],
    ) -> None:
        self._open_link, self._close_link = open_link, close_link
        self.label = label
        self.text_from = text_from  # output transcription (AUDIO replies) or text parts (TEXT replies)
        self.link: LiveLink | None = None
        self.transcript: Transcript = []
        self.tools: tuple[ToolSpec, ...] = ()  # declared on the live session
        self._synced = False  # the core's history has been handed over
        self._turn_open = False  # a reply was left unread; its rest comes first
        self._calls: dict[str, str] = {}  # calls the model waits on: id → name
        self._answered = 0  # the number of the last tool response sent: updates before it are not the answer

    async def start(self) -> None:
        """Open the live session before the first turn (a bad key or model fails here)."""
        if self.link is None:
            await self._open([])

    def forget(self) -> None:
        """The backend closed every live session."""
        self.link = None

    async def respond(
        self, history: Sequence[Message], user_text: str, *, tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]:
        link = self.link
        offered = tuple(tools)
        retool = bool(offered) and offered != self.tools
        reopen = link is not None and (retool or (not self._synced and any(m.text.strip() for m in history)))
        if link is not None and (reopen or link.failed is not None):
            # opened by start() before the history or the tools were known, or failed (quota, network)
            await self._close_link(link)
            link = None
        if link is None:
            self.tools = offered or self.tools
            link = await self._open(history if not self._synced else _as_history(self.transcript))
        self._synced = True
        skipping, self._turn_open = self._turn_open, True
        self._answered = 0
        if user_text.strip():
            if self._calls:  # the round was dropped: the service withdraws the calls and ends that turn
                skipping, self._calls = True, {}
            self.transcript.append(("user", user_text))
            link.send("text", user_text)
        elif not self._send_results(link, history):
            log.warning("%s: asked to go on without new words or tool results; nothing to answer", self.label)
            self._turn_open = skipping
            yield LLMDone("")
            return
        pieces: list[str] = []
        calls: list[ToolCall] = []
        try:
            async for update in self._reply_updates(link, skipping):
                text = update.output_text if self.text_from == "transcription" else update.model_text
                if text:
                    pieces.append(text)
                    yield TextDelta(text)
                for call_id in update.cancelled_calls:
                    self._calls.pop(call_id, None)
                if update.tool_calls:
                    made = [
                        ToolCall(i or functions.new_call_id(), n, functions.call_arguments(a))
                        for i, n, a in update.tool_calls
                    ]
                    if offered:
                        calls = made
                        self._calls = {call.id: call.name for call in made}
                        break  # the model waits for the results: the engine runs the calls
                    self._refuse(link, made)
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
        for call in calls:
            yield call
        yield LLMDone("".join(pieces))

    def _send_results(self, link: LiveLink, history: Sequence[Message]) -> bool:
        """A later round: the results of the calls the model waits on, from the history's last
        round; False when there is nothing to send."""
        last = next((m for m in reversed(history) if m.tool_calls), None)
        results = {r.id: r for r in last.tool_results} if last is not None else {}
        types = link.types
        if not self._calls:  # a new live session never asked for them (the old one failed)
            if last is not None:
                responses = [
                    types.FunctionResponse(id=c.id, name=c.name, response=functions.response_payload(results.get(c.id)))
                    for c in last.tool_calls
                ]
                link.send("text", functions.results_in_words(responses))
            return last is not None
        responses = [
            types.FunctionResponse(id=call_id, name=name, response=functions.response_payload(results.get(call_id)))
            for call_id, name in self._calls.items()
        ]
        self._calls = {}
        self._answered = link.send_tool_response(responses)
        return True

    def _refuse(self, link: LiveLink, calls: Sequence[ToolCall]) -> None:
        """Calls made when no tools were offered (the last round): answered at once, with an error."""
        log.warning("%s: the model called %s after its last round; it is told to answer", self.label, calls[0].name)
        refusal = {"error": "no more tool calls in this reply: answer with what you have"}
        responses = [link.types.FunctionResponse(id=c.id, name=c.name, response=refusal) for c in calls]
        self._answered = link.send_tool_response(responses)

    async def _open(self, history: Sequence[Message]) -> LiveLink:
        self.transcript = transcript_of(history)
        self._turn_open = False
        self._calls = {}
        link = self.link = self._open_link(self.transcript, self.tools)
        await link.ready()
        return link

    async def _reply_updates(self, link: LiveLink, skipping: bool) -> AsyncIterator[LiveUpdate]:
        """Updates of this turn's reply, after the rest of an abandoned one.

        The link sees to it that they come: it sends the turn again on a new connection,
        replaces a stalled one, and raises what its retry policy gave up on. An update that
        came before the tool response last sent was written cannot be the model's answer to
        it: it closes the turn of the calls, and only its text counts.
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
            if update.responses_written < self._answered and not update.model_output:
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
