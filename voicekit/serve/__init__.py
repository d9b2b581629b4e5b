"""``voicekit serve``: voice conversations over WebSocket, in Pipecat's RTVI protocol.

One connection is one conversation built from the server's profile. The wire is
Pipecat's: binary websocket messages, each a protobuf ``pipecat.Frame`` carrying
client microphone audio, bot audio (24 kHz mono) or an RTVI JSON message. So the
built-in page (``GET /``) and ``@pipecat-ai/client-js`` with its WebSocket transport
both talk to it.

Modules: :mod:`~voicekit.serve.wire` (protobuf codec), :mod:`~voicekit.serve.rtvi`
(messages, events → RTVI), :mod:`~voicekit.serve.transport` (audio in and out),
:mod:`~voicekit.serve.connection` (one connection), :mod:`~voicekit.serve.app` (routes,
limits, auth), :mod:`~voicekit.serve.server` (uvicorn, signals).
"""

from __future__ import annotations

from voicekit.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> object:
    if name == "create_app":  # starlette is imported only when the app is built
        from voicekit.serve.app import create_app

        return create_app
    raise AttributeError(name)
