"""uvicorn's HTTP and websocket protocols with the guards that uvicorn leaves out.

- A connection cap: past ``max_connections`` open sockets, a new one is answered 503 and
  closed at once, so a crowd of idle sockets cannot use up the process's descriptors.
- A header deadline: a request's headers must be complete within ``header_timeout_s`` of
  the connection opening (or of the previous response on a kept-alive connection);
  otherwise the socket is closed. Half-open requests cannot pile up.
- A short goodbye: once the server has closed a websocket (a client over a limit, say), a
  client that goes on sending instead of answering the close gets its socket dropped after
  64 KiB or 2 s, instead of having its frames read and thrown away for 10 s.

A websocket upgrade hands the socket to the websocket protocol; from then on the
connection's own timeouts apply (see :mod:`voicekit.serve.connection`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)


def _response(status: str, body: str) -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: {len(data)}\r\n\r\n"
    return head.encode() + data


_BUSY = _response("503 Service Unavailable", "server busy: too many open connections\n")
_SLOW = _response("408 Request Timeout", "the request headers took too long\n")


class GuardedHTTP(H11Protocol):
    """:class:`H11Protocol` with a connection cap and a header deadline (see the module)."""

    max_connections: int = 1000
    header_timeout_s: float = 10.0
    refused = 0  # sockets turned away by the cap, for logs and tests (class-wide)
    timed_out = 0  # sockets closed by the header deadline (class-wide)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_on: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            type(self).refused += 1
            if type(self).refused == 1 or type(self).refused % 1000 == 0:
                log.warning(
                    "%d open sockets, the limit (--max-connections): turning new ones away (%d so far)",
                    self.max_connections,
                    type(self).refused,
                )
            transport.write(_BUSY)
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this kept-alive connection gets the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._waiting_on = self.cycle  # a new request replaces the cycle
        self._deadline = self.loop.call_later(self.header_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return  # closed, or upgraded to a websocket
        if self.cycle is not self._waiting_on:
            return  # a request came in time; the next deadline starts when its response is done
        type(self).timed_out += 1
        log.info("closed a connection whose request headers took more than %g s", self.header_timeout_s)
        transport.write(_SLOW)
        transport.close()


def guarded_protocol(max_connections: int, header_timeout_s: float) -> type[GuardedHTTP]:
    """A :class:`GuardedHTTP` with these limits, for ``uvicorn.Config(http=...)``."""
    return type(
        "GuardedHTTP",
        (GuardedHTTP,),
        {"max_connections": max_connections, "header_timeout_s": header_timeout_s, "refused": 0, "timed_out": 0},
    )


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol with a short goodbye (see the module)."""

    close_grace_s = 2.0
    after_close_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.close_grace_s
        self._after_close = 0

    def data_received(self, data: bytes) -> None:
        if self.close_sent:
            self._after_close += len(data)
            if self._after_close > self.after_close_bytes:
                self.transport.abort()  # it keeps sending after being told goodbye: no more reading
                return
        super().data_received(data)
