"""Property-based fuzzing of what reads untrusted input: the serve wire (protobuf frames
carrying RTVI JSON), the profile loader (YAML documents and ``--set`` values) and the audio
file reader. Whatever comes in, the only ways out are a result or the documented error:

- a socket message: handled, an :class:`~voicekit.serve.connection.Ending` with its close
  code, or :class:`~voicekit.serve.wire.WireError` (closed with 1007);
- a profile: a :class:`~voicekit.profiles.Profile` and a list of problems, or a
  :class:`~voicekit.errors.VoicekitError` (one line, file and line named);
- an audio file: PCM, or :class:`~voicekit.errors.AudioFormatError` naming the file.

Runs are reproducible (``derandomize``, no example database) and bounded by example counts,
not by time: the whole module takes well under a minute.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicekit.errors import AudioFormatError, VoicekitError

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,  # never fail on the machine's speed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# --- the serve wire ------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
rtvi_types = st.sampled_from(
    ["client-ready", "send-text", "client-message", "disconnect-bot", "ping", "", "x" * 200]
) | st.text(max_size=20)
rtvi_messages = st.fixed_dictionaries(
    {"label": st.sampled_from(["rtvi-ai", "other"]), "type": rtvi_types | json_values},
    optional={"id": st.text(max_size=200) | st.integers() | json_values, "data": json_values},
)


def _json_texts() -> st.SearchStrategy[str]:
    deep = st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n)
    unclosed = st.integers(min_value=1, max_value=70_000).map(lambda n: "{" * n)
    big_number = st.integers(min_value=30, max_value=6000).map(lambda n: '{"id": ' + "9" * n + "}")
    return rtvi_messages.map(json.dumps) | deep | unclosed | big_number | st.text(max_size=200)


def _frames() -> st.SearchStrategy[bytes]:
    from voicekit.serve import wire

    audio = st.builds(
        wire.AudioFrame,
        audio=st.binary(max_size=4000),
        sample_rate=st.integers(min_value=0, max_value=(1 << 32) - 1),
        num_channels=st.integers(min_value=0, max_value=(1 << 32) - 1),
    )
    message = _json_texts().map(wire.MessageFrame)
    text = st.text(max_size=5000).map(wire.TextFrame)
    transcription = st.text(max_size=50).map(wire.TranscriptionFrame)
    return (audio | message | text | transcription).map(wire.encode)


def _mangled() -> st.SearchStrategy[bytes]:
    """Well-formed frames cut short, with bytes flipped, or glued to noise."""

    def mangle(data: bytes, cut: int, flip: int, noise: bytes) -> bytes:
        if data and flip:
            index = flip % len(data)
            data = data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]
        return data[: max(0, len(data) - cut)] + noise

    return st.builds(mangle, _frames(), st.integers(0, 8), st.integers(0, 10_000), st.binary(max_size=8))


@settings(FUZZ, max_examples=1500)
@given(data=st.binary(max_size=300) | _frames() | _mangled())
def test_the_wire_decoder_raises_only_wire_errors(data: bytes) -> None:
    from voicekit.serve import wire

    for read in (wire.decode, wire.audio_payload):
        try:
            read(data)
        except wire.WireError:
            pass


@settings(FUZZ, max_examples=600)
@given(data=_frames() | _mangled() | st.binary(max_size=200))
def test_a_connection_takes_any_message_or_closes_with_a_defined_code(data: bytes) -> None:
    from voicekit.serve.inbox import Ending, Inbox
    from voicekit.serve.limits import ServeLimits
    from voicekit.serve.transport import FrameSource, Outbox

    async def never(_: bytes) -> None:
        raise AssertionError("nothing is sent while messages are only taken")

    outbox = Outbox(never)
    outcome = Inbox(ServeLimits(), outbox, FrameSource()).take(data, 1 << 20)
    assert outcome is None or (isinstance(outcome, Ending) and outcome.code in (1000, 1007, 1008, 1009))
    queued = [payload for _, payload in outbox._items]
    assert all(len(payload) < 1000 for payload in queued), "an answer echoed much of what came in"


@settings(FUZZ, max_examples=800)
@given(text=_json_texts())
def test_rtvi_parse_raises_only_wire_errors(text: str) -> None:
    from voicekit.serve import rtvi, wire

    try:
        msg = rtvi.parse(text)
    except wire.WireError:
        return
    assert isinstance(msg, dict)


# --- the profile loader ------------------------------------------------------------------------------

KEYS = [
    "description",
    "extends",
    "language",
    "stt",
    "llm",
    "output",
    "turns",
    "audio",
    "use",
    "model",
    "retry",
    "fallback",
    "mode",
    "vad",
    "vad_mode",
    "end_of_speech_ms",
    "attempts",
    "$env",
    "interruptions",
    "voice",
]
BACKENDS = ["echo", "espeak", "pocketsphinx", "scripted", "silent", "gemini", "deepgram", "nope"]
yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(BACKENDS)
    | st.text(max_size=12)
    | st.sampled_from(["${HOME}", "${NO_SUCH_VAR_X}", "half_duplex", "full_duplex", "offline", "../x"])
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=6).map(
    lambda data: yaml.safe_dump(data, allow_unicode=True)
)


def _yaml_texts() -> st.SearchStrategy[str]:
    aliases = st.integers(min_value=1, max_value=12).map(
        lambda n: (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(n)
            )
            + "llm: {use: echo}\n"
        )
    )
    nested = st.integers(min_value=1, max_value=3000).map(lambda n: "llm: {use: echo}\nx: " + "[" * n + "]" * n)
    return documents | aliases | nested | st.text(max_size=300)


@settings(FUZZ, max_examples=400)
@given(text=_yaml_texts(), overrides=st.lists(st.text(max_size=40), max_size=3))
def test_the_profile_loader_raises_only_profile_errors(text: str, overrides: list[str]) -> None:
    from voicekit.profiles import load_profile, validate_profile
    from voicekit.registry import load_registry

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            profile = load_profile(path, overrides, env={"HOME": "/home/x"})
        except VoicekitError as exc:
            assert str(exc) and "\n" not in str(exc).strip(), str(exc)
            return
        problems = validate_profile(profile, load_registry())
        assert all(isinstance(p, str) and p for p in problems)


set_keys = st.lists(st.sampled_from(KEYS) | st.text(max_size=5), min_size=1, max_size=4).map(".".join)
set_values = yaml_values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()) | st.text(max_size=60)


@settings(FUZZ, max_examples=400)
@given(key=set_keys, value=set_values)
def test_set_values_raise_only_profile_errors(key: str, value: str) -> None:
    from voicekit.profiles import load_profile

    try:
        load_profile("offline", [f"{key}={value}"])
    except VoicekitError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), str(exc)


# --- audio files ----------------------------------------------------------------------------------


def _wav(
    tag: int, channels: int, rate: int, bits: int, fmt_size: int, data_size: int, body: bytes, extra: bytes
) -> bytes:
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * channels * bits // 8 & 0xFFFFFFFF, channels * bits // 8 & 0xFFFF, bits
    )
    written = min(fmt_size, 64)  # the declared size may be anything; what is written stays small
    fmt = (fmt + bytes(max(0, written - len(fmt))))[:written]
    chunks = b"fmt " + struct.pack("<I", fmt_size) + fmt + extra + b"data" + struct.pack("<I", data_size) + body
    return b"RIFF" + struct.pack("<I", (len(chunks) + 4) & 0xFFFFFFFF) + b"WAVE" + chunks


u32 = st.integers(min_value=0, max_value=(1 << 32) - 1)
wav_files = st.builds(
    _wav,
    tag=st.sampled_from([1, 3, 0xFFFE, 2, 0]) | st.integers(0, 0xFFFF),
    channels=st.sampled_from([1, 2, 8, 9]) | st.integers(0, 0xFFFF),
    rate=st.sampled_from([8000, 16000, 44100, 192000, 7999, 192001]) | u32,
    bits=st.sampled_from([8, 16, 24, 32, 64, 12]) | st.integers(0, 0xFFFF),
    fmt_size=st.sampled_from([16, 18, 40, 14, 0]) | u32,
    data_size=st.sampled_from([0, 0xFFFFFFFF, 64]) | u32,
    body=st.binary(max_size=2000),
    extra=st.sampled_from([b"", b"LIST\x04\x00\x00\x00abcd", b"LIST\xff\xff\xff\x7f", b"ds64" + bytes(28)]),
)
magic = st.sampled_from(
    [b"RIFF\x00\x00\x00\x00WAVE", b"RF64\xff\xff\xff\xffWAVE", b"fLaC", b"OggS", b"ID3", b"\xff\xfb"]
)
audio_bytes = wav_files | st.builds(lambda m, rest: m + rest, magic, st.binary(max_size=600)) | st.binary(max_size=100)


@settings(FUZZ, max_examples=500)
@given(data=audio_bytes)
def test_the_audio_reader_raises_only_audio_format_errors(data: bytes) -> None:
    from voicekit.audio.files import load_pcm

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.audio"
        path.write_bytes(data)
        try:
            pcm = load_pcm(path)
        except AudioFormatError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
            return
        assert isinstance(pcm, bytes) and len(pcm) % 2 == 0
