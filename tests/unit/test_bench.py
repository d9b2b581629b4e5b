"""``voicekit bench`` on the offline profile: real turns, a per-stage report, JSON and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_helpers import voicekit
from voicekit.audio.wav import write_wav
from voicekit.testing.speech import synthesize


def test_bench_offline_writes_per_stage_percentiles(tmp_path: Path) -> None:
    clip = tmp_path / "weather.wav"
    write_wav(clip, synthesize("what is the weather like"), 16000)
    out, png = tmp_path / "out.json", tmp_path / "turns.png"
    result = voicekit(
        "bench",
        "--profile",
        "offline",
        "--input",
        str(clip),
        "--turns",
        "3",
        "--json",
        str(out),
        "--plot",
        str(png),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "end of speech → first audio out" in result.stdout
    report = json.loads(out.read_text())
    assert report["schema_version"] == 1 and report["turns_completed"] == 3
    assert report["backends"] == {"stt": "pocketsphinx", "llm": "echo", "output": "espeak"}
    for stage in ("stt_ms", "llm_ttft_ms", "output_ttfa_ms", "voice_to_voice_ms", "turn_ms", "engine_ms"):
        entry = report["stages"][stage]
        assert entry["count"] == 3 and entry["p50"] is not None and entry["p95"] >= entry["p50"]
    v2v = report["stages"]["voice_to_voice_ms"]
    # voice-to-voice covers the STT's endpointing, so it cannot be shorter than it
    assert v2v["p50"] >= report["stages"]["stt_ms"]["p50"]
    assert len(report["turns"]) == 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_bench_reports_missing_turns_as_failure(tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    write_wav(silence, bytes(16000), 16000)
    profile = tmp_path / "p.yaml"
    profile.write_text("stt: {use: scripted}\nllm: {use: scripted}\noutput: {use: silent}\n")
    result = voicekit(
        "bench",
        "--profile",
        str(profile),
        "--input",
        str(silence),
        "--turns",
        "1",
        "--set",
        "turns.end_of_speech_ms=100",
        timeout=120,
        env={"VOICEKIT_BENCH_TURN_TIMEOUT": "2"},
    )
    assert result.returncode == 1
    assert "only 0 of 1 turns completed" in result.stdout
