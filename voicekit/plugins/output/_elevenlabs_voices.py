"""The voices an ElevenLabs key may use (``GET /v1/voices`` through the SDK's ``voices.get_all``)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from voicekit.errors import BackendError
from voicekit.roles import ModelInfo
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from voicekit.plugins.output.elevenlabs import ElevenLabsOutput


async def list_voices(backend: ElevenLabsOutput) -> list[ModelInfo]:
    """Premade voices and the account's own, each named by its ``voice_id``."""
    sdk = import_sdk(
        "elevenlabs.client", package="elevenlabs", extra="elevenlabs", backend=backend.name or "elevenlabs"
    )
    core = import_sdk("elevenlabs.core.api_error", package="elevenlabs", extra="elevenlabs")
    client = sdk.AsyncElevenLabs(
        api_key=backend.api_key(), base_url=backend.http_base_url, timeout=backend.options.timeout_s
    )
    try:
        response: Any = await client.voices.get_all()
    except core.ApiError as exc:
        if exc.status_code in (401, 403):
            raise backend.auth_error(f"HTTP {exc.status_code}") from exc
        raise BackendError(f"{backend.label}: listing ElevenLabs voices failed (HTTP {exc.status_code})") from exc
    except OSError as exc:
        raise BackendError(f"{backend.label}: cannot reach ElevenLabs: {type(exc).__name__}: {exc}") from exc
    finally:
        httpx_client = getattr(getattr(client, "_client_wrapper", None), "httpx_client", None)
        with contextlib.suppress(Exception):
            await httpx_client.httpx_client.aclose()  # type: ignore[union-attr]
    voices = []
    for voice in response.voices or []:
        labels = dict(voice.labels or {})
        details = ", ".join(v for k, v in labels.items() if k in ("gender", "age", "accent", "description") and v)
        languages = tuple(dict.fromkeys(v.language for v in (voice.verified_languages or []) if v.language))
        voices.append(
            ModelInfo(
                id=str(voice.voice_id),
                name=str(voice.name or ""),
                description=f"{voice.category or ''}{': ' if voice.category and details else ''}{details}",
                languages=languages,
                kind="voice",
            )
        )
    return voices
