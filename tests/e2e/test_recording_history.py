"""Records and history: ``--record`` never replaces a recording, transcript times are seconds into
``conversation.wav``, metrics.json has the report schema, and every conversation is kept under its
ledger id for ``voicekit sessions show``."""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import numpy as np

from tests.cli_helpers import voicekit
from voicekit.audio.wav import write_wav
from voicekit.engine.metrics import STAGES
from voicekit.history import HistoryKeeper, prune
from voicekit.testing.speech import synthesize


def _history() -> Path:
    return Path(os.environ["VOICEKIT_DATA_DIR"]) / "history"


def _speech_end_s(wav_path: Path) -> float:
    """Where the user's speech ends in conversation.wav (left channel), by energy."""
    with wave.open(str(wav_path)) as wav:
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)[:, 0]
    window = 160
    loud = [i for i in range(0, len(frames) - window, window) if np.abs(frames[i : i + window]).mean() > 300]
    return (loud[-1] + window) / 16000


def test_record_times_schema_and_no_overwrite(tmp_path: Path) -> None:
    clip = tmp_path / "q.wav"
    write_wav(clip, bytes(16000) + synthesize("what is the weather like", pad_ms=200) + bytes(32000), 16000)
    record = tmp_path / "rec"
    done = voicekit("chat", "--input", str(clip), "--output", str(tmp_path / "o.wav"), "--record", str(record))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (record / "transcript.jsonl").read_text().splitlines()]
    user = next(line for line in lines if line["type"] == "UserTurn")
    spoken_until = _speech_end_s(record / "conversation.wav")
    # the words are recognised after they were said, within the recogniser's endpointing
    assert spoken_until <= user["t"] <= spoken_until + 2.0, (spoken_until, user["t"])
    metrics = json.loads((record / "metrics.json").read_text())
    assert (metrics["schema_version"], metrics["kind"], metrics["status"], metrics["reason"]) == (
        2, "conversation", "ended", None,
    )  # fmt: skip
    assert list(metrics["stages"]) == list(STAGES) and metrics["stages"]["stt_ms"]["count"] == 1
    [turn] = metrics["turns"]
    assert turn["t"] >= user["t"] and set(STAGES) <= set(turn) and turn["backends"]["stt"] == "pocketsphinx"

    before = {p.name: p.read_bytes() for p in record.iterdir()}
    again = voicekit("chat", "--input", str(clip), "--output", str(tmp_path / "o.wav"), "--record", str(record))
    assert again.returncode == 2
    assert f"--record {record}: the folder is not empty" in again.stderr and "--overwrite" in again.stderr
    assert {p.name: p.read_bytes() for p in record.iterdir()} == before  # nothing replaced
    replaced = voicekit(
        "chat", "--input", str(clip), "--output", str(tmp_path / "o.wav"), "--record", str(record), "--overwrite"
    )
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((record / "metrics.json").read_text())["conversation_id"] != metrics["conversation_id"]


def test_every_conversation_is_kept_and_shown(tmp_path: Path) -> None:
    done = voicekit("chat", "--text", "--output", str(tmp_path / "o.wav"), stdin_text="hello there\nhow are you\n")
    assert done.returncode == 0, done.stderr
    [kept] = list(_history().iterdir())
    assert f"voicekit sessions show {kept.name}" in done.stdout
    metrics = json.loads((kept / "metrics.json").read_text())
    assert metrics["conversation_id"] == kept.name and metrics["status"] == "ended" and len(metrics["turns"]) == 2
    listed = voicekit("sessions", "list", "--json")
    assert kept.name in [c["id"] for c in json.loads(listed.stdout)["conversations"]]
    shown = voicekit("sessions", "show", kept.name[:6])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"conversation {kept.name}  profile offline") and lines[0].endswith("ended")
    said = [line.split("s ", 1)[1] for line in lines if line.strip()[:1].isdigit()]
    assert said == [
        "you: hello there",
        "bot: You said: hello there.",
        "you: how are you",
        "bot: You said: how are you.",
    ]
    assert any(line.startswith("LLM request → LLM first token") for line in lines)
    unknown = voicekit("sessions", "show", "nosuchid")
    assert unknown.returncode == 1 and "no history of conversation 'nosuchid'" in unknown.stderr


def test_no_history_keeps_nothing(tmp_path: Path) -> None:
    done = voicekit("chat", "--text", "--no-history", "--output", str(tmp_path / "o.wav"), stdin_text="hi\n")
    assert done.returncode == 0, done.stderr
    assert not _history().exists() or list(_history().iterdir()) == []
    config = Path(os.environ["VOICEKIT_CONFIG_DIR"]) / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("history = false\n")
    done = voicekit("chat", "--text", "--output", str(tmp_path / "o.wav"), stdin_text="hi\n")
    assert done.returncode == 0 and (not _history().exists() or list(_history().iterdir()) == [])


def test_a_failed_conversation_is_kept_with_its_reason(tmp_path: Path) -> None:
    profile = tmp_path / "down.yaml"
    profile.write_text(
        "llm: {use: gemini, base_url: 'http://127.0.0.1:9', retry: {attempts: 1}}\noutput: {use: silent}\n"
    )
    done = voicekit("chat", "--text", "--profile", str(profile), stdin_text="hi\n", env={"GEMINI_API_KEY": "k"})
    assert done.returncode == 1
    [kept] = list(_history().iterdir())
    metrics = json.loads((kept / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "gemini" in metrics["reason"]
    shown = voicekit("sessions", "show", kept.name).stdout
    assert "failed" in shown.splitlines()[0] and "reason: " in shown


def test_history_is_trimmed_to_its_size_cap(tmp_path: Path) -> None:
    for index in range(5):
        folder = tmp_path / f"c{index}"
        folder.mkdir()
        (folder / "transcript.jsonl").write_bytes(b"x" * 400_000)
        os.utime(folder, (1000 + index, 1000 + index))
    removed = prune(tmp_path, max_mb=1.0)
    assert [p.name for p in removed] == ["c0", "c1", "c2"]  # the oldest go first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c3", "c4"]
    keeper = HistoryKeeper("offline", directory=tmp_path / "h", max_mb=0.0)
    keeper.bind("abc123")
    keeper.close("ended")
    assert (tmp_path / "h" / "abc123" / "metrics.json").is_file()  # the conversation just kept stays
