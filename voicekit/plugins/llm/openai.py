"""Any OpenAI-compatible chat model: OpenAI itself, Groq, OpenRouter, Together, and the
servers people run locally (Ollama, vLLM, llama.cpp's server, LM Studio).

It streams ``POST {base_url}/chat/completions`` through the official ``openai`` SDK
(``AsyncOpenAI``), with the conversation history kept by voicekit and sent whole with every
request. The SDK's own retries are off (``max_retries=0``): a failure is raised as one
voicekit error that says whether a retry may help, and the engine retries per the role's
``retry:`` policy. With tools, the model's ``tool_calls`` (their JSON arguments streamed
in pieces) come out as :class:`~voicekit.events.ToolCall` events once the stream is done.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from voicekit.engine.retry import retry_after_seconds
from voicekit.errors import AuthError, BackendError, MissingSecretError, VoicekitError
from voicekit.events import LLMDone, LLMEvent, TextDelta, ToolCall
from voicekit.options import CloudOptions
from voicekit.roles import LLM, BackendContext, Capabilities, Message, ToolSpec
from voicekit.sdk import import_sdk

if TYPE_CHECKING:
    from openai import AsyncOpenAI

log = logging.getLogger(__name__)

#: what the SDK sends as the key to a local server that wants none
LOCAL_PLACEHOLDER_KEY = "no-key-needed"
_RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIOptions(CloudOptions):
    """Options of an OpenAI-compatible chat model."""

    model: str = Field(
        "gpt-5.4-mini", description="Model name: an OpenAI model, or whatever the server at base_url serves"
    )
    base_url: str | None = Field(
        None,
        description="The API root, e.g. http://localhost:11434/v1 (Ollama); default: OpenAI (https://api.openai.com/v1)",
    )
    system: str | None = Field(None, description="System message: who the assistant is and how it answers")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature; default: the model's")
    max_tokens: int | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Longest reply in tokens (sent as max_completion_tokens to OpenAI, max_tokens elsewhere)",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="More request fields, as the service names them (e.g. {reasoning_effort: low}, {top_k: 20})",
    )
    timeout_s: float = Field(30.0, gt=0, le=600, description="Longest wait for the reply to start, and between chunks")


@dataclass
class _PendingCall:
    """A tool call while its pieces stream in."""

    id: str = ""
    name: str = ""
    arguments: str = ""


class OpenAILLM(LLM):
    """An OpenAI-compatible chat model through the ``openai`` SDK (streaming chat completions).

    ``respond`` yields a :class:`TextDelta` per streamed piece of text, a :class:`ToolCall`
    per tool call (when given tools), then :class:`LLMDone`. The key comes from ``api_key`` or
    ``OPENAI_API_KEY``; a server on this machine or the local network (``base_url`` on
    localhost, a private address or a one-word host name) needs none.
    """

    Options: ClassVar[type[OpenAIOptions]] = OpenAIOptions
    capabilities = Capabilities(streaming=True, tools=True)
    api_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    extra: ClassVar[str | None] = "openai"
    options: OpenAIOptions

    def __init__(self, options: OpenAIOptions | None = None, context: BackendContext | None = None) -> None:
        super().__init__(options, context)
        self._client: AsyncOpenAI | None = None
        self._sdk: Any = None
        self.last_usage: Any = None  # the usage chunk of the last reply, when the service sent one

    async def start(self) -> None:
        if self._client is not None:
            return
        key = self._key()
        self._sdk = import_sdk("openai", package="openai", extra="openai", backend=self.name or "openai")
        self._client = self._sdk.AsyncOpenAI(
            api_key=key,
            base_url=self.options.base_url,
            max_retries=0,  # the engine retries, per the role's retry: policy
            timeout=self.options.timeout_s,
        )

    @classmethod
    def key_optional(cls, options: Any) -> bool:
        base_url = options.get("base_url") if isinstance(options, dict) else getattr(options, "base_url", None)
        return isinstance(base_url, str) and "${" not in base_url and is_local(base_url)

    def _key(self) -> str:
        try:
            return self.api_key()
        except MissingSecretError:
            if self.options.base_url and is_local(self.options.base_url):
                self.key_source = None
                return LOCAL_PLACEHOLDER_KEY
            raise

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- request ------------------------------------------------------------------------

    def messages(self, history: Sequence[Message], user_text: str) -> list[dict[str, Any]]:
        """The system message, the history and the new user message in the chat format."""
        out: list[dict[str, Any]] = []
        if self.options.system:
            out.append({"role": "system", "content": self.options.system})
        for message in history:
            if message.tool_calls:
                out.append(
                    {
                        "role": "assistant",
                        "content": message.text or None,
                        "tool_calls": [
                            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                            for c in message.tool_calls
                        ],
                    }
                )
                results = {result.id: result.content for result in message.tool_results}
                for call in message.tool_calls:
                    content = results.get(call.id, "cancelled: no result")
                    out.append({"role": "tool", "tool_call_id": call.id, "content": content})
            elif message.text.strip():
                out.append({"role": message.role, "content": message.text})
        if user_text.strip():
            out.append({"role": "user", "content": user_text})
        return out

    def request(self, history: Sequence[Message], user_text: str, tools: Sequence[ToolSpec]) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create``."""
        opts = self.options
        request: dict[str, Any] = {
            "model": opts.model,
            "messages": self.messages(history, user_text),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)},
                }
                for t in tools
            ]
        if opts.temperature is not None:
            request["temperature"] = opts.temperature
        if opts.max_tokens is not None:
            # OpenAI's newer models take only max_completion_tokens; compatible servers know max_tokens
            request["max_completion_tokens" if opts.base_url is None else "max_tokens"] = opts.max_tokens
        if opts.extra_body:
            request["extra_body"] = dict(opts.extra_body)
        return request

    # --- streaming ----------------------------------------------------------------------

    async def respond(
        self, history: Sequence[Message], user_text: str, *, tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMEvent]:
        if self._client is None:
            await self.start()
        assert self._client is not None
        request = self.request(history, user_text, tools)
        pieces: list[str] = []
        calls: dict[int, _PendingCall] = {}
        finish_reason: str | None = None
        self.last_usage = None
        try:
            stream = await self._client.chat.completions.create(**request)
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        self.last_usage = chunk.usage
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta.content:
                            pieces.append(delta.content)
                            yield TextDelta(delta.content)
                        for piece in delta.tool_calls or ():
                            pending = calls.setdefault(piece.index, _PendingCall())
                            pending.id = pending.id or (piece.id or "")
                            if piece.function is not None:
                                pending.name += piece.function.name or ""
                                pending.arguments += piece.function.arguments or ""
                        if choice.finish_reason:
                            finish_reason = choice.finish_reason
        except VoicekitError:
            raise
        except Exception as exc:  # every SDK or transport failure is sorted below
            raise self._translate(exc, started=bool(pieces or calls)) from exc
        if finish_reason is None:
            raise BackendError(
                f"{self.label}: the reply stream ended before the reply did (after {len(''.join(pieces))} characters)",
                retryable=True,
            )
        if finish_reason == "length":
            log.warning("%s: the reply was cut at the token limit (llm.max_tokens)", self.label)
        numbering = itertools.count(1)
        for _, pending in sorted(calls.items()):
            if pending.name:
                yield ToolCall(pending.id or f"call_{next(numbering)}", pending.name, pending.arguments or "{}")
        yield LLMDone("".join(pieces))

    # --- errors -------------------------------------------------------------------------

    def _translate(self, exc: BaseException, *, started: bool) -> VoicekitError:
        """One-line voicekit error for an SDK failure."""
        sdk, who = self._sdk, self.label
        service = "the service" if self.options.base_url else "OpenAI"
        if isinstance(exc, sdk.APITimeoutError):
            what = "between two chunks" if started else "for the reply to start"
            return BackendError(
                f"{who}: no answer from {service} {what} within {self.options.timeout_s:g} s (option llm.timeout_s)",
                retryable=True,
            )
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__ or exc
            where = self.options.base_url or "api.openai.com"
            what = "broke off mid-reply" if started else "failed"
            return BackendError(
                f"{who}: the connection to {where} {what}: {type(cause).__name__}: {one_line(str(cause))}",
                retryable=True,
            )
        if isinstance(exc, sdk.APIStatusError):
            status = exc.status_code
            message = one_line(_error_message(exc))
            if status == 401:
                variable = self.key_source or "OPENAI_API_KEY"
                return AuthError(
                    f"{who}: {service} rejected the API key (401: {message}); set {variable} to a valid key"
                )
            if status == 404:
                return BackendError(
                    f"{who}: model '{self.options.model}' was not found ({message}); set llm.model to a model "
                    f"{service} serves"
                )
            if status == 429 and exc.code == "insufficient_quota":
                return BackendError(f"{who}: {service} answered 429: {message} (check the account's plan and billing)")
            if status in _RETRYABLE_STATUS or status >= 500:
                return BackendError(
                    f"{who}: {service} answered {status}: {message}",
                    retryable=True,
                    retry_after=retry_after_of(exc.response.headers),
                )
            return BackendError(f"{who}: {service} refused the request ({status}: {message})")
        if isinstance(exc, sdk.APIError):  # an error event inside the stream
            return BackendError(f"{who}: {service} broke off the reply: {one_line(exc.message)}", retryable=True)
        return BackendError(f"{who}: {type(exc).__name__}: {one_line(str(exc))}", retryable=True)


# --- helpers -------------------------------------------------------------------------


def is_local(base_url: str) -> bool:
    """Whether ``base_url`` is a server on this machine or the local network (no key needed)."""
    host = urlsplit(base_url if "//" in base_url else f"//{base_url}").hostname or ""
    if host == "localhost" or host.endswith((".local", ".localhost", ".internal")) or "." not in host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def retry_after_of(headers: Any) -> float | None:
    """The wait a 429 or 503 asks for: ``retry-after-ms`` (OpenAI's) or ``Retry-After``."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return str(getattr(exc, "message", "") or exc)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
