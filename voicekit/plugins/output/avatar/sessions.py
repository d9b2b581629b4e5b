"""Where avatar sessions are tracked: the conversation's ledger (or one of our own when a
backend runs standalone), and the vendors' session lists for ``voicekit sessions``."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from voicekit.errors import MissingSecretError
from voicekit.ledger.remote import RemoteSessionInfo, RemoteSessionManager
from voicekit.plugins.output.avatar.api import AvatarAPI, AvatarAPIError, AvatarService
from voicekit.roles import BackendContext, RemoteSessionTracker


def remote_sessions_of(context: BackendContext) -> tuple[RemoteSessionTracker, bool]:
    """The conversation's remote sessions, or our own (returned ``True``) when run standalone."""
    if context.remote_sessions is not None:
        return context.remote_sessions, False
    from voicekit.ledger.ledger import SessionLedger
    from voicekit.ledger.remote import RemoteSessions

    return RemoteSessions(SessionLedger(), context.conversation_id or None), True


def session_rows(data: Any) -> list[dict[str, Any]]:
    """The session list, whether ``data`` is the list itself or wraps it."""
    if isinstance(data, dict):
        for key in ("sessions", "results", "items", "data"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


class VendorSessionManager(RemoteSessionManager):
    """A vendor's active sessions through its REST API (key from the environment).

    Both calls are safe to repeat, so they are retried per the default retry policy;
    a stop the service answers with "does not exist" counts as closed.
    """

    service: ClassVar[AvatarService]
    list_path: ClassVar[str] = ""
    list_params: ClassVar[dict[str, str] | None] = None
    stop_path: ClassVar[str] = ""
    stop_extra: ClassVar[dict[str, str]] = {}

    def __init__(self, api_key: str | None = None, base_url: str | None = None) -> None:
        self._key = api_key
        self._base_url = base_url
        self._client: AvatarAPI | None = None

    def _api(self) -> AvatarAPI:
        if self._client is None:
            key = self._key or os.environ.get(self.service.key_env)
            if not key:
                raise MissingSecretError(
                    f"{self.backend}: set the environment variable {self.service.key_env} to list or close its sessions"
                )
            self._client = self.service.api(key, base_url=self._base_url)
        return self._client

    async def list_active(self) -> list[RemoteSessionInfo]:
        data = await self._api().call("GET", self.list_path, params=self.list_params, idempotent=True)
        infos = []
        for row in session_rows(data):
            remote_id = row.get("session_id") or row.get("id")
            if not remote_id:
                continue
            created = row.get("created_at")
            infos.append(
                RemoteSessionInfo(
                    self.backend,
                    str(remote_id),
                    str(row.get("status", "active")),
                    float(created) if isinstance(created, (int, float)) else None,
                    {k: v for k, v in row.items() if k not in ("session_id", "id", "status", "created_at")},
                )
            )
        return infos

    async def close(self, remote_id: str) -> bool:
        try:
            await self._api().call(
                "POST", self.stop_path, json={"session_id": remote_id, **self.stop_extra}, idempotent=True
            )
        except AvatarAPIError as exc:
            if not exc.gone:
                raise
        return True

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
