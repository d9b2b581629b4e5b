"""What a recording's transcript.jsonl keeps: the turn-taking decisions and resumed sentences too."""

from __future__ import annotations

import json
from pathlib import Path

from voicekit.events import BotResumed, Final, SpeechStarted, TurnDecision, UserTurn
from voicekit.recording import ConversationRecorder


def test_turn_decisions_and_resumed_sentences_are_kept(tmp_path: Path) -> None:
    recorder = ConversationRecorder(tmp_path, audio=False)
    recorder(SpeechStarted())  # not a transcript event: left out
    recorder(Final("book a table"))
    recorder(TurnDecision(1, "smart_turn", probability=0.93, compute_ms=12.5))
    recorder(UserTurn(1, "book a table"))
    recorder(BotResumed(1, "for two people."))
    recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert [line["type"] for line in lines] == ["Final", "TurnDecision", "UserTurn", "BotResumed"]
    assert (lines[1]["detector"], lines[1]["probability"]) == ("smart_turn", 0.93)
    assert lines[3]["text"] == "for two people."
