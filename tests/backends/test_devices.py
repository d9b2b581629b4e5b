"""Microphone and speaker through PyAudio, for real, on a PulseAudio null sink."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicekit.audio.pcm import rms, silence, tone

pytestmark = pytest.mark.device


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def test_devices_are_listed(pulse_null_sink: dict[str, str]) -> None:
    from voicekit.audio.devices import list_devices

    devices = list_devices()
    assert any(d.is_default_input for d in devices)
    assert any(d.is_default_output for d in devices)


async def test_what_the_speaker_plays_the_microphone_records(pulse_null_sink: dict[str, str]) -> None:
    from voicekit.audio.devices import MicSource, SpeakerSink

    mic = MicSource()
    mic.open()
    speaker = SpeakerSink(sample_rate=24000)
    recorded = bytearray()

    async def record() -> None:
        async for frame in mic:
            recorded.extend(frame)

    reader = asyncio.create_task(record())
    # stream start-up swallows the first audio: lead with silence
    for chunk in (silence(1000, 24000), tone(1500, 24000, hz=660, amplitude=0.5), silence(500, 24000)):
        for i in range(0, len(chunk), 4800):
            await speaker.play(chunk[i : i + 4800])
    await asyncio.sleep(max(0.0, speaker.busy_until - asyncio.get_running_loop().time()) + 0.8)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await speaker.aclose()
    mic.close()
    pcm = bytes(recorded)
    assert len(pcm) > 16000 * 2 * 2, "the microphone delivered less than 2 s of audio"
    windows = [pcm[i : i + 6400] for i in range(0, len(pcm) - 6400, 6400)]
    loud = [w for w in windows if rms(w) > 1000]
    assert loud, "nothing of what was played came back through the microphone"
    assert abs(dominant_hz(b"".join(loud), 16000) - 660) < 15


def test_no_device_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No sound server and no card: one line that says what to do instead."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/none", "XDG_RUNTIME_DIR": str(tmp_path)}
    code = (
        "import asyncio\n"
        "from voicekit.audio.devices import MicSource\n"
        "from voicekit.errors import AudioDeviceError\n"
        "async def main():\n"
        "    try:\n"
        "        MicSource().open()\n"
        "    except AudioDeviceError as exc:\n"
        "        print('ERROR', exc)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert "ERROR" in out.stdout and "--input" in out.stdout, out.stdout + out.stderr
