"""The Gemini API's model list (``models.list`` through ``google-genai``), for ``gemini`` and ``gemini_live``."""

from __future__ import annotations

from typing import Any

from voicekit.errors import AuthError, BackendError
from voicekit.roles import ModelInfo
from voicekit.sdk import import_sdk


async def list_models(client: Any, *, method: str, label: str, key_env: str | None) -> list[ModelInfo]:
    """The base models whose ``supportedGenerationMethods`` include ``method``
    (``generateContent`` for text, ``bidiGenerateContent`` for Live), every page of them.

    ``client`` is a ``google.genai.Client``; it is closed here.
    """
    errors = import_sdk("google.genai.errors", package="google-genai", extra="google")
    found: list[ModelInfo] = []
    try:
        pager = await client.aio.models.list(config={"page_size": 100})
        async for model in pager:
            if method not in (model.supported_actions or []):
                continue
            name = str(model.name or "")
            short = name.removeprefix("models/")
            found.append(
                ModelInfo(
                    id=short,
                    name=str(model.display_name or ""),
                    description=str(model.description or ""),
                    aliases=(name,) if name != short else (),
                )
            )
    except errors.APIError as exc:
        message = str(getattr(exc, "message", "") or exc)
        if exc.code in (401, 403) or "API key not valid" in message:
            raise AuthError(
                f"{label}: Gemini rejected the API key ({exc.code} {exc.status}: {message}); "
                f"set {key_env or 'api_key'} to a valid key"
            ) from exc
        raise BackendError(f"{label}: listing Gemini's models failed ({exc.code} {exc.status}: {message})") from exc
    except OSError as exc:
        raise BackendError(f"{label}: cannot reach the Gemini API: {type(exc).__name__}: {exc}") from exc
    finally:
        await client.aio.aclose()
        client.close()
    return found
