"""``voicekit serve``: the protobuf wire, the RTVI conversation over a real websocket,
barge-in, and the limits (sizes, bad input, sessions, tokens, origins, timeouts)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tests.cli_helpers import voicekit
from tests.serve_helpers import connect, running_server, speech, write_profile
from voicekit.clock import now
from voicekit.errors import VoicekitError
from voicekit.ledger import SessionLedger
from voicekit.profiles import load_profile
from voicekit.serve import wire
from voicekit.serve.config import ServeConfig, check_exposure, preflight, read_tokens
from voicekit.serve.transport import FrameSource, InputAudio, Outbox, SocketSink

PROTO = Path(__file__).resolve().parents[2] / "voicekit" / "serve" / "frames.proto"

# --- the wire, against the protobuf runtime -----------------------------------------------

_TYPES = {
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}


def runtime_classes() -> dict[str, Any]:
    """Message classes of the protobuf runtime, built from our frames.proto (read with a
    small parser: the file uses only messages, scalars, one optional and one oneof)."""
    text = re.sub(r"//[^\n]*", "", PROTO.read_text())
    package = re.search(r"package\s+(\w+)\s*;", text).group(1)  # type: ignore[union-attr]
    file = descriptor_pb2.FileDescriptorProto(name="frames.proto", package=package, syntax="proto3")
    for name, body in re.findall(r"message\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        message = file.message_type.add(name=name)
        oneof = re.search(r"oneof\s+(\w+)\s*\{([^}]*)\}", body)
        plain = body.replace(oneof.group(0), "") if oneof else body
        for optional, kind, field, number in re.findall(r"(optional\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", plain):
            f = message.field.add(name=field, number=int(number), label=1, type=_TYPES[kind])
            if optional:  # proto3 optional: a synthetic oneof of its own
                f.proto3_optional = True
                f.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field}")
        if oneof:
            message.oneof_decl.add(name=oneof.group(1))
            for kind, field, number in re.findall(r"(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", oneof.group(2)):
                message.field.add(
                    name=field,
                    number=int(number),
                    label=1,
                    oneof_index=len(message.oneof_decl) - 1,
                    type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                    type_name=f".{package}.{kind}",
                )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{m.name}"))
        for m in file.message_type
    }


PB = runtime_classes()

CASES: list[tuple[wire.Frame, dict[str, Any]]] = [
    (
        wire.AudioFrame(b"\x01\x02" * 320, 16000, 1),
        {"audio": {"audio": b"\x01\x02" * 320, "sample_rate": 16000, "num_channels": 1}},
    ),
    (wire.AudioFrame(b"", 0, 0), {"audio": {}}),
    (
        wire.AudioFrame(b"\x00\x00", 48000, 2, id=2**64 - 1, name="audio", pts=0),
        {
            "audio": {
                "audio": b"\x00\x00",
                "sample_rate": 48000,
                "num_channels": 2,
                "id": 2**64 - 1,
                "name": "audio",
                "pts": 0,
            }
        },
    ),
    (
        wire.AudioFrame(b"\xff" * 70000, 24000, 1, pts=123456789012),
        {"audio": {"audio": b"\xff" * 70000, "sample_rate": 24000, "num_channels": 1, "pts": 123456789012}},
    ),
    (
        wire.MessageFrame('{"label":"rtvi-ai","type":"bot-ready","data":{"text":"Привет ✓"}}'),
        {"message": {"data": '{"label":"rtvi-ai","type":"bot-ready","data":{"text":"Привет ✓"}}'}},
    ),
    (wire.MessageFrame(""), {"message": {}}),
    (wire.TextFrame("hello", id=7, name="t"), {"text": {"text": "hello", "id": 7, "name": "t"}}),
    (
        wire.TranscriptionFrame("hi", user_id="u1", timestamp="2026-01-01T00:00:00Z", id=300),
        {"transcription": {"text": "hi", "user_id": "u1", "timestamp": "2026-01-01T00:00:00Z", "id": 300}},
    ),
]


def runtime_frame(fields: dict[str, Any]) -> Any:
    frame = PB["Frame"]()
    ((kind, values),) = fields.items()
    getattr(frame, kind).SetInParent()
    for name, value in values.items():
        setattr(getattr(frame, kind), name, value)
    return frame


@pytest.mark.parametrize(("ours", "fields"), CASES, ids=lambda c: type(c).__name__ if not isinstance(c, dict) else "")
def test_codec_matches_the_protobuf_runtime_byte_for_byte(ours: wire.Frame, fields: dict[str, Any]) -> None:
    theirs = runtime_frame(fields).SerializeToString(deterministic=True)
    assert wire.encode(ours) == theirs
    assert wire.decode(theirs) == ours
    parsed = PB["Frame"].FromString(wire.encode(ours))
    assert parsed == runtime_frame(fields)


def test_audio_fast_path_agrees_with_the_decoder() -> None:
    for ours, _ in CASES:
        data = wire.encode(ours)
        fast = wire.audio_payload(data)
        if isinstance(ours, wire.AudioFrame) and ours.id < 2**63:  # multi-byte keys and huge ids: general path
            assert fast == (ours.audio, ours.sample_rate, ours.num_channels) or fast is None
        else:
            assert fast is None or isinstance(ours, wire.AudioFrame)
    plain = wire.encode(wire.AudioFrame(b"\x01\x02" * 320, 16000, 1, name="audio"))  # what client-js sends
    assert wire.audio_payload(plain) == (b"\x01\x02" * 320, 16000, 1)
    assert wire.audio_payload(wire.encode(wire.MessageFrame("{}"))) is None
    assert wire.audio_payload(plain + b"\x22\x00") is None  # another oneof member follows: general path
    with pytest.raises(wire.WireError):
        wire.audio_payload(b"\x12\x06\x1a\x05ab\x00\x00")
    with pytest.raises(wire.WireError):
        wire.audio_payload(b"\x12\x03\x12\x01\xff")


def test_hot_path_encoders_match_the_general_one() -> None:
    pcm = bytes(range(256)) * 4
    assert wire.encode_audio(pcm, 24000) == wire.encode(wire.AudioFrame(pcm, 24000, 1))
    assert wire.encode_message('{"a":1}') == wire.encode(wire.MessageFrame('{"a":1}'))


def test_decoder_skips_unknown_fields_and_kinds() -> None:
    frame = runtime_frame({"audio": {"audio": b"\x01\x00", "sample_rate": 16000}}).SerializeToString()
    extra = b"\x38\x05" + b"\x41" + bytes(8) + b"\x4d" + bytes(4) + b"\x52\x02hi"  # varint, i64, i32, len fields 7-10
    assert wire.decode(frame + extra) == wire.AudioFrame(b"\x01\x00", 16000, 0)
    assert wire.decode(b"\x2a\x00") is None  # field 5: a kind this schema does not have
    assert wire.decode(b"") is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x12",  # tag, then nothing
        b"\x12\x05\x1a\x10abc",  # inner length past the end
        b"\x12\x03\x1a\x05a",  # bytes field longer than its message
        b"\x0b\x0c",  # group wire type
        b"\x22\x03\x0a\x01\xff",  # message data that is not UTF-8
        b"\x12\x0b\x08" + b"\xff" * 10,  # varint over 10 bytes
        b"\x00\x01",  # field number 0
        b"\x12\x02\x18\x01\x22",  # audio field 3 given as a varint
    ],
)
def test_decoder_rejects_malformed_frames(data: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(data)


async def test_input_audio_becomes_16k_mono_20ms_frames() -> None:
    source = FrameSource()
    audio = InputAudio(source)
    stereo48 = speech(1000, 48000)
    interleaved = b"".join(stereo48[i : i + 2] * 2 for i in range(0, len(stereo48), 2))
    for offset in range(0, len(interleaved), 4096 * 4):  # odd-sized messages, as browsers send
        audio.push(wire.AudioFrame(interleaved[offset : offset + 4096 * 4], 48000, 2))
    source.close()
    frames = [f async for f in source]
    assert {len(f) for f in frames} == {640}
    assert 46 <= len(frames) <= 50  # 1 s, less what the resampler holds back
    with pytest.raises(wire.WireError, match="whole 16-bit samples"):
        audio.push(wire.AudioFrame(b"\x00\x00\x00", 16000, 1))
    with pytest.raises(wire.WireError, match="sample rate"):
        audio.push(wire.AudioFrame(b"\x00\x00", 4000, 1))


async def test_outbox_keeps_order_drops_queued_audio_and_flags_a_client_that_does_not_read() -> None:
    sent: list[bytes] = []
    gate = asyncio.Event()

    async def send(data: bytes) -> None:
        await gate.wait()
        sent.append(data)

    outbox = Outbox(send, max_pending=5)
    writer = asyncio.create_task(outbox.run())
    outbox.message({"type": "a"})
    outbox.audio(b"\x01\x00" * 10, 24000)
    outbox.message({"type": "b"})
    outbox.audio(b"\x02\x00" * 10, 24000)
    await asyncio.sleep(0.01)  # the writer holds "a", waiting for the socket
    outbox.drop_audio()
    gate.set()
    await outbox.flush(1.0)
    assert [wire.decode(d) for d in sent] == [wire.MessageFrame('{"type":"a"}'), wire.MessageFrame('{"type":"b"}')]
    gate.clear()
    for _ in range(7):
        outbox.audio(b"\x00\x00", 24000)
    assert outbox.overflow.is_set()
    writer.cancel()


async def test_socket_sink_paces_and_sends_nothing_after_clear() -> None:
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    outbox = Outbox(send)
    writer = asyncio.create_task(outbox.run())
    starts: list[int] = []
    sink = SocketSink(outbox, lambda: starts.append(1), 24000, chunk_ms=40, lookahead_ms=60)
    t0 = now()
    await sink.play(bytes(24000 * 2 // 2))  # 500 ms of audio
    assert 0.38 <= now() - t0 <= 0.65, "paced in real time, a lookahead ahead"
    await outbox.flush(1.0)
    assert len(sent) == 13 and len(starts) == 13  # 12 pieces of 40 ms and one of 20 ms
    assert {len(wire.decode(d).audio) for d in sent} == {1920, 960}  # type: ignore[union-attr]
    sent.clear()
    playing = asyncio.create_task(sink.play(bytes(24000 * 2)))  # one second more
    await asyncio.sleep(0.2)
    sink.clear()  # barge-in
    cut_at = len(sent)
    await playing
    await outbox.flush(1.0)
    assert len(sent) == cut_at and 4 <= cut_at <= 9, "nothing after clear(), and only ~lookahead before"
    writer.cancel()


# --- a conversation over the socket -----------------------------------------------------------


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return write_profile(tmp_path)


def config(profile: Path, **kwargs: Any) -> ServeConfig:
    kwargs.setdefault("ledger", SessionLedger())
    return ServeConfig(profile=str(profile), **kwargs)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, "timed out"
        await asyncio.sleep(0.02)


def only(kinds: list[str], wanted: set[str]) -> list[str]:
    return [k for k in kinds if k in wanted]


async def test_handshake_and_the_events_of_one_spoken_turn(profile: Path) -> None:
    async with running_server(config(profile, profile_name="scripted")) as server, connect(server.ws_url) as client:
        ready = await client.ready()
        assert ready["id"] == "ready-1"
        assert ready["data"]["version"] == "2.1.0"
        assert ready["data"]["about"]["library"] == "voicekit" and ready["data"]["about"]["profile"] == "scripted"
        await client.stream(speech(600) + bytes(16000 * 2 // 2))  # 600 ms of speech, 500 ms of silence
        await client.wait_for("metrics", timeout=10)
        kinds = client.kinds
        assert only(
            kinds,
            {
                "user-started-speaking",
                "user-stopped-speaking",
                "user-llm-text",
                "bot-llm-started",
                "bot-started-speaking",
                "bot-tts-stopped",
                "bot-stopped-speaking",
                "metrics",
            },
        ) == [
            "user-started-speaking",
            "user-stopped-speaking",
            "user-llm-text",
            "bot-llm-started",
            "bot-started-speaking",
            "bot-tts-stopped",
            "bot-stopped-speaking",
            "metrics",
        ]
        transcripts = client.messages("user-transcription")
        assert [(t["data"]["text"], t["data"]["final"]) for t in transcripts] == [
            ("hello", False),
            ("hello there", True),
        ]
        assert all(t["data"]["user_id"] and t["data"]["timestamp"] for t in transcripts)
        assert "".join(m["data"]["text"] for m in client.messages("bot-llm-text")) == "Hi. How are you today?"
        assert [m["data"]["text"] for m in client.messages("bot-output")] == ["Hi.", "How are you today?"]
        assert kinds.index("bot-llm-started") < kinds.index("bot-llm-text") < kinds.index("bot-llm-stopped")
        assert kinds.index("bot-tts-started") < kinds.index("bot-tts-text") < kinds.index("bot-started-speaking")
        first_audio, last_audio = kinds.index("audio"), len(kinds) - 1 - kinds[::-1].index("audio")
        assert kinds.index("bot-started-speaking") < first_audio and last_audio < kinds.index("bot-stopped-speaking")
        audio = [p for _, k, p in client.log if k == "audio"]
        assert {(a.sample_rate, a.num_channels) for a in audio} == {(24000, 1)}
        seconds = sum(len(a.audio) for a in audio) / 2 / 24000
        assert seconds == pytest.approx(len("Hi.How are you today?") * 0.030, abs=0.03)
        times = [t for t, k, _ in client.log if k == "audio"]
        assert times[-1] - times[0] >= seconds - 0.15, "bot audio is paced in real time"
        metrics = client.messages("metrics")[0]["data"]
        assert {m["processor"] for m in metrics["ttfb"]} == {"stt:scripted", "llm:scripted", "output:scripted"}
        llm = next(m["value"] for m in metrics["ttfb"] if m["processor"] == "llm:scripted")
        assert 0.035 <= llm < 0.2  # first_token_ms: 40, in seconds
        assert any(m["processor"] == "voicekit:voice_to_voice" for m in metrics["processing"])


async def test_48k_stereo_microphone_is_heard(profile: Path) -> None:
    async with running_server(config(profile)) as server, connect(server.ws_url) as client:
        await client.ready()
        mono = speech(500, 48000)
        stereo = b"".join(mono[i : i + 2] * 2 for i in range(0, len(mono), 2))
        await client.stream(stereo + bytes(48000 * 2 * 2 // 2), rate=48000, channels=2)
        await client.wait_for("user-llm-text", timeout=5)
        assert client.messages("user-llm-text")[0]["data"]["text"] == "hello there"


async def test_send_text_and_client_messages(profile: Path) -> None:
    async with running_server(config(profile)) as server, connect(server.ws_url) as client:
        await client.send_rtvi("client-ready", {"version": "2.1.0", "about": {"library": "tests"}})
        await client.send_rtvi("send-text", {"content": "typed before ready", "options": {"run_immediately": True}})
        await client.wait_for("bot-ready")
        first = await client.wait_for("user-llm-text")
        assert client.log[first][2]["data"]["text"] == "typed before ready"
        await client.wait_for("bot-stopped-speaking", after=first, timeout=10)
        await client.send_rtvi("send-text", {"content": "what time is it"})
        second = await client.wait_for("user-llm-text", after=first + 1)
        assert client.log[second][2]["data"]["text"] == "what time is it"
        await client.wait_for("bot-llm-text", after=second)
        await client.wait_for("bot-stopped-speaking", after=second, timeout=10)
        ping = await client.send_rtvi("client-message", {"t": "ping", "d": {}})
        response = client.log[await client.wait_for("server-response")][2]
        assert response["id"] == ping and response["data"] == {"t": "ping", "d": {"pong": True}}
        history_id = await client.send_rtvi("client-message", {"t": "history"})
        index = await client.wait_for("server-response", after=client.kinds.index("server-response") + 1)
        history = client.log[index][2]
        assert history["id"] == history_id
        assert [m["text"] for m in history["data"]["d"] if m["role"] == "user"] == [
            "typed before ready",
            "what time is it",
        ]
        bad = await client.send_rtvi("client-message", {"t": "no-such-thing"})
        empty = await client.send_rtvi("send-text", {"content": "  "})
        other = await client.send_rtvi("ui-snapshot", {"tree": {}})
        await asyncio.sleep(0.2)
        errors = {m["id"]: m["data"]["error"] for m in client.messages("error-response")}
        assert set(errors) == {bad, empty, other}
        assert "ping" in errors[bad] and "content" in errors[empty] and "ui-snapshot" in errors[other]


async def test_barge_in_stops_the_bot_audio_at_once(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path, replies=["This reply is long enough to be talked over. " * 4, "Okay."], ms_per_char=40
    )
    async with running_server(config(profile)) as server, connect(server.ws_url) as client:
        await client.ready()
        await client.stream(speech(500) + bytes(16000 * 2 // 2))
        started = await client.wait_for("bot-started-speaking", timeout=5)
        await asyncio.sleep(0.5)  # the bot talks for a while (its reply lasts ~7 s)
        assert client.kinds[started:].count("audio") >= 8
        sent = now()
        barge = asyncio.create_task(client.stream(speech(400) + bytes(16000 * 2 // 2)))
        cut = await client.wait_for("bot-interrupted", after=started, timeout=2)
        assert client.log[cut][0] - sent < 0.150, "the interruption reached the client within 150 ms"
        await barge
        assert "bot-stopped-speaking" in client.kinds[cut + 1 : cut + 4]
        # no audio of the cut turn: the next audio belongs to the answer to the barge-in
        next_turn = await client.wait_for("bot-started-speaking", after=cut, timeout=5)
        assert "audio" not in client.kinds[cut:next_turn]
        history_id = await client.send_rtvi("client-message", {"t": "history"})
        reply = client.log[await client.wait_for("server-response")][2]
        assert reply["id"] == history_id
        first_answer = reply["data"]["d"][1]
        assert first_answer["role"] == "assistant" and first_answer["interrupted"] is True
        assert 0 < len(first_answer["text"]) < len("This reply is long enough to be talked over. " * 4)


async def test_half_duplex_mutes_the_user_while_the_bot_speaks(profile: Path) -> None:
    async with running_server(config(profile, duplex="half")) as server, connect(server.ws_url) as client:
        await client.ready()
        await client.stream(speech(500) + bytes(16000 * 2 // 2))
        await client.wait_for("metrics", timeout=10)
        kinds = only(
            client.kinds, {"bot-started-speaking", "user-mute-started", "bot-stopped-speaking", "user-mute-stopped"}
        )
        assert kinds == ["bot-started-speaking", "user-mute-started", "bot-stopped-speaking", "user-mute-stopped"]
    async with running_server(config(profile)) as server, connect(server.ws_url) as client:  # full duplex
        await client.ready()
        await client.stream(speech(500) + bytes(16000 * 2 // 2))
        await client.wait_for("metrics", timeout=10)
        assert "user-mute-started" not in client.kinds


async def test_disconnect_bot_ends_the_conversation_and_the_ledger_row(profile: Path) -> None:
    ledger = SessionLedger()
    async with running_server(config(profile, ledger=ledger)) as server, connect(server.ws_url) as client:
        await client.ready()
        assert len(server.hub.connections) == 1
        await client.send_rtvi("disconnect-bot", {})
        code, _ = await client.closed()
        assert code == 1000
        await until(lambda: not server.hub.connections)
    (row,) = ledger.conversations()
    assert row.status == "ended" and row.ended_at is not None


# --- limits and bad input -----------------------------------------------------------------


async def test_bad_input_closes_that_connection_with_a_reason_and_nothing_else(profile: Path) -> None:
    async with running_server(config(profile, max_message_bytes=4096)) as server, connect(server.ws_url) as healthy:
        await healthy.ready()
        cases = [
            (b"\x12\x05\x1a", 1007, "malformed message"),
            (wire.encode(wire.MessageFrame("{not json")), 1007, "not valid JSON"),
            (wire.encode(wire.MessageFrame("[1, 2]")), 1007, "not an object"),
            (wire.encode(wire.AudioFrame(b"\x00" * 641, 16000, 1)), 1007, "16-bit samples"),
            ("a text message", 1003, "binary"),
            (wire.encode(wire.AudioFrame(bytes(6000), 16000, 1)), 1009, ""),
        ]
        for data, code, reason in cases:
            async with connect(server.ws_url) as bad:
                await bad.ready()
                await bad.ws.send(data)
                got_code, got_reason = await bad.closed()
                assert got_code == code, (data[:20], got_code, got_reason)
                assert reason in got_reason
                if code != 1009:  # an oversized message is cut off by the socket layer before the app sees it
                    assert reason in bad.messages("error")[-1]["data"]["error"]
                    assert bad.messages("error")[-1]["data"]["fatal"] is True
        await healthy.send_rtvi("send-text", {"content": "still here"})
        await healthy.wait_for("bot-llm-text")
        async with httpx.AsyncClient() as http:
            health = (await http.get(server.http_url + "/healthz")).json()
        assert health["status"] == "ok" and health["sessions"] == 1


async def test_too_many_sessions(profile: Path) -> None:
    async with running_server(config(profile, max_sessions=2)) as server:
        async with connect(server.ws_url) as one, connect(server.ws_url) as two:
            await one.ready()
            await two.ready()
            async with connect(server.ws_url) as third:
                code, reason = await third.closed()
                assert code == 1013 and "full" in reason
                error = third.messages("error")[0]["data"]
                assert error["fatal"] is True and "2 conversations" in error["error"]
        await until(lambda: not server.hub.connections)
        async with connect(server.ws_url) as again:  # the others left: room again
            await again.ready()


async def test_tokens(profile: Path, tmp_path: Path) -> None:
    token = "k3y-" + "x" * 28
    token_file = tmp_path / "tokens"
    token_file.write_text(f"# who may connect\n{token}\n")
    tokens = read_tokens(token_file)
    assert tokens == (token,)
    async with running_server(config(profile, tokens=tokens)) as server:
        for url, headers, status in [
            (server.ws_url, {}, 401),
            (server.ws_url + "?token=wrong-token-wrong-token", {}, 403),
            (server.ws_url, {"Authorization": "Bearer wrong-token-wrong-token"}, 403),
        ]:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with connect(url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == status
            assert b"token" in refused.value.response.body
        async with connect(server.ws_url + f"?token={token}") as client:
            await client.ready()
        async with connect(server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as client:
            await client.ready()
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(VoicekitError, match="shorter than 16"):
        read_tokens(tmp_path / "short")


async def test_web_origins_need_a_token_unless_local(profile: Path) -> None:
    async with running_server(config(profile, allowed_origins=("https://app.example",))) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(server.ws_url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        own = [f"http://{host}:{server.port}" for host in ("127.0.0.1", "localhost", "[::1]")]
        for origin in ("https://app.example", "HTTPS://App.Example:443", *own):
            async with connect(server.ws_url, origin=origin) as client:
                await client.ready()


async def test_dns_rebinding_does_not_pass_the_origin_check(profile: Path) -> None:
    """A page on a rebound name sends a Host that matches its Origin: neither counts, only the
    configured origins and this server's own loopback ones do."""
    async with running_server(config(profile)) as server:
        rebound = f"attacker.example:{server.port}"
        for origin, host in [
            (f"http://{rebound}", rebound),  # the Host header matches the Origin
            (f"http://localhost:{server.port + 1}", f"localhost:{server.port + 1}"),  # another local page
            ("http://localhost:5173", "localhost:5173"),
            ("null", f"127.0.0.1:{server.port}"),
        ]:
            with pytest.raises(websockets.InvalidStatus) as refused:
                # the URL's host is what the Host header says; the socket goes to 127.0.0.1 all the same
                async with connect(f"ws://{host}/ws", origin=origin, host="127.0.0.1", port=server.port):
                    pass
            assert refused.value.response.status_code == 403, origin
        async with connect(server.ws_url) as client:  # no Origin: not a browser page
            await client.ready()
    async with running_server(config(profile, allowed_origins=("http://localhost:5173",))) as server:
        async with connect(server.ws_url, origin="http://localhost:5173") as client:
            await client.ready()


def test_preflight_warns_of_a_missing_key_and_fails_on_a_bad_backend(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    (warning,) = preflight(load_profile("gemini-live"))
    assert "GEMINI_API_KEY" in warning and "every conversation will fail" in warning
    monkeypatch.setenv("GEMINI_API_KEY", "a-key")
    assert preflight(load_profile("gemini-live")) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm: {use: scripted, no_such_option: 1}\noutput: {use: scripted}\n")
    with pytest.raises(VoicekitError, match="no_such_option"):
        preflight(load_profile(str(bad)))


def test_listening_beyond_loopback_needs_a_token() -> None:
    check_exposure("127.0.0.1", ())
    check_exposure("::1", ())
    check_exposure("localhost", ())
    check_exposure("0.0.0.0", ("a-long-enough-token",))
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        with pytest.raises(VoicekitError, match="--token-file"):
            check_exposure(host, ())


async def test_idle_and_total_timeouts(profile: Path) -> None:
    async with running_server(config(profile, idle_timeout_s=0.4, session_timeout_s=1.2)) as server:
        async with connect(server.ws_url) as idle:
            await idle.ready()
            started = now()
            code, reason = await idle.closed()
            assert code == 1000 and "nothing received for 0.4 s" in reason
            assert 0.3 < now() - started < 1.0
            assert idle.messages("error")[-1]["data"]["fatal"] is True
        async with connect(server.ws_url) as busy:
            await busy.ready()
            streaming = asyncio.create_task(busy.stream(bytes(16000 * 2 * 3)))
            code, reason = await busy.closed()
            streaming.cancel()
            assert code == 1000 and "time limit of 1.2 s" in reason


async def test_a_profile_that_cannot_start_is_reported_to_the_client(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("llm: {use: scripted}\noutput: {use: no-such-voice}\n")
    async with running_server(config(broken)) as server, connect(server.ws_url) as client:
        await client.send_rtvi("client-ready", {"version": "2.1.0"})
        code, reason = await client.closed()
        assert code == 1011 and "could not start" in reason
        assert "no-such-voice" in client.messages("error")[0]["data"]["error"]


def test_page_and_health(profile: Path) -> None:
    async def check() -> None:
        async with running_server(config(profile)) as server, httpx.AsyncClient(base_url=server.http_url) as http:
            page = await http.get("/")
            assert page.status_code == 200 and "voicekit" in page.text and "app.js" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            script = await http.get("/app.js")
            assert script.headers["content-type"].startswith("text/javascript") and "rtvi-ai" in script.text
            assert (await http.get("/mic-worklet.js")).status_code == 200
            assert (await http.get("/frames.proto")).status_code == 404
            assert json.loads((await http.get("/healthz")).text)["max_sessions"] == 100

    asyncio.run(check())


# --- the command ----------------------------------------------------------------------------


def test_command_refuses_to_expose_keys_without_a_token(profile: Path) -> None:
    result = voicekit("serve", "--profile", str(profile), "--host", "0.0.0.0", "--port", "0", timeout=60)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without --token-file" in result.stderr
    result = voicekit("serve", "--profile", "no-such-profile", "--port", "0", timeout=60)
    assert result.returncode != 0 and "no-such-profile" in result.stderr


async def test_sigterm_closes_every_conversation_then_exits(profile: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from voicekit.cli import main; main()",
        "serve",
        "--profile",
        str(profile),
        "--port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert port, line
        url = f"ws://127.0.0.1:{port.group(1)}/ws"
        async with connect(url) as one, connect(url) as two:
            await one.ready()
            await two.ready()
            talking = asyncio.create_task(two.stream(speech(400) + bytes(16000 * 2)))
            await two.wait_for("user-started-speaking")
            proc.send_signal(signal.SIGTERM)
            for client in (one, two):
                code, reason = await client.closed(timeout=15)
                assert (code, reason) == (1001, "server shutting down")
                assert client.messages("error")[-1]["data"] == {"error": "server shutting down", "fatal": True}
            talking.cancel()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        rest = (await proc.stderr.read()).decode()
        assert "every conversation closed" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    rows = SessionLedger().conversations()
    assert len(rows) == 2 and {r.status for r in rows} == {"interrupted"} and all(r.ended_at for r in rows)


def test_help_lists_serve_and_imports_no_server_module() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "voicekit", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0 and "serve" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "typer" in imported  # the trace is there
    assert not {m for m in imported if m.split(".")[0] in ("starlette", "uvicorn", "websockets", "google")}
    assert not {m for m in imported if m.startswith("voicekit.serve")}
