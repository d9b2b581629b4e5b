"""Run the app on uvicorn: bind, serve, and on SIGINT/SIGTERM close every conversation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from voicekit.errors import VoicekitError
from voicekit.serve.app import ConnectionHub, create_app
from voicekit.serve.config import ServeConfig, check_exposure
from voicekit.serve.limits import plan_descriptors
from voicekit.serve.protocol import GuardedWebSocket, guarded_protocol

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001


class VoiceServer(uvicorn.Server):
    """uvicorn, with our own signal handling: a signal stops the server (every
    conversation closed first, with a reason the client sees) and is not raised again."""

    def __init__(self, config: uvicorn.Config, hub: ConnectionHub) -> None:
        super().__init__(config)
        self.hub = hub
        self.signals: list[int] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._on_signal, signum)
                installed.append(signum)
        try:
            yield
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        self.signals.append(signum)
        if self.should_exit and signum == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.hub.close_all()
        await super().shutdown(sockets)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error (port in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise VoicekitError(f"cannot listen on {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise VoicekitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def fit_descriptors(config: ServeConfig) -> str | None:
    """Fit the connection and conversation limits under ``RLIMIT_NOFILE`` (raising the soft
    limit up to the hard one when that is enough); returns a warning when they had to shrink."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        plan = plan_descriptors(soft, hard, config.max_sessions, config.connection_limit)
    except ValueError as exc:
        raise VoicekitError(str(exc)) from None
    if plan.soft_limit != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (plan.soft_limit, hard))
        except (OSError, ValueError) as exc:  # pragma: no cover - a hard limit lowered meanwhile
            log.warning("could not raise the open-file limit to %d: %s", plan.soft_limit, exc)
    config.max_sessions, config.max_connections = plan.max_sessions, plan.max_connections
    config.accept_burst = plan.accept_burst
    return plan.warning


def build_server(config: ServeConfig, sock: socket.socket, *, verbose: bool = False) -> VoiceServer:
    config.bound_port = sock.getsockname()[1]
    app = create_app(config)
    uv_config = uvicorn.Config(
        app,
        log_config=None,
        access_log=verbose,
        lifespan="on",
        http=guarded_protocol(config.connection_limit, config.limits.handshake_timeout_s),
        ws=GuardedWebSocket,
        ws_max_size=config.max_message_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=20,
        backlog=config.accept_burst,  # also how many sockets one turn of the loop accepts
        ws_per_message_deflate=False,  # PCM hardly compresses: deflate would only cost CPU on both ends
    )
    return VoiceServer(uv_config, app.state.hub)


async def serve(
    config: ServeConfig,
    host: str,
    port: int,
    *,
    on_ready: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> list[int]:
    """Serve until SIGINT/SIGTERM; returns the signals received."""
    check_exposure(host, config.tokens)
    # Ledger writes and model calls run on worker threads; a thread holding the GIL makes the
    # event loop (every conversation's audio) wait up to the switch interval, 5 ms by default.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    server = build_server(config, sock, verbose=verbose)
    task: Any = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started and on_ready is not None:
        on_ready(f"http://{shown}:{bound_port}")
    try:
        await task
    finally:
        sock.close()
    return server.signals
