"""What the Gemini Live service's refusals and closes mean, as one line each.

:func:`service_error` sorts a failure of the SDK (a websocket close, an HTTP refusal of
the handshake, an error message on the stream, a TLS or credentials problem) into the
error voicekit raises: :class:`~voicekit.errors.AuthError` for a rejected key (never
retried), a ``BackendError`` that says whether trying again may help and how long the
service asked to wait (``retry_after``, from ``Retry-After`` or Google's ``retryDelay``),
or ``None`` for a plain network failure, which the link retries by the role's policy.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import AuthError, BackendError, VoicekitError


@dataclass(frozen=True)
class Account:
    """What an error message needs to know about the backend that failed."""

    label: str  # "llm:gemini_live"
    model: str
    default_model: str
    vertexai: bool
    key_source: str | None  # where the key came from (None: Vertex credentials)
    key_env: str | None


def service_error(exc: BaseException, who: Account) -> VoicekitError | None:
    """The error to raise for a failure of the service, or None when reconnecting may help."""
    if isinstance(exc, VoicekitError):
        return exc
    if _find(exc, ssl.SSLCertVerificationError) is not None:
        return BackendError(
            f"{who.label}: the server's TLS certificate is not trusted ({exc}); "
            "set SSL_CERT_FILE or llm.ca_file, or check llm.base_url"
        )
    if any(type(e).__name__ in ("DefaultCredentialsError", "RefreshError") for e in _chain(exc)):
        return AuthError(
            f"{who.label}: no usable Google Cloud credentials for Vertex AI ({exc}); set "
            "GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default login', or use GEMINI_API_KEY"
        )
    code, reason = close_info(exc)
    text = f"{reason} {getattr(exc, 'status', None) or ''}".lower()
    said = f" (server said: {code} {reason})" if reason else f" ({code})"
    if code in (401, 403) or "api key" in text or "unauthenticated" in text or "permission_denied" in text:
        where = "your Google Cloud credentials" if who.vertexai and who.key_source is None else None
        fix = f"check {where}" if where else f"set a valid key in {who.key_source or who.key_env}"
        return AuthError(f"{who.label}: the Gemini Live service rejected the API key{said}; {fix}")
    if code == 404 and "model" not in text:
        return BackendError(f"{who.label}: no Live endpoint at this address{said}; check llm.base_url")
    if ("model" in text and "not found" in text) or "not supported for bidigeneratecontent" in text:
        return BackendError(
            f"{who.label}: model {who.model!r} is not available for the Live API{said}; "
            f"set option llm.model (e.g. {who.default_model})"
        )
    if code == 429 or "quota" in text or "resource_exhausted" in text or "exhausted" in text:
        wait = retry_delay(exc)
        asked = f"; the service asks to wait {wait:g} s" if wait is not None else ""
        return BackendError(
            f"{who.label}: Gemini Live quota or rate limit reached{said}{asked}; retry later or check your plan",
            retryable=True,
            retry_after=wait,
        )
    if code in (400, 1007, 1008):
        return BackendError(f"{who.label}: the service refused the live session{said}; check the llm options")
    return None


def close_info(exc: BaseException) -> tuple[int | None, str]:
    """(code, reason) of an SDK APIError, a websocket close, or an HTTP handshake refusal."""
    code: int | None = None
    reason = ""
    if hasattr(exc, "code") and hasattr(exc, "details"):  # google.genai.errors.APIError
        code = exc.code
        details = exc.details
        reason = details if isinstance(details, str) else str(getattr(exc, "message", "") or details or "")
    elif getattr(exc, "rcvd", None) is not None:  # websockets.ConnectionClosed
        code, reason = exc.rcvd.code, exc.rcvd.reason  # type: ignore[attr-defined]
    elif getattr(getattr(exc, "response", None), "status_code", None) is not None:  # websockets.InvalidStatus
        code = exc.response.status_code  # type: ignore[attr-defined]
        body = _json(getattr(exc.response, "body", b""))  # type: ignore[attr-defined]
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping) and error.get("message"):
            reason = f"{error.get('status') or ''} {error['message']}".strip()
        else:
            reason = bytes(getattr(exc.response, "body", b"") or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
    else:
        reason = str(exc) or type(exc).__name__
    reason = " ".join(str(reason).split())
    return (int(code) if isinstance(code, int) else None), (reason[:200] + "…" if len(reason) > 200 else reason)


def retry_delay(exc: BaseException) -> float | None:
    """The wait the service asked for: a ``Retry-After`` header, or a ``retryDelay`` in the error body."""
    for error in _chain(exc):
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None)
        if isinstance(headers, Mapping) and (found := retry_after_seconds(headers)) is not None:
            return found
        for body in (_json(getattr(response, "body", None)), getattr(error, "details", None)):
            if isinstance(body, Mapping) and (found := retry_after_seconds(body)) is not None:
                return found
    return None


def _json(raw: object) -> object:
    """An HTTP body (bytes, or the bytearray websockets keeps) as JSON; None when it is not."""
    if not isinstance(raw, (bytes, bytearray, str)) or not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and its causes, innermost last."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _find(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)
