"""``voicekit bench`` reports, per turn, who ended the user's turn, how sure it was, and preemptive hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.smart_turn_model import smart_turn_model
from voicekit.audio.wav import write_wav
from voicekit.bench import BenchRequest, run_bench
from voicekit.testing.speech import synthesize


@pytest.mark.slow
async def test_bench_turns_carry_the_detectors_decision_and_preemptive_hits(tmp_path: Path) -> None:
    clip = tmp_path / "table.wav"
    write_wav(clip, synthesize("please book a table for two"), 16000)
    profile = tmp_path / "turns.yaml"
    profile.write_text(
        "stt: {use: scripted, transcripts: [please book a table for two]}\n"
        "llm: {use: scripted}\noutput: {use: scripted}\n"
        f"turns: {{preemptive: true, detector: {{use: smart_turn, model_path: '{smart_turn_model()}'}}}}\n"
    )
    report = await run_bench(BenchRequest([str(profile)], [clip], turns=2, turn_timeout_s=20))
    (run,) = report.runs
    assert run.turns_completed == 2
    for turn in run.turns:
        assert turn["detector"] in ("smart_turn", "max_wait")
        assert turn["preemptive"] == "hit" and turn["preemptive_saved_ms"] > 0
        assert turn["end_of_turn_ms"] is not None and turn["end_of_turn_ms"] >= 0
    judged = [t for t in run.turns if t["detector"] == "smart_turn"]
    assert judged and all(isinstance(t["detector_probability"], float) and t["detector_ms"] > 0 for t in judged)
    assert run.stages["end_of_turn_ms"]["count"] == 2
