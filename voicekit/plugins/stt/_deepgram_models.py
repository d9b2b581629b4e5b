"""The models a Deepgram key may use, through the SDK's management API.

Two small authenticated calls: ``GET /v1/projects`` (the key's projects) and
``GET /v1/projects/{id}/models`` (what the first project may use, custom models
included). The public ``GET /v1/models`` would not check the key at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voicekit.errors import AuthError, BackendError
from voicekit.roles import ModelInfo
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from voicekit.plugins.stt.deepgram import DeepgramSTT


async def list_models(backend: DeepgramSTT) -> list[ModelInfo]:
    """The streaming speech-to-text models the key may use; a model is named by its
    ``canonical_name`` (``nova-3-general``) and answers to its architecture (``nova-3``)."""
    from voicekit.plugins.stt.deepgram import service_urls

    key = backend.api_key()
    sdk = import_sdk("deepgram", package="deepgram-sdk", extra="deepgram", backend="deepgram")
    httpx = import_sdk("httpx", package="httpx", extra="deepgram", backend="deepgram")
    api_error = import_sdk("deepgram.core.api_error", package="deepgram-sdk", extra="deepgram", backend="deepgram")
    rest, socket = service_urls(backend.options.base_url)
    environment = sdk.DeepgramClientEnvironment(base=rest, production=socket, agent=socket, agent_rest=rest)
    async with httpx.AsyncClient(timeout=backend.options.timeout_s) as http:
        client = sdk.AsyncDeepgramClient(api_key=key, environment=environment, httpx_client=http)
        try:
            projects: Any = await client.manage.v1.projects.list()
            first = next((p.project_id for p in projects.projects or [] if p.project_id), None)
            if first is None:
                response: Any = await client.manage.v1.models.list()
            else:
                response = await client.manage.v1.projects.models.list(first)
        except api_error.ApiError as exc:
            status = getattr(exc, "status_code", None)
            if status in (401, 403):
                raise AuthError(
                    f"{backend.label}: Deepgram rejected the API key (HTTP {status}): "
                    f"set a valid key in {backend.api_key_env}"
                ) from exc
            raise BackendError(f"{backend.label}: listing Deepgram's models failed (HTTP {status})") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{backend.label}: cannot reach Deepgram: {type(exc).__name__}: {exc}") from exc
    models = []
    for model in response.stt or []:
        if model.streaming is False or not model.canonical_name:
            continue
        aliases = tuple(dict.fromkeys(a for a in (model.architecture, model.name) if a and a != model.canonical_name))
        models.append(
            ModelInfo(
                id=model.canonical_name,
                name=model.name or "",
                description=f"version {model.version}" if model.version else "",
                languages=tuple(model.languages or ()),
                aliases=aliases,
            )
        )
    return models
