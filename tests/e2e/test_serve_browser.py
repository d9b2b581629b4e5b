"""``voicekit serve`` with real browsers: headless Chromium with a WAV file as its
microphone, driven over the Chrome DevTools Protocol. The built-in page, and Pipecat's
own client-js with its WebSocket transport (bundled from tests/browser/), must be heard
by the server and show both transcripts and receive the bot's audio."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import itertools
import json
import shutil
import subprocess
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.serve_helpers import running_server, write_profile
from voicekit.clock import now
from voicekit.events import Event, Final, SpeechStarted
from voicekit.ledger import SessionLedger
from voicekit.serve.config import ServeConfig
from voicekit.testing.speech import synthesize

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A minimal Chrome DevTools Protocol client over the browser's websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.console: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._dispatch()

    async def _dispatch(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self._pending:
                future = self._pending.pop(msg["id"])
                if "error" in msg:
                    future.set_exception(AssertionError(f"DevTools error: {msg['error']}"))
                else:
                    future.set_result(msg.get("result", {}))
            elif msg.get("method") == "Runtime.consoleAPICalled":
                args = msg["params"].get("args", [])
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + json.dumps(msg["params"]["exceptionDetails"])[:500])

    async def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        return await asyncio.wait_for(future, 20)

    async def evaluate(self, session: str, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate",
            {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": True,
                "userGesture": True,
            },
            session,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def chromium(profile_dir: Path, microphone: Path) -> AsyncIterator[DevTools]:
    assert CHROMIUM, "chromium is not installed: run scripts/setup.sh dev as root (it installs Debian's chromium)"
    profile_dir.mkdir()
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile_dir}",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--autoplay-policy=no-user-gesture-required",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile_dir / "DevToolsActivePort"
        deadline = now() + 30
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert now() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.05)
        port, path = active.read_text().splitlines()[:2]
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
            tools = DevTools(ws)
            yield tools
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tools.call("Browser.close"), 5)
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_wav(path: Path, pcm: bytes, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


async def poll(tools: DevTools, session: str, condition: str, timeout: float) -> dict[str, Any]:
    """window.voicekit once ``condition`` (JS, with ``s`` the stats) holds."""
    deadline = now() + timeout
    while True:
        done, stats = json.loads(
            await tools.evaluate(session, f"(s => JSON.stringify([Boolean({condition}), s || null]))(window.voicekit)")
        )
        if done:
            return stats  # type: ignore[no-any-return]
        if now() > deadline:
            raise AssertionError(f"page never reached {condition}: {stats}; console: {tools.console[-10:]}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_page_talks_with_the_server_in_chromium(tmp_path: Path) -> None:
    speech = synthesize("hello there, how are you today", pad_ms=400) + bytes(16000 * 2)
    microphone = tmp_path / "speech.wav"
    write_wav(microphone, speech)
    heard: list[Event] = []
    profile = write_profile(tmp_path, transcripts=["hello there"], replies=["Nice to hear you. I am fine."])
    config = ServeConfig(profile=str(profile), ledger=SessionLedger(), observers=[heard.append])
    async with running_server(config) as server, chromium(tmp_path / "chromium", microphone) as tools:
        target = await tools.call("Target.createTarget", {"url": server.http_url + "/"})
        session = (await tools.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))[
            "sessionId"
        ]
        await tools.call("Runtime.enable", {}, session)
        await poll(tools, session, "s && document.readyState === 'complete'", 15)
        await tools.evaluate(session, "document.getElementById('connect').click()")
        stats = await poll(
            tools, session, "s.botReady && s.userFinals >= 1 && s.botAudioFrames >= 10 && s.botOutputs >= 1", 30
        )
        # the mic streams (the server hearing the words, below, proves what it carried); how many frames
        # went out before the reply depends on when capture started relative to the connection
        assert stats["micRate"] == 16000 and stats["micFrames"] > 10
        assert stats["errors"] == [], stats["errors"]
        assert any(isinstance(e, SpeechStarted) for e in heard), "the server heard no speech"
        assert any(isinstance(e, Final) and e.text == "hello there" for e in heard)
        shown = await tools.evaluate(session, "document.getElementById('log').innerText")
        assert "hello there" in shown and "Nice to hear you." in shown

        await tools.evaluate(
            session,
            "document.getElementById('text').value = 'typed in the page';"
            "document.getElementById('say').requestSubmit()",
        )
        await poll(tools, session, "document.getElementById('log').innerText.includes('typed in the page')", 10)
        assert any(isinstance(e, Final) and e.text == "typed in the page" for e in heard)

        # the page names the profile, says what each timing measures, offers the microphones
        assert (
            await tools.evaluate(session, "document.getElementById('profile').innerText") == f"profile {profile.stem}"
        )
        await poll(tools, session, "s.metrics >= 1", 10)
        figures = await tools.evaluate(session, "document.getElementById('metrics').innerText")
        assert "you stop → bot speaks" in figures and "text → first word" in figures, figures
        assert "voicekit:" not in figures and "llm:scripted" not in figures
        mics = await tools.evaluate(session, "[...document.getElementById('mic').options].map(o => o.text)")
        assert mics[0] == "default" and len(mics) >= 2, mics
        assert stats["micDevice"] or await tools.evaluate(session, "window.voicekit.micDevice")
        # a long conversation scrolls inside the log: the input box stays in the window
        await tools.evaluate(
            session,
            "for (let i = 0; i < 200; i++) { const d = document.createElement('div'); d.className = 'line';"
            " d.textContent = 'line ' + i; document.getElementById('log').append(d); }",
        )
        box = await tools.evaluate(
            session, "(() => { const r = document.getElementById('text').getBoundingClientRect();"
            " return [r.top, r.bottom, window.innerHeight]; })()",
        )  # fmt: skip
        assert 0 <= box[0] and box[1] <= box[2], f"the input box left the window: {box}"

        assert len(server.hub.connections) == 1
        await tools.evaluate(session, "document.getElementById('connect').click()")  # disconnect
        deadline = now() + 5
        while server.hub.connections:
            assert now() < deadline, "the server kept the session after the page disconnected"
            await asyncio.sleep(0.05)
        assert await tools.evaluate(session, "window.voicekit.state") == "idle"


# --- Pipecat's own client ----------------------------------------------------------------------

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"


@pytest.fixture(scope="module")
def official_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Pipecat's client-js + websocket-transport bundled into a page, served on loopback;
    yields the page's URL."""
    esbuild = BROWSER_DIR / "node_modules" / ".bin" / "esbuild"
    assert esbuild.exists(), "tests/browser/node_modules is missing: run scripts/setup.sh dev (needs npm)"
    site = tmp_path_factory.mktemp("official-client")
    subprocess.run(
        [
            str(esbuild),
            str(BROWSER_DIR / "official-client.js"),
            "--bundle",
            "--format=iife",
            f"--outfile={site / 'bundle.js'}",
            "--log-level=warning",
        ],
        check=True,
        timeout=120,
    )
    (site / "index.html").write_text('<!doctype html><meta charset="utf-8"><script src="bundle.js"></script>\n')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.slow
async def test_pipecat_client_js_talks_with_the_server(tmp_path: Path, official_client: str) -> None:
    microphone = tmp_path / "speech.wav"
    write_wav(microphone, synthesize("hello there, how are you today", pad_ms=400) + bytes(16000 * 4))
    heard: list[Event] = []
    profile = write_profile(tmp_path, transcripts=["hello there"], replies=["Nice to hear you. I am fine."])
    page_origin = official_client.rsplit("/", 1)[0]  # another port: a cross-origin page, allowed by name
    config = ServeConfig(
        profile=str(profile),
        profile_name="scripted",
        ledger=SessionLedger(),
        observers=[heard.append],
        allowed_origins=(page_origin,),
    )
    async with running_server(config) as server, chromium(tmp_path / "chromium", microphone) as tools:
        target = await tools.call("Target.createTarget", {"url": official_client})
        session = (await tools.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))[
            "sessionId"
        ]
        await tools.call("Runtime.enable", {}, session)
        deadline = now() + 15
        while not await tools.evaluate(session, "typeof window.officialClient === 'object'"):
            assert now() < deadline, f"the bundle did not load: {tools.console[-5:]}"
            await asyncio.sleep(0.05)
        # connect() resolves on bot-ready
        assert await tools.evaluate(session, f"window.officialClient.connect('{server.ws_url}')") == "connected"
        seen = await poll_official(tools, session, "s.outputs.length >= 2 && s.metrics.length >= 1 && s.botStopped", 30)
        assert seen["ready"]["version"] == "2.1.0" and seen["ready"]["about"]["profile"] == "scripted"
        finals = [t for t in seen["transcripts"] if t["final"]]
        assert finals and finals[0]["text"] == "hello there" and finals[0]["user_id"]
        assert seen["outputs"][:2] == ["Nice to hear you.", "I am fine."]
        assert seen["llmText"].startswith("Nice to hear you. I am fine.")
        assert seen["botStarted"] >= 1
        assert any(m["processor"] == "llm:scripted" for message in seen["metrics"] for m in message.get("ttfb", []))
        assert any(isinstance(e, Final) and e.text == "hello there" for e in heard)

        await tools.evaluate(session, "window.officialClient.sendText('typed through client-js')")
        await poll_official(tools, session, "s.transcripts.some(t => t.text === 'typed through client-js')", 10)
        assert await tools.evaluate(session, "window.officialClient.ping().then(JSON.stringify)") == '{"pong":true}'
        assert await tools.evaluate(session, "JSON.stringify(window.official.errors)") == "[]"
        await tools.evaluate(session, "window.officialClient.disconnect()")
        deadline = now() + 5
        while server.hub.connections:
            assert now() < deadline, "the server kept the session after client-js disconnected"
            await asyncio.sleep(0.05)


async def poll_official(tools: DevTools, session: str, condition: str, timeout: float) -> dict[str, Any]:
    deadline = now() + timeout
    while True:
        # one evaluation: the snapshot returned is the one the condition held for
        done, seen = json.loads(
            await tools.evaluate(session, f"(s => JSON.stringify([Boolean({condition}), s]))(window.official)")
        )
        if done:
            return seen  # type: ignore[no-any-return]
        if now() > deadline:
            raise AssertionError(f"client-js never reached {condition}: {seen}; console: {tools.console[-10:]}")
        await asyncio.sleep(0.1)
