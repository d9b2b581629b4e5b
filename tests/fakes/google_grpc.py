"""What the local Google Cloud gRPC fakes share: a real ``grpc.aio`` server, auth checks, faults.

A fake subclasses :class:`FakeGoogleServer`, lists its methods in ``handlers()`` (each
built with the vendor package's own proto-plus ``serialize`` / ``deserialize``), and
calls :meth:`check_call` at the start of every call. Faults are queued with
:meth:`FakeGoogleServer.inject` and consumed by the next calls; a ``drop`` restarts
the whole server on the same port, so clients see a real connection loss. A status
fault may carry a ``google.rpc.RetryInfo`` (``retry_delay_s``) in the
``grpc-status-details-bin`` trailer, as Google's quota errors do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger(__name__)

# Messages as the real services phrase them (seen in public bug reports and docs).
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."

FAULTS = {
    "unauthenticated": (grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE),
    "permission_denied": (grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission"),
    "resource_exhausted": (grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Requests'."),
    "unavailable": (grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable."),
    "internal": (grpc.StatusCode.INTERNAL, "Internal error encountered."),
}


@dataclass
class Fault:
    """A failure for the next call: ``kind`` is a key of ``FAULTS`` or ``"drop"``.

    ``after`` counts units of work the call completes first (seconds of audio for
    recognition, audio chunks for synthesis); 0 fails the call at once.
    """

    kind: str
    after: float = 0.0
    retry_delay_s: float | None = None  # a RetryInfo detail with this delay


class FakeGoogleServer:
    """Base of the Google gRPC fakes: start/stop on 127.0.0.1, auth, faults, latency."""

    def __init__(
        self, *, api_key: str | None = None, latency_s: float = 0.0, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.api_key = api_key  # when set, calls must carry it (x-goog-api-key or Bearer)
        self.latency_s = latency_s  # delay before every response message
        self.tls = tls  # (certificate, key) PEM files: serve TLS instead of plain text
        self.faults: list[Fault] = []
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self.calls = 0

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        raise NotImplementedError

    async def start(self, port: int = 0) -> int:
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers(tuple(self.handlers()))
        if self.tls is not None:
            cert, key = (Path(f).read_bytes() for f in self.tls)
            credentials = grpc.ssl_server_credentials([(key, cert)])
            self.port = self._server.add_secure_port(f"127.0.0.1:{port}", credentials)
        else:
            self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        await self._server.start()
        return self.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0)

    async def drop(self) -> None:
        """Cut every connection, like a network failure, and listen on the same port as before.

        The new server listens before the old one stops (gRPC servers share a port with
        SO_REUSEPORT), so a client that reconnects at once never finds the port closed.
        """
        old, self._server = self._server, None
        await self.start(self.port)
        if old is not None:
            await old.stop(0)

    def inject(self, kind: str, after: float = 0.0, *, retry_delay_s: float | None = None) -> None:
        if kind != "drop" and kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}")
        self.faults.append(Fault(kind, after, retry_delay_s))

    def take_fault(self) -> Fault | None:
        return self.faults.pop(0) if self.faults else None

    async def check_call(self, context: grpc.aio.ServicerContext, record: Any = None) -> dict[str, str]:
        """Metadata of the call; aborts like the service when credentials are missing or wrong.

        ``record.ended_at`` is set when the call ends, however it ends.
        """
        self.calls += 1
        if record is not None:

            def done(ctx: grpc.aio.ServicerContext) -> None:
                record.ended_at = time.monotonic()

            context.add_done_callback(done)
        metadata = {k: v if isinstance(v, str) else v.decode() for k, v in context.invocation_metadata() or ()}
        if self.api_key is not None:
            key = metadata.get("x-goog-api-key")
            bearer = metadata.get("authorization", "")
            if key is None and not bearer:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
            if key is not None and key != self.api_key:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, BAD_KEY_MESSAGE)
            if key is None and bearer != f"Bearer {self.api_key}":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        return metadata

    async def fail(self, fault: Fault, context: grpc.aio.ServicerContext) -> None:
        """Carry out a fault now (never returns normally for a status fault)."""
        if fault.kind == "drop":
            asyncio.get_running_loop().create_task(self.drop())
            await asyncio.sleep(3600)  # the drop cancels this call
        code, message = FAULTS[fault.kind]
        trailer: tuple[tuple[str, bytes], ...] = ()
        if fault.retry_delay_s is not None:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromTimedelta(timedelta(seconds=fault.retry_delay_s))
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
            trailer = (("grpc-status-details-bin", status.SerializeToString()),)
        await context.abort(code, message, trailing_metadata=trailer)

    async def pause(self) -> None:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)


async def pump_requests(request_iterator: Any, queue: asyncio.Queue[Any]) -> None:
    """Move a call's requests into a queue (None at the end) so the handler can wait with timeouts."""
    try:
        async for request in request_iterator:
            queue.put_nowait(request)
    except Exception as exc:  # noqa: BLE001 - a malformed message or a cancelled call
        queue.put_nowait(exc)
    finally:
        queue.put_nowait(None)


def serve_main(make: Callable[[argparse.Namespace], FakeGoogleServer], description: str) -> None:
    """``python -m tests.fakes.<name> --port P``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--api-key", default=None, help="require this key (x-goog-api-key or Bearer)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every response")
    parser.add_argument("--fault", action="append", default=[], help="kind[:after], e.g. unavailable or drop:2")
    parser.add_argument("--script", action="append", default=[], help="transcript of the next utterance (speech fake)")
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"))

    async def run() -> None:
        fake = make(args)
        for spec in args.fault:
            kind, _, after = spec.partition(":")
            fake.inject(kind, float(after or 0))
        port = await fake.start(args.port)
        print(f"listening on 127.0.0.1:{port}", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        await fake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
