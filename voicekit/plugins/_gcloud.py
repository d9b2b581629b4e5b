"""What the Google Cloud gRPC backends share: endpoints, credentials, errors, locales.

Used by ``stt: google`` and ``output: chirp3``. Nothing here imports a Google SDK at
module level; the SDK modules are imported by the functions that need them, which
run inside ``start()``.

Endpoint rules (option ``base_url``):

- unset: the vendor host on port 443, TLS, with credentials;
- ``host:port`` or ``https://host[:port]``: TLS with credentials (regional endpoints,
  proxies), except that a bare ``host:port`` on a loopback address is plain text;
- ``http://host:port``: plain text, allowed only for loopback addresses
  (127.0.0.0/8, ::1, localhost) — a local fake or an on-prem sidecar. On a plain-text
  channel only ``api_key`` is sent (as ``x-goog-api-key``); Google OAuth tokens never
  travel unencrypted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import AuthError, BackendError, MissingSecretError, ProfileError
from voicekit.options import CloudOptions

log = logging.getLogger(__name__)

CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

# gRPC status names after which the same request may succeed later.
RETRYABLE = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED"})
AUTH_FAILURES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})

# Locale used when the profile gives a bare language ("ru" -> "ru-RU").
DEFAULT_LOCALES = {
    "ar": "ar-XA", "bn": "bn-IN", "cs": "cs-CZ", "da": "da-DK", "de": "de-DE", "el": "el-GR",
    "en": "en-US", "es": "es-ES", "fi": "fi-FI", "fr": "fr-FR", "gu": "gu-IN", "he": "he-IL",
    "hi": "hi-IN", "hu": "hu-HU", "id": "id-ID", "it": "it-IT", "ja": "ja-JP", "kn": "kn-IN",
    "ko": "ko-KR", "ml": "ml-IN", "mr": "mr-IN", "nb": "nb-NO", "nl": "nl-NL", "pl": "pl-PL",
    "pt": "pt-BR", "ro": "ro-RO", "ru": "ru-RU", "sk": "sk-SK", "sv": "sv-SE", "ta": "ta-IN",
    "te": "te-IN", "th": "th-TH", "tr": "tr-TR", "uk": "uk-UA", "ur": "ur-IN", "vi": "vi-VN",
    "zh": "cmn-CN",
}  # fmt: skip


class GoogleCloudOptions(CloudOptions):
    """Options every Google Cloud gRPC backend shares."""

    api_key: SecretStr | None = Field(
        None, description="Google Cloud API key, sent as x-goog-api-key; default: Application Default Credentials"
    )
    base_url: str | None = Field(
        None,
        description="gRPC endpoint: host:port or https://host:port (TLS); http://host:port (plain text) "
        "only for loopback addresses",
    )
    credentials_file: str | None = Field(
        None, description=f"Service-account JSON key; default: Application Default Credentials ({CREDENTIALS_ENV})"
    )
    language: str | None = Field(None, description="BCP-47 locale such as ru-RU; default: the profile's language")


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and whether the channel is plain text."""

    target: str  # host:port as gRPC wants it
    plaintext: bool


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_endpoint(base_url: str | None, default_host: str, who: str) -> Endpoint:
    """Apply the endpoint rules of this module's docstring."""
    if not base_url:
        return Endpoint(f"{default_host}:443", plaintext=False)
    raw = base_url.strip()
    scheme = ""
    if "://" in raw:
        parts = urlsplit(raw)
        scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
        if scheme not in ("http", "https", "grpc", "grpcs"):
            raise ProfileError(f"{who}: base_url {raw!r} has an unknown scheme; use host:port or https://host:port")
        if parts.path not in ("", "/"):
            raise ProfileError(f"{who}: base_url {raw!r} must not have a path; gRPC needs only host:port")
    else:
        parts = urlsplit("//" + raw)
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise ProfileError(f"{who}: base_url {raw!r} is not host:port") from None
    if not host:
        raise ProfileError(f"{who}: base_url {raw!r} has no host")
    loopback = is_loopback(host)
    plaintext = scheme in ("http", "grpc") or (not scheme and loopback)
    if plaintext and not loopback:
        raise ProfileError(
            f"{who}: plain-text gRPC to {host} refused: only loopback addresses (127.0.0.0/8, ::1, localhost) "
            f"may be used without TLS; use https://{host}:{port or 443}"
        )
    hostpart = f"[{host}]" if ":" in host else host
    return Endpoint(f"{hostpart}:{port or (80 if plaintext else 443)}", plaintext=plaintext)


def locale_for(language: str | None, fallback: str = "en-US") -> str:
    """A full locale for a profile language ("ru" -> "ru-RU"); full locales pass through."""
    if not language:
        return fallback
    if "-" in language or "_" in language:
        return language.replace("_", "-")
    return DEFAULT_LOCALES.get(language.lower(), language)


@dataclass
class Connection:
    """A transport made for the running loop plus the per-call metadata it needs."""

    transport: Any
    metadata: tuple[tuple[str, str], ...]
    project: str | None


async def connect(transport_cls: Any, endpoint: Endpoint, options: GoogleCloudOptions, who: str) -> Connection:
    """Build a gRPC asyncio transport: plain text for loopback, else TLS with credentials.

    Must run inside the event loop that will use it (grpc.aio channels bind to it).
    """
    import grpc

    api_key = options.api_key.get_secret_value() if options.api_key is not None else ""
    if endpoint.plaintext:
        channel = grpc.aio.insecure_channel(endpoint.target)
        transport = transport_cls(host=endpoint.target, channel=channel)
        metadata = (("x-goog-api-key", api_key),) if api_key else ()
        return Connection(transport, metadata, os.environ.get(PROJECT_ENV))
    credentials, project = await asyncio.to_thread(load_credentials, options, who)
    transport = transport_cls(host=endpoint.target, credentials=credentials)
    return Connection(transport, (), project)


def load_credentials(options: GoogleCloudOptions, who: str) -> tuple[Any, str | None]:
    """Credentials in order: ``credentials_file``, ``api_key``, Application Default Credentials."""
    import google.auth
    from google.auth import exceptions as auth_exceptions

    project_env = os.environ.get(PROJECT_ENV)
    if options.credentials_file:
        path = os.path.expanduser(options.credentials_file)
        if not os.path.isfile(path):
            raise MissingSecretError(
                f"{who}: credentials_file {path} does not exist; point it at a service-account JSON key "
                f"or remove it to use {CREDENTIALS_ENV}"
            )
        try:
            creds, project = google.auth.load_credentials_from_file(path, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
        except (auth_exceptions.DefaultCredentialsError, ValueError) as exc:
            raise MissingSecretError(f"{who}: credentials_file {path} is not a usable key: {one_line(exc)}") from exc
        return creds, project_env or project
    if options.api_key is not None and options.api_key.get_secret_value():
        from google.auth import api_key as api_key_credentials

        key = options.api_key.get_secret_value()
        return api_key_credentials.Credentials(key), project_env  # type: ignore[no-untyped-call]
    # google-auth logs a warning for each place it looked in vain; the error below says it all.
    quiet = _DropWarnings()
    auth_log = logging.getLogger("google.auth._default")
    auth_log.addFilter(quiet)
    try:
        creds, project = google.auth.default(scopes=list(SCOPES))
    except auth_exceptions.DefaultCredentialsError as exc:
        raise MissingSecretError(
            f"{who}: no Google Cloud credentials found; set {CREDENTIALS_ENV} to a service-account JSON key, "
            f"set the option credentials_file, or run 'gcloud auth application-default login'"
        ) from exc
    finally:
        auth_log.removeFilter(quiet)
    return creds, project_env or project


class _DropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING


def one_line(value: object, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_of(exc: BaseException) -> tuple[str, str]:
    """(gRPC status name, message) of an api_core or grpc error; ("", str) for anything else."""
    code = getattr(exc, "grpc_status_code", None)
    if code is not None:
        return code.name, one_line(getattr(exc, "message", "") or exc)
    code_fn = getattr(exc, "code", None)
    if callable(code_fn):  # a bare grpc.RpcError
        try:
            status = code_fn()
            return getattr(status, "name", str(status)), one_line(exc.details())  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - best effort description of a foreign error
            pass
    return "", one_line(exc)


def translate(exc: BaseException, who: str, service: str, where: str = "") -> BackendError | AuthError:
    """Turn a gRPC failure into a voicekit error with a one-line, actionable message.

    Whether a retry may help comes from the status (UNAVAILABLE, RESOURCE_EXHAUSTED, …);
    the wait the service asks for, from its ``RetryInfo``. Who retries is the caller's
    business (the core for one request, the stream itself for a reconnect). ``where`` is
    the backend's place in the profile (``output``), for what to check.
    """
    status, message = status_of(exc)
    if status in AUTH_FAILURES or "API key not valid" in message:
        return AuthError(
            f"{who}: Google Cloud rejected the credentials ({status or 'INVALID_ARGUMENT'}: {message}); "
            f"check {CREDENTIALS_ENV}, the credentials_file or api_key option, and that the {service} API "
            f"is enabled for the project"
        )
    retryable = status in RETRYABLE
    retry_after = retry_after_of(exc) if retryable else None
    hint = ""
    if status == "RESOURCE_EXHAUSTED":
        hint = "; over the project's quota" + (f", asked to wait {retry_after:g} s" if retry_after is not None else "")
    elif retryable:
        hint = f"; check the network and {where + '.' if where else ''}base_url, or try again later"
    return BackendError(
        f"{who}: {service} failed ({status or type(exc).__name__}: {message}){hint}",
        retryable=retryable,
        retry_after=retry_after,
    )


def retry_after_of(exc: BaseException) -> float | None:
    """The ``google.rpc.RetryInfo`` delay of an api_core error (its ``details``), in seconds."""
    details = getattr(exc, "details", None)  # api_core: the status details; a bare grpc error: a method
    if not isinstance(details, (list, tuple)):
        return None
    for detail in details:
        delay = getattr(detail, "retry_delay", None)
        to_json = getattr(delay, "ToJsonString", None)  # a protobuf Duration: "1.500s"
        if callable(to_json):
            return retry_after_seconds(to_json())
    return None
