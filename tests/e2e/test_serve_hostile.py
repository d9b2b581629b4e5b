"""``voicekit serve`` against hostile and careless clients: every limit holds, and a
connection that crosses one ends alone, cleanly, with a close code that says why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.serve_helpers import connect, running_server, speech, write_profile
from voicekit.clock import now
from voicekit.ledger.ledger import SessionLedger
from voicekit.serve import wire
from voicekit.serve.config import ServeConfig


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return write_profile(tmp_path)


def limits(**kwargs: Any) -> Any:
    from voicekit.serve.limits import ServeLimits  # imported here: the module is new, the other tests run without it

    return ServeLimits(**kwargs)


def config(profile: Path, **kwargs: Any) -> ServeConfig:
    kwargs.setdefault("ledger", SessionLedger())
    return ServeConfig(profile=str(profile), **kwargs)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, "timed out"
        await asyncio.sleep(0.02)


def rtvi(kind: str, data: Any = None, id_: Any = "x") -> bytes:
    return wire.encode(wire.MessageFrame(json.dumps({"label": "rtvi-ai", "type": kind, "id": id_, "data": data})))


async def health(server: Any) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        return (await http.get(server.http_url + "/healthz")).json()  # type: ignore[no-any-return]


# --- malformed JSON ---------------------------------------------------------------------------


async def test_a_deep_or_huge_message_closes_its_connection_with_1007_and_nothing_leaks(profile: Path) -> None:
    """JSON nesting 100,000 brackets, an id or a number of 5,000 digits: each closes its own
    connection with 1007 through the one cleanup (row closed, out of /healthz and the limit)."""
    ledger = SessionLedger()
    bad = [
        (wire.encode(wire.MessageFrame("[" * 100_000)), "of 100000 characters is over the limit of 65536"),
        (wire.encode(wire.MessageFrame("[" * 30_000 + "]" * 30_000)), "deeper than 32"),
        (wire.encode(wire.MessageFrame('{"label": "rtvi-ai", "type": "x", "id": ' + "7" * 5000 + "}")), "5000 digits"),
        (wire.encode(wire.MessageFrame('{"label": "rtvi-ai", "data": {"n": 1' + "0" * 4999 + "}}")), "5000 digits"),
        (wire.encode(wire.MessageFrame('{"a": ' * 50 + "1" + "}" * 50)), "deeper than 32"),
        (rtvi("client-ready", id_="i" * 500), "500 characters"),
        (rtvi("client-ready", id_={"not": "a string"}), "id is a string"),
    ]
    async with running_server(config(profile, ledger=ledger, max_sessions=3)) as server:
        async with connect(server.ws_url) as healthy:
            await healthy.ready()
            for _ in range(3):  # more bad messages than the server has room for conversations
                for data, reason in bad:
                    async with connect(server.ws_url) as client:
                        await client.ready()
                        await client.ws.send(data)
                        code, got = await client.closed()
                        assert code == 1007 and reason in got, (code, got)
                        assert client.messages("error")[-1]["data"]["fatal"] is True
            await until(lambda: len(server.hub.connections) == 1)
            assert (await health(server))["sessions"] == 1
            await healthy.send_rtvi("send-text", {"content": "still here"})
            await healthy.wait_for("bot-llm-text")
            async with connect(server.ws_url) as one, connect(server.ws_url) as two:
                await one.ready()
                await two.ready()  # the bad ones did not take the room of the limit (3)
    rows = ledger.conversations(100)
    assert len(rows) == 3 + 3 * len(bad)
    assert not [row for row in rows if row.status == "running" or row.ended_at is None]


# --- floods -------------------------------------------------------------------------------------


async def test_typed_text_is_bounded_in_length_and_rate(profile: Path) -> None:
    bounds = limits(max_text_chars=100, text_burst=3, text_per_s=0.5)
    async with running_server(config(profile, limits=bounds)) as server, connect(server.ws_url) as client:
        await client.ready()
        long_id = await client.send_rtvi("send-text", {"content": "x" * 101})
        index = await client.wait_for("error-response")
        answer = client.log[index][2]
        assert answer["id"] == long_id and "101 characters is too long (at most 100)" in answer["data"]["error"]
        for _ in range(3):
            await client.send_rtvi("send-text", {"content": "hello"})
        await client.send_rtvi("send-text", {"content": "one too many"})
        code, reason = await client.closed()
        assert code == 1008 and "typed messages come too fast: at most 3 at once" in reason
        await until(lambda: not server.hub.connections)


async def test_a_message_flood_and_audio_faster_than_real_time_are_closed(profile: Path) -> None:
    bounds = limits(message_burst=20, messages_per_s=60, audio_ahead_s=2)  # real time is 50 messages/s
    async with running_server(config(profile, limits=bounds)) as server:
        async with connect(server.ws_url) as pinger:
            await pinger.ready()
            with contextlib.suppress(websockets.ConnectionClosed):  # the server closes it on the way
                for _ in range(40):
                    await pinger.send_rtvi("client-message", {"t": "ping"})
            code, reason = await pinger.closed()
            assert code == 1008 and "too many messages: at most 20 at once, then 60 a second" in reason
        async with connect(server.ws_url) as flooder:
            await flooder.ready()
            second = bytes(32000)  # one second of 16 kHz audio per message
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(5):
                    await flooder.ws.send(wire.encode(wire.AudioFrame(second, 16000, 1)))
            code, reason = await flooder.closed()
            assert code == 1008 and "faster than real time" in reason and "at most 2 s" in reason
        async with connect(server.ws_url) as talker:  # real time is fine
            await talker.ready()
            await talker.stream(speech(500) + bytes(16000 * 2 // 2))
            await talker.wait_for("bot-llm-text", timeout=10)
        await until(lambda: not server.hub.connections)


def test_the_outbox_is_bounded_in_bytes_too() -> None:
    from voicekit.serve.transport import Outbox

    async def never(_: bytes) -> None:
        await asyncio.Event().wait()

    async def check() -> None:
        outbox = Outbox(never, max_pending=1000, max_bytes=10_000)
        outbox.audio(bytes(6000), 24000)
        assert not outbox.overflow.is_set()
        outbox.audio(bytes(6000), 24000)
        assert outbox.overflow.is_set() and outbox.pending_bytes > 10_000
        outbox.drop_audio()
        assert outbox.pending_bytes == 0

    asyncio.run(check())


async def test_echoed_values_are_cut_short(profile: Path) -> None:
    async with running_server(config(profile)) as server, connect(server.ws_url) as client:
        await client.ready()
        await client.ws.send(rtvi("t" * 50_000, {}))
        await client.send_rtvi("client-message", {"t": "u" * 50_000})
        await client.send_rtvi("client-message", {"t": {"nested": ["x"] * 1000}})
        await client.wait_for("error-response")
        await until(lambda: len(client.messages("error-response")) == 3)
        errors = [m["data"]["error"] for m in client.messages("error-response")]
        assert all(len(e) < 150 for e in errors), errors
        assert "a JSON object" in errors[2]


async def test_new_conversations_are_admitted_at_a_bounded_rate(profile: Path) -> None:
    """A client reconnecting as fast as it is thrown out is refused at the handshake (429),
    before a conversation is made for it; the conversations already running go on."""
    ledger = SessionLedger()
    bounds = limits(new_sessions_burst=3, new_sessions_per_s=0.5)
    async with running_server(config(profile, ledger=ledger, limits=bounds)) as server:
        async with connect(server.ws_url) as kept:
            await kept.ready()
            for _ in range(2):
                async with connect(server.ws_url) as client:
                    await client.ready()
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with connect(server.ws_url):
                    pass
            response = refused.value.response
            assert response.status_code == 429 and response.headers["Retry-After"] == "1"
            assert b"too many new conversations (at most 3 at once, then 0.5 a second)" in response.body
            await kept.send_rtvi("send-text", {"content": "still here"})
            await kept.wait_for("bot-llm-text")
            await asyncio.sleep(2.1)  # one more conversation's worth of budget
            async with connect(server.ws_url) as later:
                await later.ready()
    assert len(ledger.conversations()) == 4, "the refused connection made no conversation"


# --- the RTVI handshake and client messages ---------------------------------------------------------


async def test_client_messages_are_answered_right_after_connecting(profile: Path) -> None:
    async with running_server(config(profile)) as server, connect(server.ws_url) as client:
        history = await client.send_rtvi("client-message", {"t": "history"})  # before client-ready
        ping = await client.send_rtvi("client-message", {"t": "ping"})
        unknown = await client.send_rtvi("client-message", {"t": "llm-function-call"})
        nameless = await client.send_rtvi("client-message", {"d": 1})
        await until(
            lambda: len(client.messages("server-response")) == 2 and len(client.messages("error-response")) == 2
        )
        answers = {m["id"]: m["data"] for m in client.messages("server-response")}
        assert answers[history] == {"t": "history", "d": []} and answers[ping] == {"t": "ping", "d": {"pong": True}}
        errors = {m["id"]: m["data"]["error"] for m in client.messages("error-response")}
        assert errors[unknown] == "unknown client message 'llm-function-call': voicekit answers 'ping' and 'history'"
        assert errors[nameless] == "unknown client message None: voicekit answers 'ping' and 'history'"
        await client.ready()


async def test_a_client_that_never_says_client_ready_is_closed(profile: Path) -> None:
    ledger = SessionLedger()
    bounds = limits(handshake_timeout_s=0.5)
    async with running_server(config(profile, ledger=ledger, limits=bounds)) as server:
        async with connect(server.ws_url) as silent:
            started = now()
            code, reason = await silent.closed()
            assert code == 1008 and reason == "no client-ready message within 0.5 s of connecting"
            assert now() - started < 5
        async with connect(server.ws_url) as polite:
            await polite.ready()
            await asyncio.sleep(0.8)  # past the handshake deadline: ready in time, so it stays
            await polite.send_rtvi("client-message", {"t": "ping"})
            await polite.wait_for("server-response")
        await until(lambda: not server.hub.connections)
    assert {row.status for row in ledger.conversations()} == {"interrupted", "ended"}


# --- sockets: half-open requests, the connection cap, the descriptor limit ------------------------------


async def test_half_open_requests_are_closed_after_the_header_deadline(profile: Path) -> None:
    bounds = limits(handshake_timeout_s=0.5)
    async with running_server(config(profile, limits=bounds)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        await writer.drain()
        started = now()
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408") and now() - started < 4
        writer.close()
        # kept alive after a first answer: the next request gets the same deadline
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n")
        answer = await asyncio.wait_for(reader.read(), 8)
        assert answer.count(b"HTTP/1.1 200") == 1 and b"408" in answer
        writer.close()
        assert (await health(server))["status"] == "ok"


async def test_past_the_connection_cap_new_sockets_are_turned_away_at_once(profile: Path) -> None:
    bounds = limits(handshake_timeout_s=1.0)
    async with running_server(config(profile, limits=bounds, max_connections=10)) as server:
        sockets = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(16)]
        answers = await asyncio.gather(*(asyncio.wait_for(r.read(), 5) for r, _ in sockets))
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
        assert len(busy) == 6 and len(timed_out) == 10
        for _, writer in sockets:
            writer.close()
        assert (await health(server))["status"] == "ok"


def test_descriptor_plan_fits_the_limits_under_the_open_file_limit() -> None:
    from voicekit.serve.limits import plan_descriptors

    roomy = plan_descriptors(1024, 1024, 100, 164)
    assert (roomy.max_sessions, roomy.max_connections, roomy.warning) == (100, 164, None)
    raised = plan_descriptors(1024, 1 << 20, 300, 364)
    assert raised.soft_limit > 1024 and raised.warning is None and raised.max_sessions == 300
    tight = plan_descriptors(1024, 1024, 300, 364)
    assert tight.max_sessions < 300 and tight.max_connections > tight.max_sessions
    assert tight.soft_limit == 1024 and "ulimit -n" in (tight.warning or "")
    needed = 64 + tight.accept_burst + tight.max_connections + 6 * tight.max_sessions
    assert needed <= 1024
    with pytest.raises(ValueError, match="too low to serve"):
        plan_descriptors(64, 64, 10, 20)


async def test_serve_outlives_more_half_open_sockets_than_it_has_descriptors(profile: Path) -> None:
    """Under ``ulimit -n 256``, 600 half-open requests: the server warns at start that it lowered
    its limits, turns the surplus away, closes the slow ones, and keeps serving."""

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from voicekit.cli import main; main()",
        "serve",
        "--profile",
        str(profile),
        "--port",
        "0",
        "--handshake-timeout",
        "1",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "400"},
        preexec_fn=low_limit,
    )
    sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        assert proc.stderr is not None
        lines = []
        while not lines or "listening on" not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stderr.readline(), 60)).decode())
            assert lines[-1], "".join(lines)
        text = "".join(lines)
        assert "warning:" in text and "open-file limit" in text and "--max-sessions" in text, text
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
        assert port, text
        for _ in range(600):
            reader, writer = await asyncio.open_connection("127.0.0.1", int(port.group(1)))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sockets.append((reader, writer))
        await asyncio.sleep(1.5)  # past the header deadline
        assert proc.returncode is None, "the server exited"
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"http://127.0.0.1:{port.group(1)}/healthz", timeout=10)
        assert reply.status_code == 200 and reply.json()["status"] == "ok"
        async with connect(f"ws://127.0.0.1:{port.group(1)}/ws") as client:
            await client.ready()
    finally:
        for _, writer in sockets:
            writer.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
