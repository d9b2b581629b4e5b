"""Turn-taking rule by rule, with scripted times and no backend at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from voicekit.engine.end_of_turn import PauseTimings, TurnPolicy, TurnVerdict
from voicekit.engine.turns import BotTurn, SentenceProgress, TurnTaking
from voicekit.events import (
    BargeIn,
    BotResumed,
    BotSentence,
    Event,
    SpeechEnded,
    SpeechStarted,
    TextDelta,
    TurnDecision,
    TurnMetrics,
    UserTurn,
)
from voicekit.events import BotTurn as BotTurnEvent
from voicekit.roles import Message


@dataclass
class ScriptedTimer:
    t: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Actions:
    """What turn-taking asked for, in order; its timers run on scripted time (:meth:`advance`)."""

    responded: list[BotTurn] = field(default_factory=list)
    stopped: list[tuple[int, bool]] = field(default_factory=list)
    discarded: list[BotTurn] = field(default_factory=list)
    resumed: list[tuple[int, str]] = field(default_factory=list)
    judging: list[tuple[int, float | None, str]] = field(default_factory=list)
    timers: list[ScriptedTimer] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def respond(self, turn: BotTurn) -> None:
        self.responded.append(turn)

    def stop_bot(self, turn: BotTurn, *, tell_backend: bool) -> None:
        self.stopped.append((turn.index, tell_backend))

    def discard(self, turn: BotTurn) -> None:
        self.discarded.append(turn)

    def resume(self, turn: BotTurn, text: str) -> None:
        self.resumed.append((turn.index, text))

    def judge(self, pause: int, since: float | None, transcript: str) -> None:
        self.judging.append((pause, since, transcript))

    def call_at(self, t: float, callback: Callable[[], None]) -> ScriptedTimer:
        timer = ScriptedTimer(t, callback)
        self.timers.append(timer)
        return timer

    def advance(self, until: float) -> None:
        """Run every timer due by ``until``, in time order."""
        while due := sorted((x for x in self.timers if not x.cancelled and x.t <= until), key=lambda x: x.t):
            due[0].cancelled = True
            due[0].callback()

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def make(**kw: object) -> tuple[TurnTaking, Actions]:
    actions = Actions()
    return TurnTaking(actions, backends=lambda: [("llm", "scripted")], **kw), actions  # type: ignore[arg-type]


def judged_policy(**kw: object) -> TurnPolicy:
    return TurnPolicy(detector="smart_turn", judges_pauses=True, timings=PauseTimings(0.2, 1.5, 3.0), **kw)  # type: ignore[arg-type]


def vad(turns: TurnTaking, start: float, end: float) -> None:
    turns.speech_edge(SpeechStarted(source="vad", t=start))
    turns.speech_edge(SpeechEnded(source="vad", t=end))


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


# --- the end of the user's turn ------------------------------------------------------------


def test_silence_ends_the_turn_at_the_final_and_says_so() -> None:
    turns, actions = make(has_vad=True)
    vad(turns, 1.0, 2.0)
    turns.user_said("hello", 2.15)
    assert [t.user_text for t in actions.responded] == ["hello"]
    assert not actions.judging
    (decision,) = actions.of(TurnDecision)
    assert decision.detector == "silence" and decision.turn == 1  # type: ignore[attr-defined]
    assert actions.responded[0].clock.committed == 2.15


def test_a_complete_verdict_ends_the_turn_after_the_short_wait() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy())
    vad(turns, 1.0, 2.0)
    turns.user_said("what is the weather like today", 2.15)
    assert actions.judging == [(1, 1.0, "what is the weather like today")] and not actions.responded
    turns.judged(1, TurnVerdict(True, 0.93, 40.0), 2.1)
    assert not actions.responded, "the turn ends 200 ms after the speech, not before"
    actions.advance(2.2)
    assert [t.user_text for t in actions.responded] == ["what is the weather like today"]
    turn = actions.responded[0]
    speak(turns, turn, "Sunny.", t=2.9)
    turns.bot_done(turn)
    metrics = actions.of(TurnMetrics)[0]
    assert metrics.detector == "smart_turn" and metrics.detector_probability == 0.93  # type: ignore[attr-defined]
    assert metrics.detector_ms == 40.0 and metrics.end_of_turn_ms == pytest.approx(200.0)  # type: ignore[attr-defined]


def test_an_incomplete_verdict_waits_long_and_more_speech_keeps_the_turn_open() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy())
    vad(turns, 1.0, 2.0)
    turns.user_said("i would like to order", 2.15)
    turns.judged(1, TurnVerdict(False, 0.2), 2.1)
    actions.advance(3.4)
    assert not actions.responded, "an incomplete turn waits 1.5 s of silence"
    vad(turns, 2.35, 3.5)  # the user goes on
    turns.user_said("a large pizza please", 3.65)
    actions.advance(6.0)  # the verdict of the first pause is gone: the second one is awaited
    assert not actions.responded and actions.judging[-1][0] == 2
    turns.judged(1, TurnVerdict(True), 3.7)  # a stale verdict changes nothing
    assert not actions.responded
    turns.judged(2, TurnVerdict(True, 0.9), 3.6)
    actions.advance(3.7)
    assert [t.user_text for t in actions.responded] == ["i would like to order a large pizza please"]


def test_a_transcript_ending_on_a_function_word_waits_longer_whatever_the_audio_says() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy(language="en"))
    vad(turns, 1.0, 2.0)
    turns.user_said("remind me to call my mother and", 2.1)
    turns.judged(1, TurnVerdict(True, 0.95), 2.15)
    actions.advance(3.49)
    assert not actions.responded
    actions.advance(3.5)
    assert len(actions.responded) == 1  # complete audio + open transcript: the incomplete wait
    turns2, actions2 = make(has_vad=True, policy=judged_policy(language="ru"))
    vad(turns2, 1.0, 2.0)
    turns2.user_said("я не пришёл потому что", 2.1)
    turns2.judged(1, TurnVerdict(False, 0.1), 2.15)
    actions2.advance(4.99)
    assert not actions2.responded
    actions2.advance(5.0)  # incomplete audio + open transcript: the hard cap
    assert len(actions2.responded) == 1


def test_without_transcript_rules_only_the_verdict_counts() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy(transcript_rules=False))
    vad(turns, 1.0, 2.0)
    turns.user_said("go to the", 2.1)
    turns.judged(1, TurnVerdict(True), 2.15)
    actions.advance(2.2)
    assert len(actions.responded) == 1


def test_a_verdict_that_never_comes_ends_the_turn_at_the_hard_cap() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy())
    vad(turns, 1.0, 2.0)
    turns.user_said("hello", 2.1)
    actions.advance(4.99)
    assert not actions.responded
    actions.advance(5.0)
    assert len(actions.responded) == 1 and actions.of(TurnDecision)[0].detector == "max_wait"  # type: ignore[attr-defined]


def test_the_services_end_of_turn_answers_at_once_whatever_the_detector() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy())
    vad(turns, 1.0, 2.0)
    turns.user_said("book a table", 2.4)
    assert not actions.responded
    turns.stt_end_of_turn(2.4)
    assert [t.user_text for t in actions.responded] == ["book a table"]
    assert actions.of(TurnDecision)[0].detector == "stt"  # type: ignore[attr-defined]


def test_typed_text_is_a_turn_at_once() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy())
    turns.typed(1.0)
    turns.user_said("hi", 1.0)
    assert len(actions.responded) == 1


def test_the_end_of_input_ends_the_open_turn() -> None:
    turns, actions = make(has_vad=True, policy=judged_policy())
    vad(turns, 1.0, 2.0)
    turns.user_said("hello", 2.1)
    turns.input_ended(2.2)
    assert len(actions.responded) == 1


# --- preemptive replies ---------------------------------------------------------------------------


def test_a_preemptive_reply_starts_at_the_pause_and_plays_when_the_final_matches() -> None:
    turns, actions = make(has_vad=True, policy=TurnPolicy(preemptive=True))
    turns.speech_edge(SpeechStarted(source="vad", t=1.0))
    turns.interim("book a table for two", 1.8)
    turns.speech_edge(SpeechEnded(source="vad", t=2.0))
    (held,) = actions.responded
    assert held.tentative and held.user_text == "book a table for two" and held.history == []
    assert turns.history == [] and not actions.of(UserTurn), "nothing is committed before the final"
    held.held += [TextDelta("Sure. "), BotSentence("Sure.", held.index)]  # what the reply wrote meanwhile
    turns.user_said("Book a table for two.", 2.15)
    assert actions.responded == [held] and not held.tentative and turns.current is held
    assert turns.history == [Message("user", "Book a table for two.")]
    kinds = [type(e).__name__ for e in actions.events]
    assert kinds == ["UserTurn", "TurnDecision", "TextDelta", "BotSentence"]
    speak(turns, held, "Sure.", t=2.5)
    turns.bot_done(held)
    metrics = actions.of(TurnMetrics)[0]
    assert metrics.preemptive == "hit" and metrics.preemptive_saved_ms == pytest.approx(150.0)  # type: ignore[attr-defined]
    assert metrics.voice_to_voice_ms == pytest.approx(500.0)  # type: ignore[attr-defined]


def test_a_preemptive_reply_on_other_words_is_thrown_away_and_the_final_answered() -> None:
    turns, actions = make(has_vad=True, policy=TurnPolicy(preemptive=True))
    turns.speech_edge(SpeechStarted(source="vad", t=1.0))
    turns.interim("book a table", 1.8)
    turns.speech_edge(SpeechEnded(source="vad", t=2.0))
    held = actions.responded[0]
    held.held += [TextDelta("Sure"), TextDelta(". "), BotSentence("Sure.", held.index)]
    turns.user_said("book a table for two", 2.15)
    assert actions.discarded == [held] and held.cancelled
    assert [t.user_text for t in actions.responded] == ["book a table", "book a table for two"]
    assert not actions.of(TextDelta), "the thrown-away reply's events never reach observers"
    fresh = actions.responded[1]
    assert not fresh.tentative and turns.history == [Message("user", "book a table for two")]
    speak(turns, fresh, "Sure.", t=2.9)
    turns.bot_done(fresh)
    metrics = actions.of(TurnMetrics)[0]
    assert metrics.preemptive == "miss" and metrics.preemptive_discarded == 1  # type: ignore[attr-defined]
    assert metrics.preemptive_discarded_tokens == 2  # type: ignore[attr-defined]


def test_speech_that_resumes_throws_the_preemptive_reply_away() -> None:
    turns, actions = make(has_vad=True, policy=TurnPolicy(preemptive=True))
    turns.speech_edge(SpeechStarted(source="vad", t=1.0))
    turns.interim("i would like to order", 1.5)
    turns.speech_edge(SpeechEnded(source="vad", t=1.7))
    held = actions.responded[0]
    turns.speech_edge(SpeechStarted(source="vad", t=2.05))
    assert actions.discarded == [held] and turns.history == []


def test_the_stts_eager_end_of_turn_starts_a_reply_and_turn_resumed_drops_it() -> None:
    turns, actions = make(policy=TurnPolicy(preemptive=True))
    turns.stt_eager_end_of_turn("i would like to order", 1.9)
    held = actions.responded[0]
    assert held.tentative
    turns.stt_turn_resumed(2.05)
    assert actions.discarded == [held]
    turns.stt_eager_end_of_turn("i would like to order a large pizza please", 3.2)
    turns.user_said("I would like to order a large pizza, please.", 3.4)
    turns.stt_end_of_turn(3.4)
    assert len(actions.responded) == 2 and turns.current is actions.responded[1]
    assert turns.history == [Message("user", "I would like to order a large pizza, please.")]


def test_no_preemptive_reply_while_the_bot_answers() -> None:
    turns, actions = make(has_vad=True, mode="full_duplex", policy=TurnPolicy(preemptive=True))
    turns.user_said("hello", 1.0)
    turns.speech_edge(SpeechStarted(source="vad", t=1.2))
    turns.interim("and", 1.3)
    turns.speech_edge(SpeechEnded(source="vad", t=1.5))
    assert len(actions.responded) == 1


# --- interruptions --------------------------------------------------------------------------


def bot_speaking(**kw: object) -> tuple[TurnTaking, Actions, BotTurn]:
    turns, actions = make(mode="full_duplex", has_vad=True, **kw)
    turns.user_said("tell me a story", 1.0)
    turn = actions.responded[0]
    turn.sentences = [
        SentenceProgress("Once upon a time.", bytes_queued=100, bytes_played=100, played=True),
        SentenceProgress("There was a very old king indeed.", bytes_queued=100, bytes_played=50),
    ]
    turns.bot_audio_started(turn, 2.0)
    return turns, actions, turn


def test_a_backchannel_does_not_stop_the_bot_but_words_after_it_do() -> None:
    turns, actions, turn = bot_speaking(policy=TurnPolicy(backchannels=("uh-huh", "yeah", "mm")))
    turns.interim("uh-huh", 3.0)
    turns.user_said("Uh-huh.", 3.2)
    assert not actions.of(BargeIn) and turn.active and len(actions.responded) == 1
    turns.interim("yeah but wait", 4.0)
    assert len(actions.of(BargeIn)) == 1 and not turn.active


def test_speech_over_the_bot_waits_for_words_when_the_stt_gives_them() -> None:
    policy = TurnPolicy(backchannels=("uh-huh",), words_needed=True, wordless_interruption_s=1.0)
    turns, actions, turn = bot_speaking(policy=policy)
    turns.speech_edge(SpeechStarted(source="vad", t=3.0))
    assert not actions.of(BargeIn), "a VAD onset alone does not stop the bot: it may be a backchannel"
    turns.speech_edge(SpeechEnded(source="vad", t=3.4))
    actions.advance(5.0)
    assert not actions.of(BargeIn) and turn.active
    turns.speech_edge(SpeechStarted(source="vad", t=6.0))
    actions.advance(7.0)  # a second of speech and still no words: it interrupts anyway
    assert len(actions.of(BargeIn)) == 1


def test_a_false_interruption_resumes_the_cut_sentence() -> None:
    turns, actions, turn = bot_speaking(policy=TurnPolicy(false_interruption_s=1.0))
    turns.speech_edge(SpeechStarted(source="vad", t=3.0))  # a cough, long enough for the VAD
    assert actions.stopped == [(turn.index, True)] and turns.paused is turn and not turn.finished
    turns.speech_edge(SpeechEnded(source="vad", t=3.3))
    actions.advance(4.0)
    assert actions.resumed == [(turn.index, "very old king indeed.")]
    assert [e.text for e in actions.of(BotResumed)] == ["very old king indeed."]  # type: ignore[attr-defined]
    assert not turn.cancelled and turn.generation == 1
    turn.sentences.append(SentenceProgress("very old king indeed.", 10, 10, True, True))
    turns.bot_done(turn)
    assert turns.history[-1] == Message("assistant", "Once upon a time. There was a very old king indeed.")
    assert actions.of(BotTurnEvent)[-1].resumed == 1  # type: ignore[attr-defined]


def test_words_after_the_stop_make_it_a_real_interruption() -> None:
    turns, actions, turn = bot_speaking(policy=TurnPolicy(false_interruption_s=1.0))
    turns.speech_edge(SpeechStarted(source="vad", t=3.0))
    turns.interim("stop please", 3.4)
    assert turn.finished and turns.history[-1].interrupted
    turns.speech_edge(SpeechEnded(source="vad", t=3.6))
    turns.user_said("stop please", 3.7)
    actions.advance(10.0)
    assert not actions.resumed and [t.user_text for t in actions.responded] == ["tell me a story", "stop please"]


def test_an_avatar_says_the_cut_sentence_again_in_full() -> None:
    turns, actions, turn = bot_speaking(policy=TurnPolicy(false_interruption_s=0.5), remote_output=True)
    turns.speech_edge(SpeechStarted(source="vad", t=3.0))
    turns.speech_edge(SpeechEnded(source="vad", t=3.2))
    actions.advance(3.5)
    assert actions.resumed == [(turn.index, "There was a very old king indeed.")]


def test_a_pause_after_the_eager_end_of_turn_keeps_the_reply_started_on_it() -> None:
    turns, actions = make(has_vad=True, policy=TurnPolicy(preemptive=True))
    turns.speech_edge(SpeechStarted(source="vad", t=1.0))
    turns.interim("book a", 1.5)  # the last update before the end lacks a word
    turns.stt_eager_end_of_turn("book a table", 2.2)
    turns.speech_edge(SpeechEnded(source="vad", t=2.0))  # the VAD's pause, reported after its hangover
    assert len(actions.responded) == 1 and not actions.discarded
    turns.user_said("Book a table.", 2.4)
    turns.stt_end_of_turn(2.4)
    assert turns.current is actions.responded[0]


@pytest.mark.parametrize(
    ("text", "language", "open_"),
    [
        ("i want to go to the", "en", True),
        ("remind me to call my mother and", "en", True),
        ("it was late because", None, True),
        ("what is the weather like today", "en", False),
        ("is it the?", "en", False),  # a question mark closes it
        ("я опоздал, потому что", "ru", True),
        ("положи это на", "ru", True),
        ("я думаю что", "ru", True),
        ("спасибо большое", "ru", False),
        ("", "en", False),
    ],
)
def test_transcript_endings_that_cannot_end_a_sentence(text: str, language: str | None, open_: bool) -> None:
    from voicekit.engine.end_of_turn import ends_open

    assert ends_open(text, language) is open_


def test_backchannels_and_normalised_transcripts() -> None:
    from voicekit.engine.end_of_turn import normalised, only_backchannels

    assert only_backchannels("Uh-huh.", ("uh-huh", "yeah")) and only_backchannels("yeah, yeah", ("uh-huh", "yeah"))
    assert not only_backchannels("yeah but", ("uh-huh", "yeah")) and only_backchannels("Угу", ("угу",))
    assert normalised("Book a table, please!") == normalised("book a  table please") == "book a table please"
