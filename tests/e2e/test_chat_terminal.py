"""``voicekit chat`` as a person sees it: on a pseudo-terminal (read through a terminal
emulator, so what the live display erased is gone from the screen), and its lines elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pyte
import pytest

from tests.cli_helpers import ROOT, voicekit
from voicekit.audio.wav import write_wav
from voicekit.testing.speech import synthesize

COLUMNS, LINES = 110, 40


class Terminal:
    """``voicekit`` on a pseudo-terminal, its output drawn by a VT100 emulator."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.screen = pyte.Screen(COLUMNS, LINES)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "voicekit", *args],
            cwd=str(ROOT),
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES), **(env or {})},
            dimensions=(LINES, COLUMNS),
            timeout=60,
        )

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Read output until ``text`` is on the screen; the screen's text."""
        import time

        deadline = time.monotonic() + timeout
        while text not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on the screen:\n{self.text()}")
            try:
                self.stream.feed(self.child.read_nonblocking(4096, timeout=0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if text not in self.text():
                    raise AssertionError(f"voicekit ended before {text!r}:\n{self.text()}") from None
        return self.text()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def finish(self) -> int:
        try:
            while True:
                self.stream.feed(self.child.read_nonblocking(4096, timeout=30))
        except pexpect.EOF:
            pass
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else 128 + (self.child.signalstatus or 0))


def test_typed_chat_keeps_the_prompt_and_what_was_typed(tmp_path: Path) -> None:
    term = Terminal("chat", "--text", "--profile", "offline", "--output", str(tmp_path / "reply.wav"))
    screen = term.wait_for("\nyou>")
    assert "voicekit chat: offline" in screen and "  llm     echo" in screen and "  in      typing" in screen
    term.child.send("hello there\r")
    term.wait_for("bot: You said: hello there.")
    screen = term.wait_for("sent→bot audio")  # the latency line of a typed turn
    assert "you> hello there" in screen, screen  # the typed line is still on the screen
    assert "speech end→text" not in screen  # a typed turn has no speech and no STT
    lines = screen.splitlines()
    assert lines.index("you> hello there") < next(i for i, line in enumerate(lines) if "bot: You said" in line)
    term.child.send("and again\r")
    screen = term.wait_for("bot: You said: and again.")
    assert "you> hello there" in screen and "you> and again" in screen
    term.child.sendeof()
    assert term.finish() == 0
    assert "conversation " in term.text() and "voicekit sessions show" in term.text()


@pytest.mark.device
def test_microphone_chat_shows_that_it_listens_with_a_level(pulse_null_sink: dict[str, str], tmp_path: Path) -> None:
    term = Terminal("chat", "--profile", "offline", "--output", str(tmp_path / "reply.wav"), env=pulse_null_sink)
    screen = term.wait_for("● listening")
    assert "microphone (default)" in screen and "half duplex: mic muted while the bot speaks" in screen
    assert "dBFS" in term.wait_for("dBFS")
    term.child.sendintr()
    assert term.finish() == 130


def test_fast_latency_line_says_what_it_leaves_out(tmp_path: Path) -> None:
    clip = tmp_path / "q.wav"
    write_wav(clip, synthesize("what is the weather like", pad_ms=300), 16000)
    done = voicekit("chat", "--input", str(clip), "--output", str(tmp_path / "o.wav"), "--fast")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "⏱" in line)
    assert "text→first token" in line and "(--fast: times from the end of speech are left out)" in line
    assert "speech end→" not in line
    normal = voicekit("chat", "--input", str(clip), "--output", str(tmp_path / "o2.wav"))
    line = next(line for line in normal.stdout.splitlines() if "⏱" in line)
    assert "speech end→text" in line and "speech end→bot audio" in line


def test_no_speaker_hint_is_said_once(tmp_path: Path) -> None:
    clip = tmp_path / "q.wav"
    write_wav(clip, synthesize("hello", pad_ms=300), 16000)
    env = {"PULSE_SERVER": f"unix:{tmp_path}/none", "XDG_RUNTIME_DIR": str(tmp_path)}
    for device in ([], ["--output-device", "no-such-speaker"]):
        done = voicekit("chat", "--input", str(clip), *device, env=env)
        assert done.returncode == 0, done.stderr
        warning = next(line for line in (done.stdout + done.stderr).splitlines() if "not played" in line)
        assert warning.count("--output") == 1, warning


def test_undecodable_typed_bytes_are_replaced_with_a_warning(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voicekit", "chat", "--text", "--output", str(tmp_path / "o.wav")],
        input=b"hello \xff\xfe there\n",
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "the typed line had bytes that are not UTF-8; they were replaced with \ufffd" in out
    assert "bot: You said: hello \ufffd\ufffd there." in out


def test_alsa_messages_are_silenced() -> None:
    """ALSA prints its errors (underruns, unknown devices) on stderr by itself; not after voicekit opens audio."""
    code = (
        "import ctypes, sys\n"
        "quiet = sys.argv[1] == 'quiet'\n"
        "if quiet:\n"
        "    from voicekit.audio.devices import silence_native_audio_logs\n"
        "    assert silence_native_audio_logs()\n"
        "alsa = ctypes.CDLL('libasound.so.2')\n"
        "pcm = ctypes.c_void_p()\n"
        "assert alsa.snd_pcm_open(ctypes.byref(pcm), b'no_such_voicekit_pcm', 0, 0) < 0\n"
    )
    if ctypes.util.find_library("asound") is None:
        pytest.fail("libasound is missing: scripts/setup.sh dev installs it (portaudio19-dev depends on it)")
    loud = subprocess.run([sys.executable, "-c", code, "loud"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    quiet = subprocess.run([sys.executable, "-c", code, "quiet"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "ALSA lib" in loud.stderr and "no_such_voicekit_pcm" in loud.stderr
    assert quiet.stderr == ""
