"""Bad input ends in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import voicekit
from voicekit.audio.wav import write_wav


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    write_wav(path, bytes(16000), 16000)
    return path


def write_profile(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_malformed_yaml(tmp_path: Path, speech_wav: Path) -> None:
    profile = write_profile(tmp_path, "stt: {use: pocketsphinx\nllm: echo\n")
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(speech_wav), "--fast"))
    assert "p.yaml" in line


def test_unknown_key_suggests_the_right_one(tmp_path: Path, speech_wav: Path) -> None:
    profile = write_profile(
        tmp_path,
        """\
        stt: {use: scripted, final_delay: 10}
        llm: {use: scripted}
        output: {use: silent}
        """,
    )
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(speech_wav), "--fast"))
    assert "final_delay" in line and "final_delay_ms" in line and "p.yaml:1" in line


def test_unknown_backend_lists_the_known_ones(tmp_path: Path, speech_wav: Path) -> None:
    profile = write_profile(
        tmp_path,
        """\
        stt: {use: deepgramm}
        llm: {use: scripted}
        output: {use: silent}
        """,
    )
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(speech_wav), "--fast"))
    assert "deepgramm" in line and "deepgram" in line and "pocketsphinx" in line


def test_missing_secret_names_the_variable(tmp_path: Path, speech_wav: Path) -> None:
    profile = write_profile(
        tmp_path,
        """\
        stt: {use: scripted}
        llm: {use: echo, prefix: "${VOICEKIT_TEST_NOT_SET}"}
        output: {use: silent}
        """,
    )
    line = one_line_error(voicekit("chat", "--profile", str(profile), "--input", str(speech_wav), "--fast"))
    assert "VOICEKIT_TEST_NOT_SET" in line


def test_missing_extra_says_what_to_install(tmp_path: Path, speech_wav: Path) -> None:
    profile = write_profile(
        tmp_path,
        """\
        stt: {use: deepgram, base_url: "http://127.0.0.1:9"}
        llm: {use: scripted}
        output: {use: silent}
        """,
    )
    # the deepgram SDK made unimportable in this process, as if never installed
    result = voicekit(
        "chat",
        "--profile",
        str(profile),
        "--input",
        str(speech_wav),
        "--fast",
        env={"DEEPGRAM_API_KEY": "k"},
        prelude="import sys; sys.modules['deepgram'] = None",
    )
    line = one_line_error(result)
    assert "pip install 'voicekit[deepgram]'" in line


def test_missing_input_file(tmp_path: Path) -> None:
    line = one_line_error(voicekit("chat", "--input", str(tmp_path / "nope.wav"), "--fast"))
    assert "nope.wav" in line and "no such file" in line


def test_input_that_is_not_audio(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("these are not samples")
    line = one_line_error(voicekit("chat", "--input", str(bogus), "--fast"))
    assert "not a WAV file" in line


def test_no_audio_device_suggests_input(tmp_path: Path) -> None:
    env = {"PULSE_SERVER": f"unix:{tmp_path}/none", "XDG_RUNTIME_DIR": str(tmp_path)}
    line = one_line_error(voicekit("chat", "--profile", "offline", env=env))
    assert "--input" in line


def test_plugin_that_raises_on_import_is_reported_not_fatal(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "vk_broken-0.1.dist-info").mkdir(parents=True)
    (site / "vk_broken.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    (site / "vk_broken-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: vk-broken\nVersion: 0.1\n")
    (site / "vk_broken-0.1.dist-info" / "entry_points.txt").write_text("[voicekit]\nbroken = vk_broken\n")
    env = {"PYTHONPATH": str(site)}
    listed = voicekit("plugins", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "broken" in listed.stdout and "this plugin is broken on purpose" in listed.stdout
    helped = voicekit("--help", env=env)
    assert helped.returncode == 0 and "chat" in helped.stdout


def test_any_wav_layout_is_accepted(tmp_path: Path) -> None:
    """A 44.1 kHz stereo 24-bit file goes through like a 16 kHz mono one."""
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], axis=1) * 0.3
    samples = (stereo * (2**23 - 1)).astype(np.int32)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in samples.reshape(-1))
    import wave

    path = tmp_path / "stereo24.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(3)
        out.setframerate(44100)
        out.writeframes(raw)
    profile = write_profile(
        tmp_path,
        """\
        stt: {use: scripted, transcripts: [hello]}
        llm: {use: scripted}
        output: {use: silent}
        """,
    )
    result = voicekit("chat", "--profile", str(profile), "--input", str(path), "--fast")
    assert result.returncode == 0, result.stderr
    assert "you: hello" in result.stdout


def test_usage_errors_exit_2_with_usage() -> None:
    result = voicekit("chat", "--bogus")
    assert result.returncode == 2
    assert "No such option: --bogus" in result.stderr and "Usage: " in result.stderr
