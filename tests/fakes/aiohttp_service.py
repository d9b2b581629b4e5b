"""The lifecycle the aiohttp-based fakes share: serve ``app()`` on a free local port."""

from __future__ import annotations

from typing import Any, Self

from aiohttp import web


class AiohttpService:
    """Mix into a fake that defines ``app()``: ``start()`` returns its ``http://host:port`` base URL."""

    _runner: web.AppRunner | None
    base_url: str

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server: Any = site._server
        assert server is not None
        self.base_url = f"http://{host}:{server.sockets[0].getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
