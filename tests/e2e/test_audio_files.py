"""Input and output files under abuse: headers that lie, files that never end, outputs that
must survive a failed run, and the formats beyond WAV (FLAC, OGG, MP3)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import ROOT, voicekit
from voicekit.audio.wav import write_wav
from voicekit.testing.speech import synthesize

SCRIPTED = """\
stt: {use: scripted, transcripts: [hello there]}
llm: {use: scripted, replies: ["Fine, thanks."]}
output: {use: scripted, ms_per_char: 20}
audio: {vad: none}
"""


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "scripted.yaml"
    path.write_text(SCRIPTED)
    return path


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    write_wav(path, synthesize("hello there") + bytes(32000), 16000)
    return path


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


def patched(source: Path, target: Path, offset: int, fmt: str, value: int) -> Path:
    data = bytearray(source.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    target.write_bytes(bytes(data))
    return target


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "said"),
    [
        (24, "<I", 0xFFFFFFFF, "a sample rate of 4294967295 Hz (8000 to 192000 Hz are read)"),
        (24, "<I", 4000, "a sample rate of 4000 Hz"),
        (22, "<H", 65535, "65535 channels (1 to 8 are read)"),
        (22, "<H", 0, "0 channels"),
        (16, "<I", 0xFFFFFFFF, "a WAV fmt chunk of 4294967295 bytes (16 to 1024)"),
        (34, "<H", 12, "unsupported WAV encoding (format 1, 12 bits)"),
    ],
)
def test_a_header_that_lies_gets_one_clear_line(
    speech: Path, tmp_path: Path, profile: Path, offset: int, fmt: str, value: int, said: str
) -> None:
    bad = patched(speech, tmp_path / "bad.wav", offset, fmt, value)
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(bad), "--fast"))
    assert line == f"error: {bad}: {said}" or (line.startswith(f"error: {bad}: {said}")), line


def test_short_empty_endless_and_odd_inputs(speech: Path, tmp_path: Path, profile: Path) -> None:
    cases = {
        "short.wav": (speech.read_bytes()[:30], "the file ends inside its fmt chunk"),
        "empty.wav": (b"", "not a WAV file, nor FLAC, OGG or MP3"),
        "headeronly.wav": (speech.read_bytes()[:36], "the WAV file ends before a data chunk"),
    }
    for name, (data, said) in cases.items():
        (tmp_path / name).write_bytes(data)
        line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(tmp_path / name), "--fast"))
        assert said in line and name in line, line
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", "/dev/zero", "--fast", timeout=60))
    assert line.startswith("error: /dev/zero: not a WAV file, nor FLAC, OGG or MP3: convert it first")
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(tmp_path), "--fast"))
    assert "is a directory" in line
    # a chunk that claims more than the file holds
    big = bytearray(speech.read_bytes())
    big[36:36] = b"LIST" + struct.pack("<I", 0x7FFFFFFF)
    (tmp_path / "liar.wav").write_bytes(bytes(big))
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(tmp_path / "liar.wav"), "--fast"))
    assert "the WAV chunk 'LIST' of 2147483647 bytes runs past the end of the file" in line


def test_a_wav_stream_is_read_from_a_pipe(speech: Path, profile: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicekit", "chat", "--profile", str(profile), "--input", "/dev/stdin", "--fast"],
        stdin=speech.open("rb"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "you: hello there" in result.stdout


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
def test_flac_ogg_and_mp3_inputs(tmp_path: Path, profile: Path, fmt: str, subtype: str, suffix: str) -> None:
    import soundfile

    samples = np.frombuffer(synthesize("hello there", sample_rate=44100), dtype=np.int16)
    stereo = np.stack([samples, samples], axis=1).astype(np.float32) / 32768
    path = tmp_path / f"speech.{suffix}"
    soundfile.write(
        path, np.concatenate([stereo, np.zeros((44100, 2), np.float32)]), 44100, format=fmt, subtype=subtype
    )
    result = voicekit("chat", "--profile", str(profile), "--input", str(path), "--fast")
    assert result.returncode == 0, result.stderr
    assert "you: hello there" in result.stdout
    damaged = tmp_path / f"damaged.{suffix}"
    damaged.write_bytes(path.read_bytes()[:64])
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(damaged), "--fast"))
    assert str(damaged) in line and fmt in line, line


# --- outputs ------------------------------------------------------------------------------------


def test_a_run_that_fails_leaves_an_existing_output_as_it_was(speech: Path, tmp_path: Path, profile: Path) -> None:
    reply = tmp_path / "reply.wav"
    write_wav(reply, bytes(32000), 16000)
    before = reply.read_bytes()
    (tmp_path / "taken").write_text("a file where the recording folder should go")
    result = voicekit(
        "chat",
        "--profile",
        str(profile),
        "--input",
        str(speech),
        "--output",
        str(reply),
        "--record",
        str(tmp_path / "taken"),
        "--fast",
    )
    assert result.returncode != 0
    failing = tmp_path / "failing.yaml"  # its STT cannot connect: the conversation fails at its start
    failing.write_text(
        'stt: {use: deepgram, api_key: "k", base_url: "ws://127.0.0.1:9", retry: {attempts: 1}}\n'
        "llm: {use: scripted}\noutput: {use: scripted}\naudio: {vad: none}\n"
    )
    result = voicekit("chat", "--profile", str(failing), "--input", str(speech), "--output", str(reply), "--fast")
    assert result.returncode != 0 and "Exception ignored" not in result.stderr
    assert reply.read_bytes() == before, "the failed runs left the earlier reply as it was"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    done = voicekit("chat", "--profile", str(profile), "--input", str(speech), "--output", str(reply), "--fast")
    assert done.returncode == 0, done.stderr
    assert reply.read_bytes() != before and len(reply.read_bytes()) > 1000


def test_input_and_output_the_same_file_is_refused(speech: Path, tmp_path: Path, profile: Path) -> None:
    before = speech.read_bytes()
    link = tmp_path / "link.wav"
    link.hardlink_to(speech)
    for output in (speech, tmp_path / "." / speech.name, link):
        line = one_line_error(
            voicekit("chat", "--profile", str(profile), "--input", str(speech), "--output", str(output), "--fast")
        )
        assert "--input and --output are the same file" in line
    assert speech.read_bytes() == before


def test_an_unwritable_output_is_one_line(speech: Path, tmp_path: Path, profile: Path) -> None:
    for output, said in ((tmp_path, "is a directory"), (Path("/proc/no-such-dir/reply.wav"), "cannot write")):
        line = one_line_error(
            voicekit("chat", "--profile", str(profile), "--input", str(speech), "--output", str(output), "--fast")
        )
        assert said in line and str(output) in line, line


def test_dev_null_takes_the_reply(speech: Path, profile: Path) -> None:
    result = voicekit("chat", "--profile", str(profile), "--input", str(speech), "--output", "/dev/null", "--fast")
    assert result.returncode == 0, result.stderr
