"""LiveAvatar output (FULL and LITE) against the local fake service (tests/fakes/liveavatar.py).

What every avatar output does is in :class:`tests.fakes.avatar_base.AvatarBackendTests`,
run here in both modes; the tests below are LiveAvatar's own. No LiveKit server runs
here: FULL mode's data channel is exercised with an unconnected ``rtc.Room`` (incoming
events via ``room.emit``) and the command encoding directly; the REST lifecycle and LITE
mode's websocket are tested for real against the fake.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.fakes.avatar_base import AvatarBackendTests, MakeOutput, collect, feed, kinds
from tests.fakes.liveavatar import FakeLiveAvatar
from voicekit.errors import BackendError
from voicekit.events import AudioOut, SpeakingEnded, SpeakingStarted
from voicekit.ledger import RemoteSessions, SessionLedger
from voicekit.options import RetryPolicy
from voicekit.plugins.output.avatar.liveavatar import LiveAvatarOutput, LiveAvatarSessionManager, command
from voicekit.roles import BackendContext
from voicekit.testing.contracts import OutputContract

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "heygen"
KEY = "test-key"
AVATAR = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
# the LITE voice: a tone of 10 ms per character at 16 kHz, so resampling to 24 kHz is exercised
VOICE = {"use": "scripted", "sample_rate": 16000, "ms_per_char": 10}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def fake() -> Iterator[FakeLiveAvatar]:
    with FakeLiveAvatar(api_key=KEY, speed=4.0) as service:
        yield service  # type: ignore[misc]


@pytest.fixture
def ledger(tmp_path: Path) -> SessionLedger:
    return SessionLedger(tmp_path / "ledger.sqlite3")


def output_maker(fake: FakeLiveAvatar, ledger: SessionLedger, mode: str) -> MakeOutput:
    """FULL mode (no room: sentences timed by estimate, not waited for) or LITE with ``VOICE``."""

    def make(*, retry: RetryPolicy | None = None, fast: bool | None = None, **options: Any) -> LiveAvatarOutput:
        mode_options: dict[str, Any] = {"mode": mode, "tts": VOICE} if mode == "LITE" else {}
        opts = {"api_key": KEY, "base_url": fake.base_url, "avatar_id": AVATAR, "connect_room": False}
        context = BackendContext(
            language="en",
            conversation_id="c1",
            remote_sessions=RemoteSessions(ledger, "c1"),
            fast=mode == "FULL" if fast is None else fast,
        )
        if retry is not None:
            context.retry = retry
        out = LiveAvatarOutput(LiveAvatarOutput.Options(**{**opts, **mode_options, **options}), context)
        out.name = "liveavatar"
        return out

    return make


@pytest.fixture
def make(fake: FakeLiveAvatar, ledger: SessionLedger) -> MakeOutput:
    return output_maker(fake, ledger, "FULL")


@pytest.fixture
def lite(fake: FakeLiveAvatar, ledger: SessionLedger) -> MakeOutput:
    return output_maker(fake, ledger, "LITE")


class TestLiveAvatarFull(AvatarBackendTests):
    create_path, start_path, stop_path = "/v1/sessions/token", "/v1/sessions/start", "/v1/sessions/stop"
    manager_class = LiveAvatarSessionManager

    def limit_to_one_second(self, fake: Any) -> dict[str, Any]:
        return {"max_session_duration_s": 1}


class TestLiveAvatarLite(TestLiveAvatarFull):
    """The same, with our voice over the session websocket (keep-alive and expiry go through it)."""

    @pytest.fixture
    def make(self, lite: MakeOutput) -> MakeOutput:
        return lite


class TestLiveAvatarLiteContract(OutputContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self, fake: FakeLiveAvatar, lite: MakeOutput) -> AsyncIterator[LiveAvatarOutput]:
        fake.speed = 8.0
        async with lite() as out:
            yield out  # type: ignore[misc]


class TestLiveAvatarFullContract(OutputContract):
    """FULL mode without a room: the REST session and the sentence framing."""

    timeout_s = 10.0

    @pytest.fixture
    async def backend(self, make: MakeOutput) -> AsyncIterator[LiveAvatarOutput]:
        async with make() as out:
            yield out  # type: ignore[misc]


# --- FULL mode --------------------------------------------------------------------------


async def test_full_mode_rest_lifecycle(fake: FakeLiveAvatar, make: MakeOutput, ledger: SessionLedger) -> None:
    options = {"voice_id": "v-1", "context_id": "ctx-1", "quality": "medium", "max_session_duration_s": 600}
    out = make(**options, keepalive_interval_s=0.1)
    async with out:
        sid = out.session_id
        assert sid is not None and fake.sessions[sid].state == "started"
        assert [(r.backend, r.remote_id, r.state) for r in ledger.remote_sessions()] == [("liveavatar", sid, "open")]
        events = await collect(out, feed("Hello there.", "How are you?"))
        await asyncio.sleep(0.25)
    assert kinds(events) == [
        ("SpeakingStarted", "Hello there."),
        ("SpeakingEnded", "Hello there."),
        ("SpeakingStarted", "How are you?"),
        ("SpeakingEnded", "How are you?"),
    ]
    token, start = fake.calls_to("/v1/sessions/token")[0], fake.calls_to("/v1/sessions/start")[0]
    assert token.headers["X-API-KEY"] == KEY
    assert token.body == {
        "mode": "FULL",
        "avatar_id": AVATAR,
        "is_sandbox": False,
        "video_settings": {"quality": "medium", "encoding": "H264"},
        "avatar_persona": {"voice_id": "v-1", "context_id": "ctx-1", "language": "en"},
        "max_session_duration": 600,
    }
    documented = sample("liveavatar.sessions_token.request.docs.json")
    assert set(token.body) <= set(documented)  # only fields the API documents
    assert set(token.body["avatar_persona"]) <= set(documented["avatar_persona"])
    assert start.headers["Authorization"] == f"Bearer {fake.sessions[sid].token}"
    assert fake.sessions[sid].keepalives >= 1
    stop = fake.calls_to("/v1/sessions/stop")
    documented_stop = sample("liveavatar.sessions_stop.request.docs.json")
    assert len(stop) == 1 and stop[0].body == {"session_id": sid, **documented_stop}
    assert fake.sessions[sid].state == "stopped" and ledger.remote_sessions() == []


async def test_full_mode_needs_the_room_when_asked_to_join_it(
    fake: FakeLiveAvatar, make: MakeOutput, ledger: SessionLedger
) -> None:
    pytest.importorskip("livekit.rtc")
    with pytest.raises(BackendError, match=r"FULL mode needs the avatar's LiveKit room.*output\.mode: LITE"):
        async with make(connect_room=True, room_timeout_s=3):
            pass
    [session] = fake.sessions.values()
    assert session.state == "stopped" and ledger.remote_sessions() == []


def test_full_mode_commands_are_encoded_as_documented() -> None:
    speak = json.loads(command("avatar.speak_text", "s-1", text="Привет, мир."))
    assert speak["event_type"] == "avatar.speak_text" and speak["session_id"] == "s-1"
    assert speak["text"] == "Привет, мир." and len(speak["event_id"]) == 32
    assert "Привет".encode() in command("avatar.speak_text", "s-1", text="Привет")  # UTF-8, not \\u escapes
    interrupt = json.loads(command("avatar.interrupt", "s-1"))
    assert set(interrupt) == {"event_id", "event_type", "session_id"}


async def test_full_mode_speaking_follows_the_rooms_events(make: MakeOutput) -> None:
    rtc = pytest.importorskip("livekit.rtc")
    room = rtc.Room()  # unconnected: we emit what the avatar would publish on agent-response

    def publish(event_type: str, topic: str = "agent-response") -> None:
        payload = json.dumps({"event_id": "e", "event_type": event_type, "session_id": "s"}).encode()
        room.emit(
            "data_received",
            rtc.DataPacket(data=payload, kind=rtc.DataPacketKind.KIND_RELIABLE, participant=None, topic=topic),
        )

    async with make(fast=False) as out:
        out.attach_room(room)
        speech = out.speak(feed("Hi."))
        pending = asyncio.ensure_future(speech.__anext__())
        publish("avatar.speak_started", topic="agent-control")  # not the avatar's topic: ignored
        await asyncio.sleep(0.3)
        assert not pending.done()
        t_start = time.monotonic()
        publish("avatar.speak_started")
        started = await asyncio.wait_for(pending, 2)
        assert isinstance(started, SpeakingStarted) and started.t >= t_start
        await asyncio.sleep(0.5)  # longer than the estimate for "Hi.": the avatar's event decides
        t_end = time.monotonic()
        publish("avatar.speak_ended")
        ended = await asyncio.wait_for(speech.__anext__(), 2)
        assert isinstance(ended, SpeakingEnded) and ended.t >= t_end
        publish("session.stopped")
        await asyncio.sleep(0)
        with pytest.raises(BackendError, match="stopped it"):
            await collect(out, feed("Again."))


# --- LITE mode: our voice over the websocket --------------------------------------------


async def test_lite_mode_streams_our_voice_at_24k(fake: FakeLiveAvatar, lite: MakeOutput) -> None:
    async with lite(chunk_ms=200) as out:
        sid = out.session_id
        assert sid is not None
        t0 = time.monotonic()
        events = await collect(out, feed("Hello there.", "How are you today?"))
        elapsed = time.monotonic() - t0
    assert kinds(events) == [
        ("SpeakingStarted", "Hello there."),
        ("SpeakingEnded", "Hello there."),
        ("SpeakingStarted", "How are you today?"),
        ("SpeakingEnded", "How are you today?"),
    ]
    session = fake.sessions[sid]
    assert fake.calls_to("/v1/sessions/token")[0].body["mode"] == "LITE"
    first, second = session.events
    # 12 and 18 characters at 10 ms each, resampled from 16 kHz to 24 kHz
    assert len(first.audio) / 2 / 24000 == pytest.approx(0.12, abs=0.005)
    assert len(second.audio) / 2 / 24000 == pytest.approx(0.18, abs=0.005)
    assert first.ended and second.ended and first.event_id != second.event_id
    assert np.abs(np.frombuffer(bytes(first.audio), dtype=np.int16)).max() > 4000  # the tone, not silence
    sent = [m for m in session.ws_messages if m["type"] in ("agent.speak", "agent.speak_end")]
    assert [m["type"] for m in sent if m["event_id"] == first.event_id][-1] == "agent.speak_end"
    assert elapsed >= (0.12 + 0.18) / 4 - 0.02  # the fake plays at 4x: the avatar's signals were waited for
    assert session.state == "stopped"


async def test_lite_mode_chunks_stay_within_chunk_ms(fake: FakeLiveAvatar, lite: MakeOutput) -> None:
    async with lite(chunk_ms=50) as out:
        await collect(out, feed("A sentence of some length, long enough for several chunks."))
        session = fake.sessions[out.session_id]  # type: ignore[index]
    [event] = session.events
    assert event.chunks >= 10
    speaks = [c for c in fake.calls if c.path.startswith("/v1/ws")]
    assert len(speaks) == 1  # one websocket for the whole session


async def test_lite_mode_local_audio(lite: MakeOutput) -> None:
    async with lite(local_audio=True) as out:
        events = await collect(out, feed("Hello."))
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert isinstance(events[0], SpeakingStarted) and isinstance(events[-1], SpeakingEnded)
    assert audio and all(e.sample_rate == 24000 for e in audio)
    assert sum(len(e.pcm) for e in audio) / 2 / 24000 == pytest.approx(0.06, abs=0.005)


async def test_lite_mode_interrupt(fake: FakeLiveAvatar, lite: MakeOutput) -> None:
    fake.speed = 1.0
    async with lite() as out:
        speech = out.speak(feed("The first sentence is long enough to be cut off.", "Second.", "Third."))
        assert isinstance(await speech.__anext__(), SpeakingStarted)
        await out.interrupt()
        rest = [e async for e in speech]
        assert not [e for e in rest if isinstance(e, SpeakingStarted)]
        session = fake.sessions[out.session_id]  # type: ignore[index]
        await asyncio.sleep(0.05)
        assert session.interrupts == 1
        assert session.ws_messages[-1]["type"] == "agent.interrupt"
        assert kinds(await collect(out, feed("Next turn."))) == [
            ("SpeakingStarted", "Next turn."),
            ("SpeakingEnded", "Next turn."),
        ]


async def test_lite_keep_alive_goes_over_the_websocket(fake: FakeLiveAvatar, lite: MakeOutput) -> None:
    async with lite(keepalive_interval_s=0.1) as out:
        await asyncio.sleep(0.35)
        session = fake.sessions[out.session_id]  # type: ignore[index]
    assert session.ws_keepalives >= 2 and session.keepalives == 0


async def test_lite_mode_needs_a_voice(fake: FakeLiveAvatar, lite: MakeOutput) -> None:
    with pytest.raises(BackendError, match=r"LITE mode needs a voice: set output\.tts"):
        async with lite(tts={"use": "liveavatar"}):
            pass
    assert fake.calls == []


# --- LiveAvatar's own errors --------------------------------------------------------------


async def test_missing_avatar_id_fails_before_any_call(fake: FakeLiveAvatar, make: MakeOutput) -> None:
    with pytest.raises(BackendError, match=r"output\.avatar_id"):
        async with make(avatar_id=None):
            pass
    assert fake.calls == []


async def test_too_long_a_session_names_the_option(make: MakeOutput) -> None:
    with pytest.raises(BackendError, match=r"output\.max_session_duration_s"):
        async with make(max_session_duration_s=5000):
            pass


# --- replies captured from LiveAvatar's docs ------------------------------------------------


async def test_captured_token_reply_is_understood(
    fake: FakeLiveAvatar, make: MakeOutput, ledger: SessionLedger
) -> None:
    fake.inject("/v1/sessions/token", 200, sample("liveavatar.sessions_token.response.docs.json"))
    fake.inject("/v1/sessions/stop", 200, sample("liveavatar.sessions_stop.response.docs.json"))
    with pytest.raises(BackendError, match=r"sessions/start failed \(HTTP 401"):
        async with make():
            pass
    start = fake.calls_to("/v1/sessions/start")[0]
    assert start.headers["Authorization"] == "Bearer <string>"
    assert fake.calls_to("/v1/sessions/stop")[0].body["session_id"] == AVATAR  # the sample's session_id
    assert ledger.remote_sessions() == []


async def test_fake_takes_the_documented_token_request(fake: FakeLiveAvatar) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        body = sample("liveavatar.sessions_token.request.docs.json")
        reply = await client.post("/v1/sessions/token", json=body, headers={"X-API-KEY": KEY})
        assert reply.status_code == 200 and reply.json()["code"] == 100
        token = reply.json()["data"]["session_token"]
        stop = sample("liveavatar.sessions_stop.request.docs.json")  # by session token: no session_id needed
        reply = await client.post("/v1/sessions/stop", json=stop, headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 200
        again = await client.post("/v1/sessions/stop", json=stop, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 400 and again.json()["code"] == 400004


async def test_the_manager_asks_for_active_sessions(fake: FakeLiveAvatar) -> None:
    manager = LiveAvatarSessionManager(api_key=KEY, base_url=fake.base_url)
    try:
        assert await manager.list_active() == []
    finally:
        await manager.aclose()
    assert fake.calls_to("/v1/sessions")[-1].query == {"type": "active"}
