"""The speech-to-speech side of Gemini Live: server updates in, voicekit events out.

:class:`TurnTracker` is the whole policy, kept free of I/O so it can be read and
tested on its own:

* The user's speech is transcribed by the service (``inputTranscription``). Each piece
  gives an ``Interim`` with the text so far; the first one of a user turn (or a
  ``voiceActivity`` start, when the service sends it) gives ``SpeechStarted``.
* **The user's ``Final`` is emitted when the model's turn starts** (its first audio or
  transcript), so it normally comes before the reply it answers. The service promises
  no order between the two transcripts, though: if nothing of the user's speech has
  been transcribed when the model starts, the pieces that arrive during the reply
  still belong to that utterance (``Interim``, but no ``SpeechStarted``, which would
  look like a barge-in), and the ``Final`` comes when the model's turn ends, before
  its ``LLMDone``/``Interrupted``. Pieces that arrive after the ``Final`` was sent,
  while the model is still answering uninterrupted, are logged and dropped: there is
  one ``Final`` per utterance, and they never leak into the next turn. If the model
  completes a turn without saying anything, the ``Final`` comes at ``turnComplete``.
* Model audio comes out as ``AudioOut(pcm, 24000)``, its transcript as ``TextDelta``,
  and each model turn ends with exactly one of ``LLMDone(text)`` (``turnComplete``) or
  ``Interrupted`` (the service's ``interrupted``).
* ``cut()`` (local barge-in) drops everything else of the current model turn, audio
  and text, until the service ends that turn; no ``LLMDone``/``Interrupted`` follows.
* A ``toolCall`` gives a ``ToolCall`` per function call (the model's turn starts there if
  it had said nothing yet, so the user's ``Final`` comes first); the model's answer after
  the responses goes on in the same turn. ``toolCallCancellation`` gives
  ``ToolCallsCancelled`` of the calls still open; a result of a call that is not open (the
  service withdrew it, or it was answered already) is never sent (:meth:`TurnTracker.answerable`).
* When a connection is replaced, a model turn under way ends there with ``LLMDone`` of
  what was said (it is never repeated), and when the user's unanswered audio is sent
  again to the next connection, the transcript of that utterance starts over (no
  ``Final`` was sent for it yet, and none is doubled).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from voicekit.events import (
    AudioOut,
    Final,
    Interim,
    Interrupted,
    LLMDone,
    RealtimeEvent,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    ToolCall,
    ToolCallsCancelled,
    ToolResult,
)
from voicekit.plugins.llm.gemini_live import functions
from voicekit.roles import RealtimeStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from voicekit.plugins.llm.gemini_live.link import LiveLink
    from voicekit.plugins.llm.gemini_live.wire import LiveUpdate

log = logging.getLogger(__name__)

SOURCE = "gemini_live"
#: what a conversation remembers of itself, to seed a fresh live session if resuming fails
Transcript = list[tuple[Literal["user", "assistant"], str]]


class TurnTracker:
    """Turns a stream of :class:`LiveUpdate` into voicekit realtime events (see the module doc)."""

    def __init__(self, transcript: Transcript | None = None, *, text_from: str = "transcription") -> None:
        self.transcript: Transcript = transcript if transcript is not None else []
        self.text_from = text_from  # "transcription" (audio replies) or "parts" (TEXT replies)
        self._user: list[str] = []
        self._user_heard = False
        self._model_active = False
        self._final_sent = False  # the user's Final for the current model turn is out
        self._reply: list[str] = []
        self._cut = False
        self._after_interrupt = False
        self.open_calls: dict[str, str] = {}  # calls the model waits on: id → name

    @property
    def model_active(self) -> bool:
        return self._model_active

    def answerable(self, results: Sequence[ToolResult]) -> list[ToolResult]:
        """The results of calls still open (each closed by it); the rest is dropped: the
        service withdrew those calls, or they were answered already."""
        chosen = []
        for result in results:
            if self.open_calls.pop(result.id, None) is None:
                log.info("result of %s (%s) dropped: the call is no longer open", result.name, result.id)
            else:
                chosen.append(result)
        return chosen

    def cut(self) -> bool:
        """Drop the rest of the model's current turn; False if it was not speaking."""
        if self._model_active and not self._cut:
            self._cut = True
            if not self._final_sent and self._user:
                log.debug("transcript of the utterance whose reply was cut, dropped: %r", self._user_text())
                self._user.clear()
            return True
        return False

    def feed(self, update: LiveUpdate) -> list[RealtimeEvent]:
        events: list[RealtimeEvent] = []
        if update.voice_activity == "start" and not self._user_heard:
            self._user_heard = True
            events.append(SpeechStarted(source=SOURCE))
        elif update.voice_activity == "end":
            events.append(SpeechEnded(source=SOURCE))
        if update.input_text:
            self._user_piece(update.input_text, events)
        if update.model_output:
            self._model_piece(update, events)
        if update.tool_calls:
            self._calls(update, events)
        if update.cancelled_calls:
            withdrawn = tuple(i for i in update.cancelled_calls if self.open_calls.pop(i, None) is not None)
            if withdrawn:
                events.append(ToolCallsCancelled(withdrawn))
        if update.interrupted:
            if self._model_active and not self._cut:
                if not self._final_sent:
                    self._flush_user(events)
                events.append(Interrupted())
            self._end_model_turn()
            self._after_interrupt = True
        if update.turn_complete:
            self._turn_complete(events)
        if update.connection_lost and self._model_active:
            log.warning("the connection broke while the model was answering; its turn ends here")
            if not self._cut:
                if not self._final_sent:
                    self._flush_user(events)
                events.append(LLMDone("".join(self._reply)))
            self._end_model_turn()
        if update.audio_resent and self._user:
            log.debug("the unanswered speech goes to the new connection; its transcript starts over")
            self._user.clear()
        return events

    # --- pieces ---------------------------------------------------------------------

    def _user_piece(self, text: str, events: list[RealtimeEvent]) -> None:
        if self._model_active and not self._cut:
            if self._final_sent:
                log.debug("input transcription after the user's Final, dropped: %r", text)
            else:  # transcribed late: still the utterance the model is answering
                self._user.append(text)
                events.append(Interim(self._user_text()))
            return
        if not self._user_heard:
            self._user_heard = True
            events.append(SpeechStarted(source=SOURCE))
        self._user.append(text)
        events.append(Interim(self._user_text()))

    def _model_piece(self, update: LiveUpdate, events: list[RealtimeEvent]) -> None:
        if not self._model_active:
            self._model_active = True
            self._after_interrupt = False
            self._final_sent = self._flush_user(events)
        if self._cut:
            return
        text = update.output_text if self.text_from == "transcription" else update.model_text
        if text:
            self._reply.append(text)
            events.append(TextDelta(text))
        for pcm, rate in update.audio:
            events.append(AudioOut(pcm, rate))

    def _calls(self, update: LiveUpdate, events: list[RealtimeEvent]) -> None:
        if not self._model_active:
            self._model_active = True
            self._after_interrupt = False
            self._final_sent = self._flush_user(events)
        for call_id, name, args in update.tool_calls:
            call = ToolCall(call_id or functions.new_call_id(), name, functions.call_arguments(args))
            self.open_calls[call.id] = name
            events.append(call)

    def _turn_complete(self, events: list[RealtimeEvent]) -> None:
        if self._model_active:
            if not self._cut:
                if not self._final_sent:
                    self._flush_user(events)
                events.append(LLMDone("".join(self._reply)))
            self._end_model_turn()
        elif self._after_interrupt:
            self._after_interrupt = False  # the turnComplete that closes an interrupted turn
        elif self._user:
            self._flush_user(events)  # the model chose to say nothing
            events.append(LLMDone(""))

    def _flush_user(self, events: list[RealtimeEvent]) -> bool:
        text = self._user_text()
        self._user.clear()
        self._user_heard = False
        if text:
            self.transcript.append(("user", text))
            events.append(Final(text))
        return bool(text)

    def _end_model_turn(self) -> None:
        if self._model_active and self._reply:
            self.transcript.append(("assistant", "".join(self._reply).strip()))
        self._model_active = False
        self._final_sent = False
        self._cut = False
        self._reply.clear()

    def _user_text(self) -> str:
        return " ".join("".join(self._user).split())


class GeminiRealtimeStream(RealtimeStream):
    """A Gemini Live speech-to-speech stream, open for a whole conversation (from ``GeminiLiveLLM.realtime()``).

    The stream sends the user's audio and typed turns over one :class:`LiveLink` (one live
    session, resumed over as many connections as it takes) and turns what the service
    sends into events with a :class:`TurnTracker`. Reconnecting, sending unanswered turns
    again and retrying are the link's; iterating raises only what the retry policy gave
    up on, as one ``BackendError``. Besides the :class:`~voicekit.roles.RealtimeStream`
    methods it has, for ``activity_detection: client``, :meth:`activity_start` /
    :meth:`activity_end` (the caller's VAD marks the user's speech), and :meth:`end_input`
    (no more audio: the service answers what it heard without waiting for more silence).
    """

    def __init__(self, link: LiveLink, transcript: Transcript, *, client_activity: bool = False) -> None:
        self.link = link
        self.client_activity = client_activity
        self.tracker = TurnTracker(transcript)
        self._closed = False

    async def __aenter__(self) -> GeminiRealtimeStream:
        await self.link.ready()
        return self

    def push_audio(self, pcm: bytes) -> None:
        self.link.push_audio(pcm)

    async def send_text(self, text: str) -> None:
        """Typed user input; the model answers it like speech (sent again if a connection change loses it)."""
        if text.strip():
            self.tracker.transcript.append(("user", text.strip()))
            self.link.send("text", text)

    async def send_tool_results(self, results: Sequence[ToolResult]) -> None:
        """Hand the model the results of its open calls (``toolResponse``, by id and name);
        a result of a call the service withdrew (``toolCallCancellation``) is not sent. Sent
        again on a resumed connection if the model had not gone on with it."""
        chosen = self.tracker.answerable(results)
        if chosen:
            types = self.link.types
            responses = [
                types.FunctionResponse(id=r.id, name=r.name, response=functions.response_payload(r)) for r in chosen
            ]
            self.link.send_tool_response(responses)

    async def interrupt(self) -> None:
        """Local barge-in: no more audio or text of the model's current turn comes out.

        The service hears the user's speech itself (or, with client activity
        detection, gets :meth:`activity_start`) and stops generating; the Live API has
        no separate "cancel" message.
        """
        if self.tracker.cut():
            log.debug("realtime turn cut locally")

    async def activity_start(self) -> None:
        """The user started speaking (``activity_detection: client`` only; else ignored)."""
        if self.client_activity:
            self.link.send("activity_start")
        else:
            log.debug("activity_start ignored: the service detects speech itself")

    async def activity_end(self) -> None:
        """The user stopped speaking (``activity_detection: client`` only; else ignored)."""
        if self.client_activity:
            self.link.send("activity_end")
        else:
            log.debug("activity_end ignored: the service detects speech itself")

    async def end_input(self) -> None:
        """No more microphone audio will come (``audioStreamEnd``)."""
        self.link.send("audio_end")

    def __aiter__(self) -> AsyncIterator[RealtimeEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[RealtimeEvent]:
        self.link.start()
        while (update := await self.link.next_update()) is not None:
            for event in self.tracker.feed(update):
                yield event

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.link.aclose()

    @property
    def info(self) -> dict[str, Any]:
        """Connection facts for logs and tests: connections made, resumptions, messages sent again, the handle."""
        link = self.link
        return {
            "connections": link.connections,
            "resumed": link.resumed,
            "replayed": link.replayed,
            "handle": link.handle,
        }
