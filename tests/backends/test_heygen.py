"""HeyGen Interactive Avatar output against the local fake service (tests/fakes/heygen.py).

What every avatar output does is in :class:`tests.fakes.avatar_base.AvatarBackendTests`
(run here as :class:`TestHeyGen`); the tests below are HeyGen's own: its wire bodies,
task timing, room messages and the replies captured from its docs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.avatar_base import AvatarBackendTests, MakeOutput, collect, feed, kinds
from tests.fakes.heygen import FakeHeyGen
from voicekit.errors import BackendError
from voicekit.events import SpeakingEnded, SpeakingStarted
from voicekit.ledger import RemoteSessions, SessionLedger
from voicekit.options import RetryPolicy
from voicekit.plugins.output.avatar.heygen import HeyGenOutput, HeyGenSessionManager
from voicekit.roles import BackendContext
from voicekit.testing.contracts import OutputContract

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "heygen"
KEY = "test-key"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def fake() -> Iterator[FakeHeyGen]:
    with FakeHeyGen(api_key=KEY, ms_per_char=4) as service:
        yield service  # type: ignore[misc]


@pytest.fixture
def ledger(tmp_path: Path) -> SessionLedger:
    return SessionLedger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def make(fake: FakeHeyGen, ledger: SessionLedger) -> MakeOutput:
    def make(*, retry: RetryPolicy | None = None, **options: Any) -> HeyGenOutput:
        opts = {"api_key": KEY, "base_url": fake.base_url, "connect_room": False, **options}
        context = BackendContext(language="en", conversation_id="c1", remote_sessions=RemoteSessions(ledger, "c1"))
        if retry is not None:
            context.retry = retry
        out = HeyGenOutput(HeyGenOutput.Options(**opts), context)
        out.name = "heygen"
        return out

    return make


class TestHeyGen(AvatarBackendTests):
    create_path, start_path, stop_path = "/v1/streaming.new", "/v1/streaming.start", "/v1/streaming.stop"
    manager_class = HeyGenSessionManager

    def limit_to_one_second(self, fake: Any) -> dict[str, Any]:
        fake.session_duration_limit = 1  # HeyGen says the limit when the session is made
        return {}


class TestHeyGenContract(OutputContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self, fake: FakeHeyGen, make: MakeOutput) -> AsyncIterator[HeyGenOutput]:
        fake.ms_per_char = 3
        async with make() as out:
            yield out  # type: ignore[misc]


def paths(fake: FakeHeyGen) -> list[str]:
    return [c.path.removeprefix("/v1/") for c in fake.calls]


async def test_full_rest_lifecycle(fake: FakeHeyGen, make: MakeOutput, ledger: SessionLedger) -> None:
    out = make(
        avatar_id="Abigail_standing_office_front",
        voice_id="v1",
        quality="low",
        emotion="Friendly",
        activity_idle_timeout_s=60,
    )
    async with out:
        sid = out.session_id
        assert sid is not None and fake.sessions[sid].status == "connected"
        rows = ledger.remote_sessions()
        assert [(r.backend, r.remote_id, r.state) for r in rows] == [("heygen", sid, "open")]
        assert rows[0].meta == {"avatar_id": "Abigail_standing_office_front", "url": "ws://127.0.0.1:9"}
        events = await collect(out, feed("Hello there.", "How are you today?"))
    assert kinds(events) == [
        ("SpeakingStarted", "Hello there."),
        ("SpeakingEnded", "Hello there."),
        ("SpeakingStarted", "How are you today?"),
        ("SpeakingEnded", "How are you today?"),
    ]
    assert paths(fake) == ["streaming.new", "streaming.start", "streaming.task", "streaming.task", "streaming.stop"]
    new = fake.calls_to("/v1/streaming.new")[0]
    assert new.headers["x-api-key"] == KEY
    assert new.body == {
        "version": "v2",
        "quality": "low",
        "avatar_id": "Abigail_standing_office_front",
        "voice": {"rate": 1.0, "voice_id": "v1", "emotion": "Friendly"},
        "video_encoding": "H264",
        "activity_idle_timeout": 60,
        "language": "en",
    }
    tasks = [c.body for c in fake.calls_to("/v1/streaming.task")]
    assert tasks == [
        {"session_id": sid, "text": "Hello there.", "task_type": "repeat", "task_mode": "async"},
        {"session_id": sid, "text": "How are you today?", "task_type": "repeat", "task_mode": "async"},
    ]
    assert fake.sessions[sid].stopped and ledger.remote_sessions() == []
    assert ledger.remote_sessions(include_closed=True)[0].state == "closed"


async def test_sentence_timing_follows_task_durations(fake: FakeHeyGen, make: MakeOutput) -> None:
    fake.ms_per_char = 20  # "Hello there." = 240 ms
    async with make() as out:
        t0 = time.monotonic()
        events = await collect(out, feed("Hello there.", "Bye."))
    started, ended = events[0], events[1]
    assert isinstance(started, SpeakingStarted) and isinstance(ended, SpeakingEnded)
    assert ended.t - started.t == pytest.approx(0.24, abs=0.06)
    assert events[3].t - t0 >= 0.24 + 0.08 - 0.02  # the second sentence is spoken after the first


async def test_first_task_is_sent_before_the_llm_finishes(fake: FakeHeyGen, make: MakeOutput) -> None:
    async def llm() -> AsyncIterator[str]:
        yield "First sentence."
        # the rest of the reply only comes once the avatar got the first sentence
        deadline = time.monotonic() + 5
        while not fake.calls_to("/v1/streaming.task"):
            assert time.monotonic() < deadline, "the first sentence was held back until the reply ended"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        yield "Second sentence."

    async with make() as out:
        events = await collect(out, llm())
    first, second = fake.calls_to("/v1/streaming.task")
    assert second.t - first.t >= 0.1
    assert [e.text for e in events if isinstance(e, SpeakingStarted)] == ["First sentence.", "Second sentence."]


async def test_interrupt_stops_the_avatar_and_the_turn(fake: FakeHeyGen, make: MakeOutput) -> None:
    fake.ms_per_char = 30
    async with make() as out:
        speech = out.speak(feed("A long first sentence that takes a while.", "Second.", "Third.", gap_s=0.05))
        first = await speech.__anext__()
        assert isinstance(first, SpeakingStarted)
        await out.interrupt()
        rest = [e async for e in speech]
        session = fake.sessions[out.session_id]  # type: ignore[index]
        assert session.interrupts == 1
        tasks_at_interrupt = len(session.tasks)
        await asyncio.sleep(0.2)
        assert len(session.tasks) == tasks_at_interrupt  # nothing sent after the interrupt
        assert not [e for e in rest if isinstance(e, SpeakingStarted)]
        # the next turn is spoken in full
        assert kinds(await collect(out, feed("Next turn."))) == [
            ("SpeakingStarted", "Next turn."),
            ("SpeakingEnded", "Next turn."),
        ]


async def test_a_task_to_an_expired_session_ends_the_turn(
    fake: FakeHeyGen, make: MakeOutput, ledger: SessionLedger
) -> None:
    fake.idle_timeout_s = 0.3
    async with make(keepalive_interval_s=100) as out:
        await asyncio.sleep(0.6)
        with pytest.raises(BackendError, match="has ended"):
            await collect(out, feed("Anyone?"))
        assert ledger.remote_sessions() == []  # the service says it is gone: closed
        with pytest.raises(BackendError, match="session ended: the service closed it"):
            await collect(out, feed("Again?"))


async def test_speaking_events_follow_the_rooms_signals(fake: FakeHeyGen, make: MakeOutput) -> None:
    rtc = pytest.importorskip("livekit.rtc")
    room = rtc.Room()  # not connected: we emit what HeyGen's avatar would send
    async with make() as out:
        out.attach_room(room)
        speech = out.speak(feed("Hello from the room."))
        next_event = asyncio.ensure_future(speech.__anext__())
        await asyncio.sleep(0.3)
        assert not next_event.done()  # the task's duration is long over, but the avatar has not started
        task_id = fake.sessions[out.session_id].tasks[0]["task_id"]  # type: ignore[index]

        def say(kind: str) -> None:
            payload = json.dumps({"type": kind, "task_id": task_id}).encode()
            room.emit(
                "data_received",
                rtc.DataPacket(data=payload, kind=rtc.DataPacketKind.KIND_RELIABLE, participant=None, topic=None),
            )

        say("avatar_start_talking")
        started = await asyncio.wait_for(next_event, 2)
        assert isinstance(started, SpeakingStarted)
        t_stop = time.monotonic()
        await asyncio.sleep(0.2)
        say("avatar_stop_talking")
        ended = await asyncio.wait_for(speech.__anext__(), 2)
        assert isinstance(ended, SpeakingEnded) and ended.t >= t_stop + 0.19


async def test_unreachable_room_only_warns_and_tasks_still_flow(
    fake: FakeHeyGen, make: MakeOutput, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("livekit.rtc")
    out = make(connect_room=True, room_timeout_s=3, record=True)
    out.context.record_dir = tmp_path / "rec"
    with caplog.at_level("INFO"):
        async with out:
            assert out.room is None and out.recorder is None
            events = await collect(out, feed("Hello without a room."))
    assert [type(e).__name__ for e in events] == ["SpeakingStarted", "SpeakingEnded"]
    assert "could not join the avatar's LiveKit room ws://127.0.0.1:9" in caplog.text
    assert "video is not recorded" in caplog.text
    assert "watch the avatar: https://meet.livekit.io/custom?" in caplog.text
    assert not (tmp_path / "rec" / "avatar.mp4").exists()
    assert fake.active() == []


async def test_keep_alive_body_is_the_documented_one(fake: FakeHeyGen, make: MakeOutput) -> None:
    async with make(keepalive_interval_s=0.05) as out:
        await asyncio.sleep(0.2)
    documented = sample("streaming_keep_alive.request.docs-best-practices.json")
    body = fake.calls_to("/v1/streaming.keep_alive")[0].body
    assert body.keys() == documented.keys() and body["session_id"] == out.session_id


# --- replies captured from HeyGen's docs -------------------------------------------------


async def test_captured_avatar_not_found_reply_is_understood(fake: FakeHeyGen, make: MakeOutput) -> None:
    fake.inject("/v1/streaming.new", 400, sample("error.avatar_not_found.docs-forum.json"))
    with pytest.raises(BackendError, match=r"output\.avatar_id"):
        async with make(avatar_id="Abigail_standing_office_front"):
            pass


@pytest.mark.parametrize(
    "name", ["error.avatar_version_deprecated.signaling.docs.json", "error.avatar_version_deprecated.media.docs.json"]
)
async def test_deprecated_avatar_version_is_one_clear_line(fake: FakeHeyGen, make: MakeOutput, name: str) -> None:
    fake.inject("/v1/streaming.new", 400, sample(name))
    with pytest.raises(BackendError, match=r"(?i)avatar version is deprecated") as caught:
        async with make():
            pass
    assert "\n" not in str(caught.value) and str(sample(name)["code"]) in str(caught.value)


async def test_captured_invalid_params_of_a_start_stops_the_session(
    fake: FakeHeyGen, make: MakeOutput, ledger: SessionLedger
) -> None:
    fake.inject("/v1/streaming.start", 400, sample("error.invalid_params.streaming_start.docs-forum.json"))
    with pytest.raises(BackendError, match=r"streaming\.start failed \(HTTP 400, code 400006\): Invalid params"):
        async with make():
            pass
    [session] = fake.sessions.values()
    assert session.stopped and ledger.remote_sessions() == []


async def test_captured_new_session_reply_is_understood(
    fake: FakeHeyGen, make: MakeOutput, ledger: SessionLedger
) -> None:
    data = sample("streaming_new.response.data.docs-sdk-reference.json")
    fake.inject("/v1/streaming.new", 200, {"code": 100, "message": "success", "data": data})
    fake.inject("/v1/streaming.start", 200, {"code": 100, "message": "success", "data": None})
    async with make() as out:
        assert out.session_id == "eba59f0d-71f5-11ef-b8af-d2e5560124bc"
        assert out.room_url == "wss://heygen-feapbkvq.livekit.cloud"
    # the fake never knew this session: its 400004 counts as closed
    assert fake.calls_to("/v1/streaming.stop")[0].status == 400
    assert ledger.remote_sessions() == []


async def test_manager_reads_the_captured_list_reply(fake: FakeHeyGen) -> None:
    fake.inject("/v1/streaming.list", 200, sample("streaming_list.response.docs-forum.json"))
    fake.inject("/v1/streaming.stop", 400, sample("error.streaming_stop.session_does_not_exist.docs-forum.json"))
    manager = HeyGenSessionManager(api_key=KEY, base_url=fake.base_url)
    [info] = await manager.list_active()
    assert (info.remote_id, info.status, info.created_at) == (
        "c1c484e3-be61-11ef-b598-3231faa3f986",
        "connected",
        1734651255.0,
    )
    assert await manager.close(info.remote_id)  # "does not exist" counts as closed
    await manager.aclose()


async def test_fake_rejects_a_task_before_start_and_a_second_stop(fake: FakeHeyGen) -> None:
    headers = {"x-api-key": KEY}
    async with httpx.AsyncClient(base_url=fake.base_url, headers=headers) as client:
        body = sample("streaming_new.request.docs-forum-avatar-not-found.json")
        sid = (await client.post("/v1/streaming.new", json=body)).json()["data"]["session_id"]
        task = {**sample("streaming_task.request.docs-forum.json"), "session_id": sid}
        reply = await client.post("/v1/streaming.task", json=task)
        assert (reply.status_code, reply.json()) == (400, sample("error.session_not_in_correct_state.docs-forum.json"))
        assert (await client.post("/v1/streaming.stop", json={"session_id": sid})).json()["code"] == 100
        again = await client.post("/v1/streaming.stop", json={"session_id": sid})
        assert again.status_code == 400 and again.json()["code"] == 400004
        assert again.json()["message"] == f"Session does not exist. SessionID: {sid}"
