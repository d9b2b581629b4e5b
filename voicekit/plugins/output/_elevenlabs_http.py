"""ElevenLabs over HTTP: one streaming ``text-to-speech/{voice}/stream`` request per sentence.

Slower to start than the websocket (a request per sentence, no text buffered ahead),
but it needs no long-lived connection: the fallback for proxies that block websockets.
Each request is tried once; a failure says whether a retry may help and how long the
service asks to wait (``Retry-After``), and the core retries the turn per the role's
``retry:`` policy. A sentence's ``SpeakingStarted`` comes with its first audio, so a
turn whose first request fails has yielded nothing and can be tried again whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import BackendError, VoicekitError
from voicekit.events import AudioOut, OutputEvent, SpeakingEnded, SpeakingStarted
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from voicekit.plugins.output.elevenlabs import ElevenLabsOutput


async def speak_http(
    out: ElevenLabsOutput, client: Any, sentences: AsyncIterator[str], generation: int
) -> AsyncIterator[OutputEvent]:
    """``speak`` through the SDK's async HTTP client; stops once ``out.generation`` is no longer ``generation``
    (``out.interrupt()`` was called)."""
    sdk_types = import_sdk("elevenlabs.types", package="elevenlabs", extra="elevenlabs")
    core = import_sdk("elevenlabs.core.api_error", package="elevenlabs", extra="elevenlabs")
    options = out.options
    settings = sdk_types.VoiceSettings(**out.voice_settings())
    extra = {"language_code": out.language_code} if out.language_code else {}
    async for sentence in sentences:
        if generation != out.generation:
            return
        text = " ".join(sentence.split())
        if not text:
            continue
        started = False
        carry = b""
        try:
            stream = client.text_to_speech.stream(
                options.voice_id,
                text=text,
                model_id=options.model,
                output_format=options.output_format,
                voice_settings=settings,
                **extra,
            )
            async for chunk in stream:
                if generation != out.generation:
                    return
                pcm, carry = carry + chunk, b""
                if len(pcm) % 2:
                    pcm, carry = pcm[:-1], pcm[-1:]
                if pcm:
                    if not started:
                        started = True
                        yield SpeakingStarted(text)
                    yield AudioOut(pcm, out.sample_rate)
        except core.ApiError as exc:
            raise http_error(out, exc) from exc
        except VoicekitError:
            raise
        except Exception as exc:  # transport failures (httpx) become one line
            raise BackendError(
                f"{out.label}: ElevenLabs request failed ({exc}); check the network and {out.profile_key}.base_url",
                retryable=True,
            ) from exc
        if generation != out.generation:
            return
        if not started:
            yield SpeakingStarted(text)
        yield SpeakingEnded(text)


def http_error(out: ElevenLabsOutput, exc: Any) -> VoicekitError:
    """One-line error for an SDK ``ApiError`` (``{"detail": {"status", "message"}}`` bodies)."""
    status = int(getattr(exc, "status_code", 0) or 0)
    body = exc.body
    detail = body.get("detail", body) if isinstance(body, dict) else body
    message = detail.get("message", detail) if isinstance(detail, dict) else detail
    text = " ".join(str(message).split())[:300]
    if status in (401, 403):
        return out.auth_error(f"HTTP {status}: {text}")
    if status == 404:
        return BackendError(f"{out.label}: ElevenLabs: {text} (HTTP 404); check {out.profile_key}.voice_id")
    retryable = status >= 500 or status in (408, 429)
    retry_after = retry_after_seconds(exc.headers) if retryable else None
    asked = f", asking to wait {retry_after:g} s" if retry_after is not None else ""
    return BackendError(
        f"{out.label}: ElevenLabs HTTP {status}{asked}: {text}", retryable=retryable, retry_after=retry_after
    )
