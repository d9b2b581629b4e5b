"""What ``voicekit serve`` was asked to do, and its safety checks (tokens, loopback)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from voicekit.errors import VoicekitError
from voicekit.serve.limits import ACCEPT_BURST, ServeLimits

Duplex = Literal["full", "half", "profile"]


@dataclass
class ServeConfig:
    """Settings of one server; every connection gets its own conversation from ``profile``."""

    profile: str = "gemini-live"
    profile_name: str | None = None  # shown to clients; default: the profile's file name
    overrides: tuple[str, ...] = ()
    duplex: Duplex = "full"  # "profile": keep the profile's own turns.mode
    max_sessions: int = 100
    session_timeout_s: float = 600.0
    idle_timeout_s: float = 60.0
    max_message_bytes: int = 1 << 20
    max_connections: int | None = None  # open sockets of any kind; None: max_sessions + 64
    accept_burst: int = ACCEPT_BURST  # sockets accepted in one go (and the listen backlog)
    tokens: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()  # besides the loopback origins of the bound port
    bound_port: int | None = None  # set when the socket is bound: the page's own origins use it
    limits: ServeLimits = field(default_factory=ServeLimits)
    chunk_ms: float = 40.0  # bot audio per socket message
    lookahead_ms: float = 60.0  # how far ahead of real time bot audio is sent
    ledger: Any = None  # a SessionLedger shared by the conversations; None: the runner's default
    observers: list[Any] = field(default_factory=list)  # more observers of every conversation's events
    registry: Any = None  # loaded once and shared, so a new connection does not rescan the plugins

    def profile_overrides(self) -> list[str]:
        """The profile overrides of every conversation: the duplex mode first, so ``--set`` wins."""
        mode = {"full": ["turns.mode=full_duplex"], "half": ["turns.mode=half_duplex"], "profile": []}[self.duplex]
        return [*mode, *self.overrides]

    @property
    def connection_limit(self) -> int:
        """Open sockets at once (pages, health checks, refused and live conversations)."""
        return self.max_connections if self.max_connections is not None else self.max_sessions + 64

    def public_origins(self) -> frozenset[str]:
        """The web origins whose pages may open a conversation without a token: the
        ``--allow-origin`` ones and this server's own page on a loopback address. Never
        derived from a request (its Host header is the attacker's to choose)."""
        origins = {normalize_origin(o) for o in self.allowed_origins}
        if self.bound_port is not None:
            origins |= {f"http://{host}:{self.bound_port}" for host in ("127.0.0.1", "localhost", "[::1]")}
        return frozenset(origins)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str:
    """``scheme://host:port`` in lower case with the port spelled out, so equal origins compare
    equal (``HTTP://LocalHost`` is ``http://localhost:80``); ``*`` and unreadable text stay as they are."""
    from urllib.parse import urlsplit

    origin = origin.strip()
    if origin == "*":
        return origin
    try:
        parts = urlsplit(origin)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return origin
    if not parts.scheme or not parts.hostname or port is None:
        return origin
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host.lower()}:{port}"


def check_origin(origin: str) -> str:
    """An ``--allow-origin`` value, checked: ``*`` or ``scheme://host[:port]`` with nothing after."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.strip())
        _ = parts.port
    except ValueError as exc:
        raise VoicekitError(f"--allow-origin {origin}: {exc}") from None
    if origin.strip() == "*":
        return "*"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise VoicekitError(
            f"--allow-origin {origin}: expected a web origin like https://app.example.com or http://localhost:5173"
        )
    return origin.strip().rstrip("/")


def read_tokens(path: Path) -> tuple[str, ...]:
    """The accepted tokens: one per non-empty line of ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VoicekitError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    tokens = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if not tokens:
        raise VoicekitError(f"the token file {path} has no token (one per line)")
    short = [t for t in tokens if len(t) < 16]
    if short:
        raise VoicekitError(f"the token file {path} has a token shorter than 16 characters: use long random tokens")
    return tokens


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is on this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_exposure(host: str, tokens: tuple[str, ...]) -> None:
    """Refuse to serve beyond this machine without tokens: anyone who reached the port
    could talk on the operator's API keys."""
    if tokens or is_loopback(host):
        return
    raise VoicekitError(
        f"refusing to listen on {host} without --token-file: anyone who can reach it could start "
        "conversations on your API keys. Pass --token-file FILE (one long random token per line), "
        "or listen on 127.0.0.1"
    )


def preflight(profile: Any) -> list[str]:
    """Build the loaded profile's backends once (not started): a bad option fails now,
    and a missing API key gives a warning, since every conversation would fail on it."""
    from voicekit.errors import MissingSecretError
    from voicekit.profiles import build_backend
    from voicekit.registry import load_registry

    registry = load_registry()
    warnings = []
    for role in ("stt", "llm", "output"):
        if profile.spec(role) is None:
            continue
        backend = build_backend(profile, role, registry)
        if backend.api_key_env:
            try:
                backend.api_key()
            except MissingSecretError as exc:
                warnings.append(f"{exc}: every conversation will fail until it is set")
    return warnings
