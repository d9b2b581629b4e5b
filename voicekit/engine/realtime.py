"""The conversation engine's side of speech-to-speech models (Gemini Live and the like).

A realtime model hears the microphone itself and answers with its own audio, so there
is no STT or voice stage: its transcripts of both sides and its audio are turned into
the same turns, history and metrics as any other profile's. These functions work
on a :class:`voicekit.engine.conversation.Conversation` and share its state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from voicekit.clock import now
from voicekit.engine.metrics import TurnClock
from voicekit.engine.turns import AUDIO, STOP, TURN_END, BotTurn
from voicekit.events import (
    AudioOut,
    BargeIn,
    Final,
    Interim,
    Interrupted,
    LLMDone,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    UserTurn,
)
from voicekit.roles import Message

if TYPE_CHECKING:
    from voicekit.engine.conversation import Conversation


async def read_events(conv: Conversation) -> None:
    """Turn the session's events into transcripts, turns and bot audio until it ends."""
    assert conv._session is not None
    async for event in conv._session:
        turn = conv._turn
        if isinstance(event, (SpeechStarted, SpeechEnded)):
            conv._on_speech_edge(event)
        elif isinstance(event, Interim):
            conv._emit(event)
        elif isinstance(event, Final):
            conv._emit(event)
            if event.text.strip():
                user_said(conv, event.text.strip(), event.t)
        elif isinstance(event, TextDelta):
            turn = turn or _turn_without_transcript(conv, event.t)
            turn.clock.mark("first_token", event.t)
            turn.text += event.text
            conv._emit(event)
        elif isinstance(event, AudioOut):
            turn = turn or _turn_without_transcript(conv, event.t)
            turn.clock.mark("first_token", event.t)
            turn.clock.mark("first_output", event.t)
            conv._playback.put_nowait((AUDIO, turn, event))
        elif isinstance(event, Interrupted):
            if turn is not None and not turn.finished:
                conv._emit(BargeIn(turn.index, t=event.t))
                conv._cancel_turn(turn, spoken=True)
        elif isinstance(event, LLMDone):
            conv._emit(event)
            if turn is not None and not turn.finished:
                if event.text and not turn.text:
                    turn.text = event.text
                conv._playback.put_nowait((TURN_END, turn, None))


def user_said(conv: Conversation, text: str, t: float) -> None:
    """The model's transcript of what the user said (or typed text): a turn of its own."""
    turn = conv._turn
    if turn is not None and not turn.finished and not turn.user_text:
        turn.user_text = text  # the model began its answer before this transcript arrived
        conv.history.append(Message("user", text))
        conv._emit(UserTurn(text, turn.index, t=t))
        return
    if turn is not None and not turn.finished:
        conv._finish_turn(turn, interrupted=turn.cancelled or not turn.audio_started)
    conv._start_turn(text, t)


def _turn_without_transcript(conv: Conversation, t: float) -> BotTurn:
    """The model started answering before its transcript of the user arrived."""
    conv._turn_count += 1
    clock = TurnClock(conv._turn_count, speech_end=conv._speech_end_of_this_utterance(), final=t)
    turn = BotTurn(conv._turn_count, "", clock)
    conv._turn = turn
    conv._idle.clear()
    return turn


async def drain(conv: Conversation) -> None:
    """After the input ends, give the model time to answer what it last heard: wait
    until it has been quiet for a second after answering (five if the user's last
    words are still unanswered), at most ``drain_timeout_s``."""
    deadline = now() + conv.drain_timeout_s
    quiet_since, seen = now(), conv._turn_count
    while now() < deadline:
        if conv._turn_count != seen or not conv._idle.is_set():
            quiet_since, seen = now(), conv._turn_count
        spoke, answered = conv._last_speech_end, conv._last_turn_end
        unanswered = spoke is not None and (answered is None or answered < spoke)
        if now() - quiet_since > (5.0 if unanswered else 1.0):
            break
        await asyncio.sleep(0.05)
    conv._playback.put_nowait((STOP, None, None))
    assert conv._session is not None
    await conv._session.aclose()
