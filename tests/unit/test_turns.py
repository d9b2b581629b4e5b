"""Turn-taking rule by rule, with scripted times and no backend at all."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from voicekit.engine.turns import BotTurn, SentenceProgress, TurnTaking
from voicekit.events import BargeIn, Event, SpeechEnded, SpeechStarted, TurnMetrics, UserTurn
from voicekit.events import BotTurn as BotTurnEvent
from voicekit.roles import Message


@dataclass
class Actions:
    """What turn-taking asked for, in order."""

    responded: list[BotTurn] = field(default_factory=list)
    stopped: list[tuple[int, bool]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def respond(self, turn: BotTurn) -> None:
        self.responded.append(turn)

    def stop_bot(self, turn: BotTurn, *, tell_backend: bool) -> None:
        self.stopped.append((turn.index, tell_backend))

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def make(**kw: object) -> tuple[TurnTaking, Actions]:
    actions = Actions()
    return TurnTaking(actions, backends=lambda: [("llm", "scripted")], **kw), actions  # type: ignore[arg-type]


def speak(turns: TurnTaking, turn: BotTurn, *sentences: str, t: float = 10.0) -> None:
    """The reply's audio reached the listener, sentence by sentence."""
    for text in sentences:
        turn.sentences.append(SentenceProgress(text, bytes_queued=100, bytes_played=100, played=True))
    turns.bot_audio_started(turn, t)


def test_a_final_starts_a_reply_with_the_history_so_far() -> None:
    turns, actions = make()
    turns.user_said("hello", 1.0)
    assert [t.user_text for t in actions.responded] == ["hello"]
    assert turns.history == [Message("user", "hello")]
    assert [e.text for e in actions.of(UserTurn)] == ["hello"]  # type: ignore[attr-defined]
    assert not turns.idle


def test_a_spoken_reply_goes_into_the_history_with_metrics_naming_the_backends() -> None:
    turns, actions = make()
    turns.user_said("hello", 1.0)
    turn = actions.responded[0]
    speak(turns, turn, "Hi there.")
    turns.bot_done(turn)
    assert turns.history == [Message("user", "hello"), Message("assistant", "Hi there.")]
    metrics = actions.of(TurnMetrics)
    assert len(metrics) == 1 and metrics[0].backends == (("llm", "scripted"),)  # type: ignore[attr-defined]
    assert turns.idle and turns.mic_open


def test_words_added_before_the_bot_spoke_are_answered_together() -> None:
    turns, actions = make()
    turns.user_said("book a table", 1.0)
    first = actions.responded[0]
    turns.user_said("for two", 1.5)
    assert first.cancelled and actions.stopped == [(first.index, False)]
    assert [t.user_text for t in actions.responded] == ["book a table", "book a table for two"]
    assert turns.history == [Message("user", "book a table for two")]


def test_half_duplex_mutes_the_mic_while_the_bot_speaks_and_queues_what_comes() -> None:
    turns, actions = make(mode="half_duplex")
    turns.user_said("one", 1.0)
    turn = actions.responded[0]
    speak(turns, turn, "Reply one.")
    assert not turns.mic_open
    turns.user_said("two", 2.0)  # heard anyway (a service's late final): waits for the bot
    turns.speech_edge(SpeechStarted(source="vad", t=2.1))
    assert len(actions.responded) == 1 and not actions.of(BargeIn)
    turns.bot_done(turn)
    assert turns.mic_open
    assert [t.user_text for t in actions.responded] == ["one", "two"]


def test_full_duplex_speech_over_the_bot_barges_in_and_keeps_what_was_heard() -> None:
    turns, actions = make(mode="full_duplex")
    turns.user_said("tell me a story", 1.0)
    turn = actions.responded[0]
    turn.sentences = [
        SentenceProgress("Once upon a time.", bytes_queued=100, bytes_played=100, played=True),
        SentenceProgress("There was a very old king indeed.", bytes_queued=100, bytes_played=50),
    ]
    turns.bot_audio_started(turn, 2.0)
    assert turns.mic_open, "full duplex never mutes the microphone"
    turns.speech_edge(SpeechStarted(source="vad", t=3.0))
    assert [e.turn for e in actions.of(BargeIn)] == [turn.index]  # type: ignore[attr-defined]
    assert actions.stopped == [(turn.index, True)]
    assert turns.history[-1] == Message("assistant", "Once upon a time. There was a…", interrupted=True)
    ended = actions.of(BotTurnEvent)
    assert ended and ended[-1].interrupted  # type: ignore[attr-defined]


def test_speech_before_the_bot_spoke_is_not_a_barge_in() -> None:
    turns, actions = make(mode="full_duplex")
    turns.user_said("hello", 1.0)
    turns.speech_edge(SpeechStarted(source="vad", t=1.2))
    turns.interim("and", 1.3)
    assert not actions.of(BargeIn) and actions.stopped == []


def test_an_empty_interim_does_not_barge_in_but_words_do() -> None:
    turns, actions = make(mode="full_duplex")
    turns.user_said("hello", 1.0)
    speak(turns, actions.responded[0], "Hi.")
    turns.interim("  ", 2.0)
    assert not actions.of(BargeIn)
    turns.interim("wait", 2.1)
    assert len(actions.of(BargeIn)) == 1


def test_fast_mode_answers_each_utterance_in_turn_and_never_interrupts() -> None:
    turns, actions = make(mode="full_duplex", fast=True)
    turns.user_said("one", 1.0)
    turns.user_said("two", 1.1)  # read ahead of real time: waits, even before the bot spoke
    speak(turns, actions.responded[0], "Reply.")
    turns.speech_edge(SpeechStarted(source="vad", t=1.2))
    assert not actions.of(BargeIn)
    turns.user_said("three", 1.3)
    turns.bot_done(actions.responded[0])
    assert [t.user_text for t in actions.responded] == ["one", "two"]
    turns.bot_done(actions.responded[1])
    assert [t.user_text for t in actions.responded] == ["one", "two", "three"]


def test_queued_utterances_are_answered_together_in_real_time() -> None:
    turns, actions = make(mode="half_duplex")
    turns.user_said("one", 1.0)
    speak(turns, actions.responded[0], "Reply.")
    turns.user_said("two", 2.0)
    turns.user_said("three", 2.5)
    turns.bot_done(actions.responded[0])
    assert [t.user_text for t in actions.responded] == ["one", "two three"]


def test_the_vad_times_the_end_of_speech_not_the_services_endpoint() -> None:
    turns, actions = make(has_vad=True)
    turns.speech_edge(SpeechStarted(source="vad", t=1.0))
    turns.speech_edge(SpeechEnded(source="vad", t=2.0))
    turns.speech_edge(SpeechEnded(source="stt", t=2.6))  # the service's endpoint, later
    turns.user_said("hello", 2.8)
    turn = actions.responded[0]
    assert turn.clock.speech_end == 2.0
    speak(turns, turn, "Hi.", t=3.5)
    turns.bot_done(turn)
    metrics = actions.of(TurnMetrics)[0]
    assert metrics.stt_ms == pytest.approx(800.0)  # type: ignore[attr-defined]
    assert metrics.voice_to_voice_ms == pytest.approx(1500.0)  # type: ignore[attr-defined]


def test_without_a_vad_the_services_edges_time_the_turn() -> None:
    turns, actions = make(has_vad=False)
    turns.speech_edge(SpeechStarted(source="stt", t=1.0))
    turns.speech_edge(SpeechEnded(source="stt", t=2.5))
    turns.user_said("hello", 2.6)
    assert actions.responded[0].clock.speech_end == 2.5


def test_an_utterance_still_open_has_no_end_of_speech() -> None:
    turns, actions = make(has_vad=True)
    turns.speech_edge(SpeechEnded(source="vad", t=1.0))
    turns.speech_edge(SpeechStarted(source="vad", t=1.5))
    turns.user_said("hello", 1.6)  # a final while the user still talks
    turn = actions.responded[0]
    assert turn.clock.speech_end is None
    turns.speech_edge(SpeechEnded(source="vad", t=1.55))  # the VAD's hangover ends after the final
    assert turn.clock.speech_end == 1.55


def test_realtime_model_answers_by_itself_and_transcripts_attach_to_its_turn() -> None:
    turns, actions = make(mode="full_duplex", realtime=True)
    turn = turns.realtime_reply(1.0)  # the model speaks before its transcript of the user arrives
    turns.realtime_user_said("what time is it", 1.1)
    assert turn.user_text == "what time is it" and turns.history == [Message("user", "what time is it")]
    turn.text = "It is noon."
    turns.speech_edge(SpeechStarted(source="vad", t=1.5))  # text, no audio yet: a realtime model is cut
    assert len(actions.of(BargeIn)) == 1 and actions.stopped == [(turn.index, True)]


def test_realtime_model_interrupting_itself_does_not_interrupt_it_again() -> None:
    turns, actions = make(mode="full_duplex", realtime=True)
    turns.realtime_user_said("hi", 1.0)
    turn = turns.realtime_reply(1.1)
    speak(turns, turn, "Hello.")
    turns.realtime_interrupted(2.0)
    assert actions.stopped == [(turn.index, False)] and turns.history[-1].interrupted


def test_cut_keeps_what_was_heard_without_a_barge_in_event() -> None:
    turns, actions = make()
    turns.user_said("hi", 1.0)
    turn = actions.responded[0]
    speak(turns, turn, "Hello.")
    turns.cut(turn)
    assert not actions.of(BargeIn)
    assert turns.history[-1] == Message("assistant", "Hello.", interrupted=True)
