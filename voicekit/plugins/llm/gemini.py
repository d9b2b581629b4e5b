"""Gemini (Google AI Studio API) as the conversation's language model, text in and text out.

It streams ``streamGenerateContent`` through the ``google-genai`` SDK. The conversation
history is kept by the core and sent whole with every request (the SDK's ``chats``
helper would store each streamed chunk as its own history entry).

Tools: given ``tools``, it declares them as ``FunctionDeclaration`` s (automatic function
calling stays off: the core runs the tools) and yields a :class:`~voicekit.events.ToolCall`
per ``functionCall`` part of the reply, parallel calls included, once the stream has ended.
A history message with calls becomes the model's content (its text and a ``functionCall``
part per call, as the model sent it: with its ``id`` and ``thoughtSignature``, which Gemini 3
requires back) and a user content with a ``functionResponse`` per result. The model call
after the last round allowed (``tools=()``) keeps the declarations with the function-calling
mode ``NONE``: the model answers in text about calls it made earlier.

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
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import AuthError, BackendError, VoicekitError
from voicekit.events import LLMDone, LLMEvent, TextDelta, ToolCall, ToolResult
from voicekit.options import CloudOptions
from voicekit.plugins.llm.gemini_live import functions
from voicekit.roles import LLM, BackendContext, Capabilities, Message, ModelInfo, ToolSpec
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.types import GenerateContentResponse, Part

log = logging.getLogger(__name__)

FALLBACK_KEY_ENV = "GOOGLE_API_KEY"
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_REMEMBERED_CALLS = 512  # the model's call parts kept to send back (ids, thought signatures)


# Checked 2026-12-04 against Google's "Gemini deprecations" page (ai.google.dev/gemini-api/docs/deprecations,
# the copy of September 2026): gemini-3.8-flash is stable (released 2026-09-02) with no shutdown date, while
# gemini-2.5-flash is shut down (December 2026). gemini-3.5-flash-lite is the stable Flash-Lite.
DEFAULT_MODEL = "gemini-3.8-flash"


class GeminiOptions(CloudOptions):
    """Options of the Gemini text model."""

    model: str = Field(DEFAULT_MODEL, description="Model name, e.g. gemini-3.8-flash or gemini-3.5-flash-lite")
    system: str | None = Field(None, description="System instruction: who the assistant is and how it answers")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature; default: the model's")
    max_output_tokens: int | None = Field(
        None, gt=0, le=1_000_000, description="Longest reply in tokens; default: the model's"
    )
    thinking_level: Literal["minimal", "low", "medium", "high"] | None = Field(
        None, description="How much Gemini 3 models think before answering (low: a faster first token)"
    )
    thinking_budget: int | None = Field(
        None,
        ge=-1,
        le=100_000,
        description="Gemini 2.5 models: thinking tokens (0 turns thinking off; -1: automatic); "
        "Gemini 3 models take thinking_level",
    )
    api_version: str = Field("v1beta", description="API version in the request path (v1beta or v1)")
    timeout_s: float = Field(30.0, gt=0, le=600, description="Longest wait for the first token, and between two chunks")


class GeminiLLM(LLM):
    """Google Gemini through the ``google-genai`` SDK (``streamGenerateContent``, SSE).

    ``respond`` yields a :class:`TextDelta` per streamed chunk, a :class:`ToolCall` per
    function call (when given tools), then :class:`LLMDone` with the whole text. It remembers
    the model's last few hundred call parts, to send each back as it came. The key comes from
    ``api_key``, ``GEMINI_API_KEY`` or, failing both, ``GOOGLE_API_KEY``. Each request is
    tried once; the core retries ``respond()`` per the role's ``retry:`` policy until the
    first event.
    """

    Options: ClassVar[type[GeminiOptions]] = GeminiOptions
    capabilities = Capabilities(streaming=True, tools=True)
    api_key_env: ClassVar[str | None] = "GEMINI_API_KEY"
    api_key_fallback_envs: ClassVar[tuple[str, ...]] = (FALLBACK_KEY_ENV,)
    extra: ClassVar[str | None] = "google"
    sdk_distributions: ClassVar[tuple[str, ...]] = ("google-genai",)
    options: GeminiOptions

    def __init__(self, options: GeminiOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._client: Client | None = None
        self._types: Any = None
        self._errors: Any = None
        self._calls: OrderedDict[str, Part] = OrderedDict()  # ToolCall.id → the part the model sent
        self._declared: tuple[ToolSpec, ...] = ()  # the last tools given, for the round without them

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
        functions.declarations(types, [ToolSpec("ok", "ok")])
        types.GenerateContentResponse.model_validate(
            {
                "candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 1},
            }
        )

    async def list_models(self) -> list[ModelInfo]:
        """The models that take ``generateContent`` with this key (``models.list``)."""
        from voicekit.plugins.llm._gemini_models import list_models

        key = self.api_key()
        genai = import_sdk("google.genai", package="google-genai", extra="google", backend=self.name or "gemini")
        types = import_sdk("google.genai.types", package="google-genai", extra="google")
        http_options = types.HttpOptions(
            base_url=self.options.base_url,
            api_version=self.options.api_version,
            retry_options=types.HttpRetryOptions(attempts=1),
            timeout=int(self.options.timeout_s * 1000),
        )
        client = genai.Client(api_key=key, http_options=http_options)
        return await list_models(client, method="generateContent", label=self.label, key_env=self.key_source)

    def chosen_model(self) -> str | None:
        return self.options.model

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()

    # --- request ----------------------------------------------------------------

    def contents(self, history: Sequence[Message], user_text: str) -> list[Any]:
        """The history plus the new user turn as Gemini ``Content``s (roles user/model).

        Empty texts are skipped and neighbours with the same role are merged, so the roles
        always alternate. A message with tool calls gives the model's content (its text, a
        ``functionCall`` part per call) and a user content of their ``functionResponse`` s.
        ``user_text=""`` (a later round of tools) adds no user content.
        """
        types = self._types
        merged: list[tuple[str, list[Any]]] = []

        def add(role: str, parts: list[Any]) -> None:
            if not parts:
                return
            if merged and merged[-1][0] == role:
                merged[-1][1].extend(parts)
            else:
                merged.append((role, parts))

        for message in history:
            role = "model" if message.role == "assistant" else "user"
            text_parts = [types.Part(text=message.text)] if message.text.strip() else []
            add(role, text_parts)
            if message.tool_calls:
                add("model", [self._call_part(call) for call in message.tool_calls])
                add("user", self._response_parts(message.tool_calls, message.tool_results))
        if user_text.strip():
            add("user", [types.Part(text=user_text)])
        return [types.Content(role=role, parts=parts) for role, parts in merged]

    def _call_part(self, call: ToolCall) -> Any:
        """The model's own part for ``call`` (its id and thought signature), or one made anew
        for a call this backend did not see (another backend's, or forgotten)."""
        part = self._calls.get(call.id)
        if part is not None:
            return part
        types = self._types
        return types.Part(function_call=types.FunctionCall(name=call.name, args=functions.arguments_of(call.arguments)))

    def _response_parts(self, calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> list[Any]:
        types = self._types
        by_id = {result.id: result for result in results}
        parts = []
        for call in calls:
            sent = self._calls.get(call.id)
            # only an id Gemini gave goes back (the call's own one, when it had any)
            service_id = sent.function_call.id if sent is not None and sent.function_call is not None else None
            response = types.FunctionResponse(
                id=service_id, name=call.name, response=functions.response_payload(by_id.get(call.id))
            )
            parts.append(types.Part(function_response=response))
        return parts

    def config(self, tools: Sequence[ToolSpec] = (), history: Sequence[Message] = ()) -> Any:
        """The request's ``GenerateContentConfig``: the options, and the tools.

        Without ``tools`` but with calls in ``history`` (the last round allowed), the tools
        given before stay declared with the function-calling mode ``NONE``: the model reads
        the calls in its history and may make no new one.
        """
        opts, types = self.options, self._types
        thinking = None
        if opts.thinking_level is not None:
            thinking = types.ThinkingConfig(thinking_level=opts.thinking_level.upper())
        elif opts.thinking_budget is not None:
            thinking = types.ThinkingConfig(thinking_budget=opts.thinking_budget)
        declared: list[Any] | None = None
        tool_config = None
        if tools:
            self._declared = tuple(tools)
            declared = [functions.declarations(types, tools)]
        else:
            called = [call.name for message in history for call in message.tool_calls]
            if called:
                known = {tool.name for tool in self._declared}
                if set(called) <= known:
                    declared = [functions.declarations(types, self._declared)]
                else:
                    declared = [functions.names_only(types, called)]
                tool_config = types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode=types.FunctionCallingConfigMode.NONE)
                )
        return types.GenerateContentConfig(
            system_instruction=opts.system or None,
            temperature=opts.temperature,
            max_output_tokens=opts.max_output_tokens,
            thinking_config=thinking,
            tools=declared,
            tool_config=tool_config,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )

    # --- streaming --------------------------------------------------------------

    async def respond(
        self, history: Sequence[Message], user_text: str, *, tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]:
        if self._client is None:
            await self.start()
        assert self._client is not None
        contents = self.contents(history, user_text)
        config = self.config(tools, history)
        pieces: list[str] = []
        calls: list[ToolCall] = []
        try:
            async with contextlib.aclosing(self._stream_once(contents, config)) as stream:
                async for item in stream:
                    if isinstance(item, str):
                        pieces.append(item)
                        yield TextDelta(item)
                    else:
                        calls.append(self._remember(item))
        except VoicekitError:
            raise
        except Exception as exc:  # every SDK/transport failure is sorted by _translate
            raise self._translate(exc, started=bool(pieces or calls)) from exc
        text = "".join(pieces)
        if not text and not calls:
            log.warning("%s: the model returned no text for this turn", self.label)
        for call in calls:
            yield call
        yield LLMDone(text)

    def _remember(self, part: Any) -> ToolCall:
        """A ``functionCall`` part as a :class:`ToolCall`; the part is kept to be sent back."""
        function_call = part.function_call
        call = ToolCall(
            function_call.id or functions.new_call_id(),
            function_call.name or "",
            functions.call_arguments(function_call.args),
        )
        self._calls[call.id] = part
        while len(self._calls) > _REMEMBERED_CALLS:
            self._calls.popitem(last=False)
        return call

    async def _stream_once(self, contents: list[Any], config: Any) -> AsyncGenerator[str | Part, None]:
        """The reply's text pieces and its ``functionCall`` parts, as they stream in."""
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
                for part in chunk_calls(chunk):
                    yield part
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


def chunk_calls(chunk: GenerateContentResponse) -> list[Part]:
    """The ``functionCall`` parts of one streamed response, whole (``thought_signature`` kept)."""
    candidates = getattr(chunk, "candidates", None) or []
    if not candidates:
        return []
    parts = getattr(getattr(candidates[0], "content", None), "parts", None) or []
    return [p for p in parts if getattr(p, "function_call", None) is not None and p.function_call.name]


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
