"""An avatar service's REST API: JSON with the ``{"code", "message", "data"}`` envelope.

One :class:`AvatarAPI` per service and key. A call either returns the reply's ``data`` or
raises one clear error: :class:`~voicekit.errors.AuthError` naming the key's variable, or
:class:`AvatarAPIError` saying whether a retry may help (``retryable``, ``retry_after``).
Who retries: the core's policy (:class:`voicekit.engine.retry.Retrier`, the role's
``retry:``), here in :meth:`AvatarAPI.call` for calls that are safe to repeat, and for
every call on a 429 (the service did nothing); the API never sleeps on its own terms.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from voicekit.engine.retry import Retrier, retry_after_seconds
from voicekit.errors import AuthError, BackendError
from voicekit.options import RetryPolicy
from voicekit.sdk import import_sdk

log = logging.getLogger(__name__)

SUCCESS_CODES = (100, 1000)


class AvatarAPIError(BackendError):
    """A failed call: HTTP ``status`` and the vendor's ``code`` (either may be ``None``)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: int | None,
        detail: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def gone(self) -> bool:
        """The session does not exist (any more): for a stop, that means it is closed."""
        text = self.detail.lower()
        return (
            self.code == 400004
            or self.status == 404
            or "does not exist" in text
            or "not found" in text
            or "already closed" in text
            or "already stopped" in text
        )


@dataclass(frozen=True)
class AvatarService:
    """Where a vendor's API is and how it takes its key (shared by its output and its session manager)."""

    vendor: str  # "HeyGen", in messages
    backend: str  # "heygen", in the ledger and `voicekit sessions`
    key_env: str
    url_env: str
    default_url: str
    key_header: str

    def base_url(self, option: str | None = None) -> str:
        """The endpoint: the ``base_url`` option, else the ``url_env`` variable, else the vendor's."""
        return (option or os.environ.get(self.url_env) or self.default_url).rstrip("/")

    def api(
        self, key: str, *, base_url: str | None = None, timeout_s: float = 15.0, retry: RetryPolicy | None = None
    ) -> AvatarAPI:
        return AvatarAPI(
            vendor=self.vendor,
            base_url=self.base_url(base_url),
            headers={self.key_header: key},
            key_env=self.key_env,
            timeout_s=timeout_s,
            retry=retry,
        )


class AvatarAPI:
    """One vendor's REST API through an ``httpx.AsyncClient``."""

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        headers: dict[str, str],
        key_env: str,
        timeout_s: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        httpx = import_sdk("httpx", package="httpx", extra="avatar", backend=vendor.lower())
        self.vendor = vendor
        self.key_env = key_env
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy.model_validate({})
        self._httpx = httpx
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)

    async def call(self, method: str, path: str, *, idempotent: bool = False, **request: Any) -> Any:
        """The ``data`` of a successful reply, tried again per the retry policy: an
        ``idempotent`` call on every retryable failure, any other only on a 429.
        ``request``: what :meth:`call_once` takes."""
        retrier = Retrier(self.retry, label=f"{self.vendor} {_name(path)}")
        while True:
            try:
                return await self.call_once(method, path, **request)
            except AvatarAPIError as exc:
                if not idempotent and exc.status != 429:
                    raise
                await retrier.wait(exc)

    async def call_once(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: str = "key",
    ) -> Any:
        """One request: its ``data``, or the error it makes (``auth="token"``: a 401 is not the key's fault)."""
        name = _name(path)
        try:
            resp = await self._client.request(method, path, json=json, params=params, headers=headers)
        except self._httpx.TransportError as exc:
            raise AvatarAPIError(
                f"{self.vendor} {name}: cannot reach {self.base_url} ({type(exc).__name__}: {exc}); "
                "check the network or the backend's base_url",
                status=None,
                code=None,
                retryable=True,
            ) from exc
        if resp.status_code == 429:
            wait = retry_after_seconds(resp.headers.get("retry-after"))
            after = f"; retry after {wait:.0f} s" if wait is not None else ""
            raise AvatarAPIError(
                f"{self.vendor} {name}: rate limited (HTTP 429){after}",
                status=429,
                code=None,
                retryable=True,
                retry_after=wait,
            )
        return self._result(resp, name, auth)

    def _result(self, resp: Any, name: str, auth: str) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        code = code if isinstance(code, int) else None
        if 200 <= resp.status_code < 300 and (code is None or code in SUCCESS_CODES):
            return body.get("data") if isinstance(body, dict) else body
        message = ""
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("detail") or body.get("error") or "")
        message = message or resp.text[:200] or resp.reason_phrase
        if resp.status_code in (401, 403) and auth == "key":
            raise AuthError(
                f"{self.vendor} rejected the API key (HTTP {resp.status_code}: {message}); "
                f"check the environment variable {self.key_env}"
            )
        return_code = f", code {code}" if code is not None else ""
        raise AvatarAPIError(
            f"{self.vendor} {name} failed (HTTP {resp.status_code}{return_code}): {message}",
            status=resp.status_code,
            code=code,
            detail=message,
            retryable=resp.status_code >= 500,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def too_many_sessions(vendor: str, exc: AvatarAPIError) -> BackendError | None:
    """The account's concurrency limit, if that is what ``exc`` says: leftovers of killed runs are the usual cause."""
    if "concurren" not in exc.detail.lower():
        return None
    return BackendError(
        f"{vendor}: too many sessions open at once ({exc.detail}); see `voicekit sessions list` "
        "and close leftovers with `voicekit sessions close --stale`",
        retryable=True,
    )


def _name(path: str) -> str:
    """How a call is named in messages: ``streaming.new`` for ``/v1/streaming.new``, else the path."""
    return path.rsplit("/", 1)[-1] if "." in path else path
