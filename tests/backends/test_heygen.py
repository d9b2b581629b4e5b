"""HeyGen Interactive Avatar output against the local fake service (tests/fakes/heygen.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.heygen import FakeHeyGen
from voicekit.errors import AuthError, BackendError
from voicekit.events import SpeakingEnded, SpeakingStarted
from voicekit.ledger import RemoteSessions, SessionLedger
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


def make(fake: FakeHeyGen, ledger: SessionLedger, **options: Any) -> HeyGenOutput:
    opts = {"api_key": KEY, "base_url": fake.base_url, "connect_room": False, **options}
    context = BackendContext(language="en", conversation_id="c1", remote_sessions=RemoteSessions(ledger, "c1"))
    out = HeyGenOutput(HeyGenOutput.Options(**opts), context)
    out.name = "heygen"
    return out


async def feed(*sentences: str, gap_s: float = 0.0) -> AsyncIterator[str]:
    for s in sentences:
        yield s
        if gap_s:
            await asyncio.sleep(gap_s)


async def collect(out: HeyGenOutput, sentences: AsyncIterator[str]) -> list[Any]:
    return [e async for e in out.speak(sentences)]


def paths(fake: FakeHeyGen) -> list[str]:
    return [c.path.removeprefix("/v1/") for c in fake.calls]


async def test_full_rest_lifecycle(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    out = make(
        fake,
        ledger,
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
        events = await collect(out, feed("Hello there.", "How are you today?"))
    assert [(type(e).__name__, e.text) for e in events] == [
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
    assert fake.sessions[sid].status == "closed" and fake.sessions[sid].closed_reason == "stopped"
    assert ledger.remote_sessions() == []
    assert ledger.remote_sessions(include_closed=True)[0].state == "closed"
    await out.aclose()  # twice: nothing more is sent
    assert paths(fake)[-1] == "streaming.stop" and len(fake.calls_to("/v1/streaming.stop")) == 1


async def test_sentence_timing_follows_task_durations(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.ms_per_char = 20  # "Hello there." = 240 ms
    async with make(fake, ledger) as out:
        t0 = time.monotonic()
        events = await collect(out, feed("Hello there.", "Bye."))
    started, ended = events[0], events[1]
    assert isinstance(started, SpeakingStarted) and isinstance(ended, SpeakingEnded)
    assert ended.t - started.t == pytest.approx(0.24, abs=0.06)
    assert events[3].t - t0 >= 0.24 + 0.08 - 0.02  # the second sentence is spoken after the first


async def test_first_task_is_sent_before_the_llm_finishes(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    async def llm() -> AsyncIterator[str]:
        yield "First sentence."
        # the rest of the reply only comes once the avatar got the first sentence
        deadline = time.monotonic() + 5
        while not fake.calls_to("/v1/streaming.task"):
            assert time.monotonic() < deadline, "the first sentence was held back until the reply ended"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        yield "Second sentence."

    async with make(fake, ledger) as out:
        events = await collect(out, llm())
    first, second = fake.calls_to("/v1/streaming.task")
    assert second.t - first.t >= 0.1
    assert [e.text for e in events if isinstance(e, SpeakingStarted)] == ["First sentence.", "Second sentence."]


async def test_interrupt_stops_the_avatar_and_the_turn(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.ms_per_char = 30
    async with make(fake, ledger) as out:
        speech = out.speak(feed("A long first sentence that takes a while.", "Second.", "Third.", gap_s=0.05))
        first = await speech.__anext__()
        assert isinstance(first, SpeakingStarted)
        await out.interrupt()
        rest = [e async for e in speech]
        sid = out.session_id
        assert sid is not None
        assert fake.sessions[sid].interrupts == 1
        tasks_at_interrupt = len(fake.sessions[sid].tasks)
        await asyncio.sleep(0.2)
        assert len(fake.sessions[sid].tasks) == tasks_at_interrupt  # nothing sent after the interrupt
        assert not [e for e in rest if isinstance(e, SpeakingStarted)]
        # the next turn is spoken in full
        events = await collect(out, feed("Next turn."))
        assert [type(e).__name__ for e in events] == ["SpeakingStarted", "SpeakingEnded"]


async def test_keep_alive_holds_an_idle_session(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.idle_timeout_s = 0.6
    async with make(fake, ledger, keepalive_interval_s=0.15) as out:
        await asyncio.sleep(1.5)
        assert out.session_id is not None
        session = fake.sessions[out.session_id]
        assert session.status == "connected" and session.keepalives >= 5
        events = await collect(out, feed("Still here."))
        assert len(events) == 2
    assert session.closed_reason == "stopped"


async def test_without_keep_alive_the_session_expires(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.idle_timeout_s = 0.4
    async with make(fake, ledger, keepalive_interval_s=100) as out:
        await asyncio.sleep(0.7)
        with pytest.raises(BackendError, match="has ended"):
            await collect(out, feed("Anyone?"))
    assert ledger.remote_sessions() == []  # a stop of the gone session counts as closed


async def test_rate_limited_calls_are_retried_after_retry_after(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.rate_limit("/v1/streaming.new", times=2, retry_after=0.15)
    fake.rate_limit("/v1/streaming.task", times=1, retry_after=0.1)
    t0 = time.monotonic()
    async with make(fake, ledger) as out:
        assert time.monotonic() - t0 >= 0.3
        events = await collect(out, feed("Hi."))
    assert [c.status for c in fake.calls_to("/v1/streaming.new")] == [429, 429, 200]
    assert [c.status for c in fake.calls_to("/v1/streaming.task")] == [429, 200]
    assert len(events) == 2


async def test_rate_limit_that_does_not_end_is_a_clear_error(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.rate_limit("/v1/streaming.new", times=10, retry_after=0.01)
    with pytest.raises(BackendError, match="rate limited") as caught:
        async with make(fake, ledger):
            pass
    assert caught.value.retryable
    assert len(fake.calls_to("/v1/streaming.new")) == 3  # the role's retry policy: 3 attempts
    assert ledger.remote_sessions() == []


async def test_unknown_avatar_names_the_option(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    with pytest.raises(BackendError, match=r"avatar 'nobody' not found .*output\.avatar_id") as caught:
        async with make(fake, ledger, avatar_id="nobody"):
            pass
    assert "\n" not in str(caught.value)
    assert ledger.remote_sessions() == []


async def test_captured_avatar_not_found_reply_is_understood(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.inject("/v1/streaming.new", 400, sample("error.avatar_not_found.docs-forum.json"))
    with pytest.raises(BackendError, match=r"output\.avatar_id"):
        async with make(fake, ledger, avatar_id="Abigail_standing_office_front"):
            pass


async def test_rejected_key_names_the_env_var(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    out = HeyGenOutput(
        HeyGenOutput.Options(api_key="wrong", base_url=fake.base_url, connect_room=False),
        BackendContext(remote_sessions=RemoteSessions(ledger)),
    )
    with pytest.raises(AuthError, match="HEYGEN_API_KEY"):
        await out.start()
    await out.aclose()
    assert ledger.remote_sessions() == []


async def test_concurrency_limit_points_to_sessions_close(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    outs = [make(fake, ledger) for _ in range(3)]
    for out in outs:
        await out.start()
    try:
        with pytest.raises(BackendError, match="sessions close --stale"):
            async with make(fake, ledger):
                pass
    finally:
        for out in outs:
            await out.aclose()
    assert fake.active() == []


async def test_session_closed_when_speak_raises(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    async def broken_llm() -> AsyncIterator[str]:
        yield "One."
        raise RuntimeError("the LLM broke")

    with pytest.raises(RuntimeError, match="the LLM broke"):
        async with make(fake, ledger) as out:
            await collect(out, broken_llm())
    assert fake.active() == [] and ledger.remote_sessions() == []


async def test_session_closed_when_cancelled_mid_speak(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.ms_per_char = 50
    started = asyncio.Event()

    async def conversation() -> None:
        async with make(fake, ledger) as out:
            async for _event in out.speak(feed("This takes a couple of seconds to say.")):
                started.set()

    task = asyncio.ensure_future(conversation())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.active() == [] and ledger.remote_sessions() == []


async def test_session_closed_when_cancelled_while_being_created(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.delays["/v1/streaming.new"] = 0.4
    out = make(fake, ledger)
    task = asyncio.ensure_future(out.start())
    await asyncio.sleep(0.15)  # the create request is on the service now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await out.aclose()
    assert len(fake.sessions) == 1 and fake.active() == []
    assert ledger.remote_sessions() == []


async def test_engine_backstop_closes_what_the_backend_left(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    sessions = RemoteSessions(ledger, "c2")
    out = HeyGenOutput(
        HeyGenOutput.Options(api_key=KEY, base_url=fake.base_url, connect_room=False),
        BackendContext(remote_sessions=sessions),
    )
    await out.start()
    closed = await sessions.close_all()  # what the engine does on every exit path
    assert closed == [out.session_id] and fake.active() == []
    await out.aclose()
    assert len(fake.calls_to("/v1/streaming.stop")) == 1


async def test_session_duration_limit_ends_the_session_first(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.session_duration_limit = 1
    async with make(fake, ledger) as out:
        await asyncio.sleep(1.1)
        assert out.session_id is not None
        assert fake.sessions[out.session_id].closed_reason == "stopped"
        assert ledger.remote_sessions() == []
        with pytest.raises(BackendError, match="duration limit"):
            await collect(out, feed("Too late."))


async def test_speaking_events_follow_the_rooms_signals(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    rtc = pytest.importorskip("livekit.rtc")
    room = rtc.Room()  # not connected: we emit what HeyGen's avatar would send
    async with make(fake, ledger) as out:
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


async def test_manager_lists_and_closes_idempotently(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    manager = HeyGenSessionManager(api_key=KEY, base_url=fake.base_url)
    async with make(fake, ledger) as out:
        listed = await manager.list_active()
        assert [(s.backend, s.remote_id, s.status) for s in listed] == [("heygen", out.session_id, "connected")]
        assert await manager.close(out.session_id)  # type: ignore[arg-type]
        assert await manager.close(out.session_id)  # type: ignore[arg-type]  # gone = closed
        assert await manager.list_active() == []
    await manager.aclose()


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


async def test_captured_new_session_reply_is_understood(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    data = sample("streaming_new.response.data.docs-sdk-reference.json")
    fake.inject("/v1/streaming.new", 200, {"code": 100, "message": "success", "data": data})
    fake.inject("/v1/streaming.start", 200, {"code": 100, "message": "success", "data": None})
    async with make(fake, ledger) as out:
        assert out.session_id == "eba59f0d-71f5-11ef-b8af-d2e5560124bc"
        assert out.room_url == "wss://heygen-feapbkvq.livekit.cloud"
    # the fake never knew this session: its 400004 counts as closed
    assert fake.calls_to("/v1/streaming.stop")[0].status == 400
    assert ledger.remote_sessions() == []


def test_manager_without_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEYGEN_API_KEY", raising=False)
    from voicekit.errors import MissingSecretError

    with pytest.raises(MissingSecretError, match="HEYGEN_API_KEY"):
        asyncio.run(HeyGenSessionManager().list_active())


class TestHeyGenContract(OutputContract):
    timeout_s = 10.0

    @pytest.fixture
    async def backend(self, fake: FakeHeyGen, ledger: SessionLedger) -> AsyncIterator[HeyGenOutput]:
        fake.ms_per_char = 3
        async with make(fake, ledger) as out:
            yield out


async def test_failed_start_still_stops_the_created_session(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    fake.inject("/v1/streaming.start", 400, sample("error.invalid_params.streaming_start.docs-forum.json"))
    with pytest.raises(BackendError, match="Invalid params"):
        async with make(fake, ledger):
            pass
    [session] = fake.sessions.values()
    assert session.closed_reason == "stopped" and ledger.remote_sessions() == []


@pytest.mark.parametrize(
    "name", ["error.avatar_version_deprecated.signaling.docs.json", "error.avatar_version_deprecated.media.docs.json"]
)
async def test_deprecated_avatar_version_is_one_clear_line(fake: FakeHeyGen, ledger: SessionLedger, name: str) -> None:
    fake.inject("/v1/streaming.new", 400, sample(name))
    with pytest.raises(BackendError, match=r"(?i)avatar version is deprecated") as caught:
        async with make(fake, ledger):
            pass
    assert "\n" not in str(caught.value) and str(sample(name)["code"]) in str(caught.value)


async def test_keep_alive_body_is_the_documented_one(fake: FakeHeyGen, ledger: SessionLedger) -> None:
    async with make(fake, ledger, keepalive_interval_s=0.05) as out:
        await asyncio.sleep(0.2)
    documented = sample("streaming_keep_alive.request.docs-best-practices.json")
    body = fake.calls_to("/v1/streaming.keep_alive")[0].body
    assert body.keys() == documented.keys() and body["session_id"] == out.session_id


async def test_unreachable_room_only_warns_and_tasks_still_flow(
    fake: FakeHeyGen,
    ledger: SessionLedger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("livekit.rtc")
    out = make(fake, ledger, connect_room=True, room_timeout_s=3, record=True)
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
