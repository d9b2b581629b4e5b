"""``voicekit bench``: a turn is an utterance, several profiles hear the same turns, reports compare,
the plot is checked before the run; on the offline profile, in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.cli_helpers import ROOT, voicekit
from voicekit.audio.wav import write_wav
from voicekit.bench import split_utterances
from voicekit.bench_plot import plot
from voicekit.engine.metrics import STAGES
from voicekit.testing.speech import synthesize

HELLO = ROOT / "examples" / "audio" / "hello.wav"  # two questions with a pause between them


def test_a_file_of_two_questions_is_two_utterances(tmp_path: Path) -> None:
    found = split_utterances([HELLO])
    assert [(u.start_s, u.end_s) for u in found] == [(0.3, 1.46), (6.32, 7.74)]
    assert all(u.source == str(HELLO) for u in found)
    one = tmp_path / "one.wav"
    write_wav(one, synthesize("what is the weather like", pad_ms=500), 16000)
    assert len(split_utterances([one, HELLO])) == 3


def test_bench_counts_utterances_and_writes_the_schema(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = voicekit("bench", "--profile", "offline", "--input", str(HELLO), "--json", str(out), timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "offline: 2/2 turns" in done.stdout and "end of speech → first audio out" in done.stdout
    report = json.loads(out.read_text())
    assert (report["schema_version"], report["kind"], report["turns_requested"]) == (2, "bench", 2)
    assert report["inputs"] == [{"path": str(HELLO), "utterances": [[0.3, 1.46], [6.32, 7.74]]}]
    [run] = report["runs"]
    assert (run["profile"], run["turns_completed"], run["status"]) == ("offline", 2, "ended")
    assert run["backends"] == {"stt": "pocketsphinx", "llm": "echo", "output": "espeak"}
    assert list(run["stages"]) == list(STAGES) and len(run["turns"]) == 2
    for stage in STAGES:
        entry = run["stages"][stage]
        values = [t[stage] for t in run["turns"] if t[stage] is not None]
        assert entry["count"] == len(values)
        if stage == "tool_ms":  # the offline profile has no tools: the stage did not happen
            assert values == [] and entry["p50"] is None
        else:
            assert len(values) == 2 and entry["p50"] == round(float(np.percentile(values, 50)), 2)
    assert run["stages"]["voice_to_voice_ms"]["p50"] >= run["stages"]["stt_ms"]["p50"]
    assert all(turn["t"] > 0 for turn in run["turns"]) and run["turns"][0]["backends"]["llm"] == "echo"


def test_two_profiles_hear_the_same_turns_and_compare(tmp_path: Path) -> None:
    batch = tmp_path / "batch.yaml"
    batch.write_text("extends: offline\nstt: {use: pocketsphinx, final_pass: batch}\n")
    out, png = tmp_path / "both.json", tmp_path / "both.png"
    done = voicekit(
        "bench", "-p", "offline", "-p", str(batch), "-i", str(HELLO), "--turns", "3",
        "--json", str(out), "--plot", str(png), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert [run["profile"] for run in report["runs"]] == ["offline", str(batch)]
    assert [run["turns_completed"] for run in report["runs"]] == [3, 3]  # 3 turns: not 4, not 6
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    single = tmp_path / "single.json"
    single.write_text(json.dumps({**report, "runs": report["runs"][:1]}))
    compared = voicekit("bench", "compare", str(single), str(out))
    assert compared.returncode == 0, compared.stderr
    row = next(line for line in compared.stdout.splitlines() if "end of speech → STT final" in line)
    first = report["runs"][0]["stages"]["stt_ms"]
    assert f"{first['p50']:.1f} / {first['p95']:.1f}" in row and "+0.0 (+0%)" in row  # the same run, twice
    assert "%)" in row.split("+0.0 (+0%)")[1]  # the batch profile's change from the first


def test_compare_refuses_what_is_not_a_report(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"turns": []}')
    done = voicekit("bench", "compare", str(junk), str(junk))
    assert done.returncode == 1 and "junk.json: not a voicekit report (no schema_version)" in done.stderr
    old = tmp_path / "old.json"
    old.write_text('{"schema_version": 1, "stages": {}}')
    done = voicekit("bench", "compare", str(old), str(old))
    assert "schema_version 1; this voicekit reads 2" in done.stderr


def test_plot_problems_stop_the_bench_before_it_runs(tmp_path: Path) -> None:
    missing = voicekit("bench", "-i", str(HELLO), "--plot", str(tmp_path / "nowhere" / "x.png"))
    assert missing.returncode == 2 and "the folder" in missing.stderr and "does not exist" in missing.stderr
    assert "offline:" not in missing.stdout  # no table: nothing ran
    no_matplotlib = voicekit(
        "bench", "-i", str(HELLO), "--plot", str(tmp_path / "x.png"),
        prelude="import sys; sys.modules['matplotlib'] = None",
    )  # fmt: skip
    assert no_matplotlib.returncode == 2 and "pip install 'voicekit[plot]'" in no_matplotlib.stderr
    assert not (tmp_path / "x.png").exists()


def test_an_input_without_speech_is_refused(tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    write_wav(silence, bytes(32000), 16000)
    done = voicekit("bench", "--input", str(silence))
    assert done.returncode == 2 and "silence.wav: no speech found" in done.stderr


def test_unanswered_turns_fail_the_bench(tmp_path: Path) -> None:
    clip = tmp_path / "q.wav"
    write_wav(clip, synthesize("hello there", pad_ms=300), 16000)
    profile = tmp_path / "mute.yaml"  # an STT that never hears anything: no turn is ever answered
    profile.write_text("stt: {use: scripted, speech_threshold: 32768}\nllm: {use: scripted}\noutput: {use: silent}\n")
    done = voicekit(
        "bench", "--profile", str(profile), "--input", str(clip), "--turns", "1",
        timeout=120, env={"VOICEKIT_BENCH_TURN_TIMEOUT": "2"},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"{profile}: only 0 of 1 turns completed" in done.stdout


def test_plot_draws_each_profile(tmp_path: Path) -> None:
    turns = [{"turn": i, **{s: 100.0 + i for s in STAGES}} for i in range(1, 6)]
    runs = [{"profile": "a", "turns": turns, "backends": {}}, {"profile": "b", "turns": turns[:2], "backends": {}}]
    path = tmp_path / "p.svg"
    plot(runs, path)
    svg = path.read_text()
    assert "a" in svg and "p95" in svg and "milliseconds (log scale)" in svg
