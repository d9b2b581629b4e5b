"""``voicekit serve``: a voice server for browsers and Pipecat's RTVI clients."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from voicekit.commands.chat import SetOption


def serve(
    profile: Annotated[
        Optional[str],
        typer.Option(
            "--profile",
            "-p",
            metavar="NAME",
            help="Profile of every conversation (default: config.toml's serve_profile).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on; beyond this machine it needs --token-file.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on (0: any free port).", min=0, max=65535)
    ] = 8000,
    max_sessions: Annotated[
        int, typer.Option("--max-sessions", metavar="N", help="Conversations at once; more are refused.", min=1)
    ] = 100,
    session_timeout: Annotated[
        float, typer.Option("--session-timeout", metavar="SECONDS", help="Longest conversation, in seconds.", min=1)
    ] = 600.0,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout", metavar="SECONDS", help="Close a connection that sends nothing for this long (s).", min=1
        ),
    ] = 60.0,
    max_connections: Annotated[
        Optional[int],
        typer.Option(
            "--max-connections",
            metavar="N",
            help="Open sockets at once, of any kind (default: --max-sessions + 64); kept under the open-file limit.",
            min=2,
        ),
    ] = None,
    handshake_timeout: Annotated[
        float,
        typer.Option(
            "--handshake-timeout",
            metavar="SECONDS",
            help="Seconds a client has to send its request headers, and then its RTVI client-ready.",
            min=0.5,
            max=600,
        ),
    ] = 10.0,
    token_file: Annotated[
        Optional[Path],
        typer.Option(
            "--token-file", metavar="FILE", help="Accepted tokens, one per line (?token= or Authorization: Bearer)."
        ),
    ] = None,
    allow_origin: Annotated[
        Optional[list[str]],
        typer.Option(
            "--allow-origin",
            metavar="ORIGIN",
            help="Web origin whose pages may connect without a token, e.g. https://app.example.com "
            "(repeatable; * for any). This server's own page on 127.0.0.1/localhost always may.",
        ),
    ] = None,
    duplex: Annotated[
        str,
        typer.Option(
            metavar="MODE", help="Turn-taking: full (talk over the bot), half (mic muted while it speaks) or profile."
        ),
    ] = "full",
    max_message_kb: Annotated[
        int, typer.Option("--max-message-kb", metavar="KIB", help="Largest message accepted, in KiB.", min=1)
    ] = 1024,
    lookahead_ms: Annotated[
        float,
        typer.Option(
            "--lookahead-ms",
            metavar="MS",
            help="How far ahead of real time bot audio is sent: more rides out network jitter, "
            "less stops a cut reply sooner.",
            min=0,
            max=2000,
        ),
    ] = 60.0,
    set_: SetOption = None,
) -> None:
    """Serve voice conversations over WebSocket to browsers and Pipecat RTVI clients.

    Open http://HOST:PORT/ for the built-in page, or connect @pipecat-ai/client-js with its WebSocket transport to ws://HOST:PORT/ws.
    """
    import asyncio
    import logging

    from rich.console import Console
    from rich.markup import escape

    from voicekit.profiles import load_profile
    from voicekit.redaction import RedactingFilter
    from voicekit.serve.config import ServeConfig, check_exposure, check_origin, preflight, read_tokens
    from voicekit.serve.limits import ServeLimits
    from voicekit.serve.server import fit_descriptors
    from voicekit.serve.server import serve as run_server
    from voicekit.settings import settings

    profile = profile or settings().serve_profile

    for handler in logging.getLogger().handlers:  # a long-running server's log never shows a URL's credentials
        handler.addFilter(RedactingFilter())
    if duplex not in ("full", "half", "profile"):
        raise typer.BadParameter("choose full, half or profile", param_hint="--duplex")
    tokens = read_tokens(token_file) if token_file is not None else ()
    check_exposure(host, tokens)
    config = ServeConfig(
        profile=profile,
        overrides=tuple(set_ or ()),
        duplex=duplex,  # type: ignore[arg-type]
        max_sessions=max_sessions,
        session_timeout_s=session_timeout,
        idle_timeout_s=idle_timeout,
        max_message_bytes=max_message_kb * 1024,
        max_connections=max_connections,
        tokens=tokens,
        allowed_origins=tuple(check_origin(origin) for origin in allow_origin or ()),
        lookahead_ms=lookahead_ms,
        limits=ServeLimits(handshake_timeout_s=handshake_timeout),
    )
    loaded = load_profile(profile, config.profile_overrides())  # a bad profile or missing key fails now
    config.profile_name = loaded.name
    console = Console(stderr=True, highlight=False, emoji=False)
    warnings = preflight(loaded)
    descriptors = fit_descriptors(config)
    for warning in [*warnings, *([descriptors] if descriptors else [])]:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)

    def ready(url: str) -> None:
        mode = "token required" if tokens else "no token"
        console.print(
            f"voicekit serve: profile [bold]{loaded.name}[/], {mode}, listening on {url}  (page: {url}/, "
            f"RTVI websocket: {url.replace('http', 'ws', 1)}/ws)",
            soft_wrap=True,
        )

    from voicekit.ledger.deferred import DeferredLedger
    from voicekit.ledger.unavailable import UnavailableLedger, open_ledger
    from voicekit.registry import load_registry

    ledger = open_ledger(None, lambda text: console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True))
    # rows are closed off the event loop all conversations share
    config.ledger = ledger if isinstance(ledger, UnavailableLedger) else DeferredLedger(ledger)
    config.registry = load_registry()
    signals = asyncio.run(run_server(config, host, port, on_ready=ready))
    if signals:
        console.print("voicekit serve: stopped, every conversation closed")
