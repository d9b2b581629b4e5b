"""Gemini (Google AI Studio API) as the conversation's language model, text in and text out.

It streams ``streamGenerateContent`` through the ``google-genai`` SDK. The conversation
history is kept by the core and sent whole with every request (the SDK's ``chats``
helper would store each streamed chunk as its own history entry).

Who retries: not this backend. A failure raises a :class:`~voicekit.errors.BackendError`
saying whether a retry may help (429, 5xx, a dropped connection) and how long the service
asks to wait (``Retry-After``, or ``RetryInfo.retryDelay`` in the error body); the core
tries ``respond()`` again per the role's ``retry:`` policy until the first token has
arrived. After that a failure ends the turn, because a retry would speak the reply twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import AuthError, BackendError, VoicekitError
from voicekit.events import LLMDone, LLMEvent, TextDelta
from voicekit.options import CloudOptions
from voicekit.roles import LLM, BackendContext, Capabilities, Message
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.types import GenerateContentResponse

log = logging.getLogger(__name__)

FALLBACK_KEY_ENV = "GOOGLE_API_KEY"
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class GeminiOptions(CloudOptions):
    """Options of the Gemini text model."""

    model: str = Field("gemini-2.5-flash", description="Model name, e.g. gemini-2.5-flash or gemini-2.5-flash-lite")
    system: str | None = Field(None, description="System instruction: who the assistant is and how it answers")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature; default: the model's")
    max_output_tokens: int | None = Field(
        None, gt=0, le=1_000_000, description="Longest reply in tokens; default: the model's"
    )
    thinking_budget: int | None = Field(
        None,
        ge=-1,
        le=100_000,
        description="Thinking tokens (0 turns thinking off for a faster first token; -1: automatic)",
    )
    api_version: str = Field("v1beta", description="API version in the request path (v1beta or v1)")
    timeout_s: float = Field(30.0, gt=0, le=600, description="Longest wait for the first token, and between two chunks")


class GeminiLLM(LLM):
    """Google Gemini through the ``google-genai`` SDK (``streamGenerateContent``, SSE).

    ``respond`` yields a :class:`TextDelta` per streamed chunk and then :class:`LLMDone`
    with the whole reply. The key comes from ``api_key``, ``GEMINI_API_KEY`` or, failing
    both, ``GOOGLE_API_KEY``. Each request is tried once; the core retries ``respond()``
    per the role's ``retry:`` policy until the first event.
    """

    Options: ClassVar[type[GeminiOptions]] = GeminiOptions
    capabilities = Capabilities(streaming=True)
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    api_key_fallback_envs: ClassVar[tuple[str, ...]] = (FALLBACK_KEY_ENV,)
    extra: ClassVar[str | None] = "google"
    options: GeminiOptions

    def __init__(self, options: GeminiOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._client: Client | None = None
        self._types: Any = None
        self._errors: Any = None

    async def start(self) -> None:
        if self._client is not None:
            return
        key = self.api_key()
        genai = import_sdk("google.genai", package="google-genai", extra="google", backend=self.name or "gemini")
        self._types = import_sdk("google.genai.types", package="google-genai", extra="google")
        self._errors = import_sdk("google.genai.errors", package="google-genai", extra="google")
        http_options = self._types.HttpOptions(
            base_url=self.options.base_url,
            api_version=self.options.api_version,
            # One attempt per call: the core retries, and only before the first token.
            # (Without retry options the SDK also sleeps 1-10 s after a refused connection.)
            retry_options=self._types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(api_key=key, http_options=http_options)
        self._warm_up()

    def _warm_up(self) -> None:
        """Build the SDK's request and response models now: pydantic builds validators on
        first use, which otherwise adds ~200 ms to the first turn's first token."""
        types = self._types
        self.contents([Message("assistant", "ok")], "ok")
        self.config()
        types.GenerateContentResponse.model_validate(
            {
                "candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 1},
            }
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()

    # --- request ----------------------------------------------------------------

    def contents(self, history: Sequence[Message], user_text: str) -> list[Any]:
        """The history plus the new user turn as Gemini ``Content``s (roles user/model).

        Empty messages are skipped and neighbours with the same role are merged, so the
        roles always alternate.
        """
        types = self._types
        merged: list[tuple[str, list[str]]] = []
        for role, text in [*((m.role, m.text) for m in history), ("user", user_text)]:
            if not text or not text.strip():
                continue
            wire_role = "model" if role == "assistant" else "user"
            if merged and merged[-1][0] == wire_role:
                merged[-1][1].append(text)
            else:
                merged.append((wire_role, [text]))
        return [types.Content(role=role, parts=[types.Part(text=t) for t in texts]) for role, texts in merged]

    def config(self) -> Any:
        opts = self.options
        thinking = None
        if opts.thinking_budget is not None:
            thinking = self._types.ThinkingConfig(thinking_budget=opts.thinking_budget)
        return self._types.GenerateContentConfig(
            system_instruction=opts.system or None,
            temperature=opts.temperature,
            max_output_tokens=opts.max_output_tokens,
            thinking_config=thinking,
            automatic_function_calling=self._types.AutomaticFunctionCallingConfig(disable=True),
        )

    # --- streaming --------------------------------------------------------------

    async def respond(self, history: Sequence[Message], user_text: str) -> AsyncIterator[LLMEvent]:
        if self._client is None:
            await self.start()
        assert self._client is not None
        contents = self.contents(history, user_text)
        config = self.config()
        pieces: list[str] = []
        try:
            async with contextlib.aclosing(self._stream_once(contents, config)) as stream:
                async for text in stream:
                    pieces.append(text)
                    yield TextDelta(text)
        except VoicekitError:
            raise
        except Exception as exc:  # every SDK/transport failure is sorted by _translate
            raise self._translate(exc, started=bool(pieces)) from exc
        text = "".join(pieces)
        if not text:
            log.warning("%s: the model returned no text for this turn", self.label)
        yield LLMDone(text)

    async def _stream_once(self, contents: list[Any], config: Any) -> AsyncGenerator[str, None]:
        assert self._client is not None
        stream = await asyncio.wait_for(
            self._client.aio.models.generate_content_stream(model=self.options.model, contents=contents, config=config),
            self.options.timeout_s,
        )
        iterator = stream.__aiter__()
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(iterator.__anext__(), self.options.timeout_s)
                except StopAsyncIteration:
                    return
                text = chunk_text(chunk)
                if text:
                    yield text
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:  # closing a broken stream must not hide why it broke
                    log.debug("closing the Gemini stream failed", exc_info=True)

    # --- errors -----------------------------------------------------------------

    def _translate(self, exc: BaseException, *, started: bool) -> BackendError | AuthError:
        """One-line voicekit error for an SDK or transport failure."""
        errors = self._errors
        who = self.label
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            what = "between two chunks" if started else "for the first token"
            return BackendError(
                f"{who}: no answer from Gemini {what} within {self.options.timeout_s:g} s (option llm.timeout_s)",
                retryable=True,
            )
        if errors is not None and isinstance(exc, errors.APIError):
            code = int(exc.code or 0)
            status = exc.status or ""
            message = one_line(exc.message or str(exc))
            if code in (401, 403) or (code == 400 and is_bad_key(exc)):
                return AuthError(
                    f"{who}: Gemini rejected the API key ({code} {status}: {message}); "
                    f"set {self.key_source or self.api_key_env} to a valid key"
                )
            if code == 404:
                return BackendError(
                    f"{who}: model '{self.options.model}' was not found for API {self.options.api_version} "
                    f"({message}); set llm.model to an available model such as gemini-2.5-flash"
                )
            if code in _RETRYABLE_STATUS:
                return BackendError(
                    f"{who}: Gemini answered {code} {status}: {message}",
                    retryable=True,
                    retry_after=retry_after_of(exc),
                )
            return BackendError(f"{who}: Gemini refused the request ({code} {status}: {message})")
        # Connection refused or dropped, a stream cut in the middle: worth another try.
        return BackendError(
            f"{who}: connection to Gemini failed ({type(exc).__name__}: {one_line(str(exc))}); "
            "check the network and llm.base_url",
            retryable=True,
        )


# --- helpers (module level so tests can feed them real vendor payloads) -------------


def chunk_text(chunk: GenerateContentResponse) -> str:
    """The reply text in one streamed ``GenerateContentResponse`` (thoughts left out)."""
    candidates = getattr(chunk, "candidates", None) or []
    if not candidates:
        return ""
    content = getattr(candidates[0], "content", None)
    parts = getattr(content, "parts", None) or []
    return "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))


def is_bad_key(exc: Any) -> bool:
    """A 400 that means a bad key (Gemini answers an invalid key with 400 API_KEY_INVALID)."""
    details = getattr(exc, "details", None)
    blob = repr(details) + " " + str(getattr(exc, "message", "") or "")
    return "API_KEY_INVALID" in blob or "API key not valid" in blob or "API key expired" in blob


def retry_after_of(exc: Any) -> float | None:
    """Seconds the service asks to wait: its ``Retry-After`` header, else the
    ``google.rpc.RetryInfo.retryDelay`` in the error body (what Gemini's 429s carry)."""
    response = getattr(exc, "response", None)
    from_header = retry_after_seconds(getattr(response, "headers", None))
    return from_header if from_header is not None else retry_after_seconds(getattr(exc, "details", None))


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
