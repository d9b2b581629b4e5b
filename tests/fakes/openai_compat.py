"""A local OpenAI-compatible chat server for tests: ``POST /v1/chat/completions``, streamed.

It speaks the wire the real service (and Ollama, vLLM, llama.cpp's server) speaks: the key
as ``Authorization: Bearer``; ``text/event-stream`` of ``data: <chat.completion.chunk>``
lines ending with ``data: [DONE]``; text in ``delta.content``; tool calls in
``delta.tool_calls`` whose JSON ``arguments`` arrive in pieces over several chunks, keyed by
``index``, with ``finish_reason: "tool_calls"``; a usage chunk (no choices) when
``stream_options.include_usage`` asks for it; errors as ``{"error": {message, type, param,
code}}`` with the real status codes. It checks that every tool message answers a call of
the assistant message before it and that every call is answered, as the real API does.

What it answers, unless a reply is scripted: after tool results, "The tool said: <result>.";
to a user message naming a declared tool (or a word in ``triggers``), a call of that tool
(several tools named: parallel calls); otherwise "You said: <the user's words>.".

Faults: ``bad_key`` (401 invalid_api_key), ``status`` (any status; 429 with Retry-After),
``quota`` (429 insufficient_quota), ``drop`` (the connection cut after some chunks),
``stall`` (the stream stops sending). Standalone: ``python -m tests.fakes.openai_compat --port 8090``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.aiohttp_service import AiohttpService

DEFAULT_KEY = "sk-test-openai-key"


@dataclass
class Fault:
    """What to do instead of (or in the middle of) the next answer."""

    kind: str  # bad_key | status | quota | drop | stall | none
    status: int = 500
    retry_after: str | None = None  # the Retry-After header
    after_chunks: int = 1  # drop / stall: after this many chunks


@dataclass
class ScriptedCall:
    """A tool call a scripted reply makes."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class Reply:
    """A scripted answer: text, tool calls, or both (text first, as models do)."""

    text: str = ""
    calls: list[ScriptedCall] = field(default_factory=list)


@dataclass
class RecordedRequest:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]


@dataclass
class OpenAIFake(AiohttpService):
    """The fake service's state: scripted replies, queued faults, latencies, recorded requests."""

    api_key: str | None = DEFAULT_KEY  # None: any key or none at all (a local server)
    models: Sequence[str] | None = None  # None: every model exists
    replies: list[Reply] = field(default_factory=list)  # consumed one per successful request
    faults: list[Fault] = field(default_factory=list)  # consumed one per request
    triggers: dict[str, str] = field(default_factory=dict)  # a word in the user's message → a tool to call
    tool_arguments: dict[str, dict[str, Any]] = field(default_factory=dict)  # the arguments it calls a tool with
    first_chunk_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    @property
    def url(self) -> str:
        """What a client's ``base_url`` is set to."""
        return f"{self.base_url}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        return app

    # --- protocol -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        self.requests.append(RecordedRequest(dict(request.headers), body))
        fault = self.faults.pop(0) if self.faults else None
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if (self.api_key is not None and key != self.api_key) or (fault and fault.kind == "bad_key"):
            return _error(
                401,
                f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        if fault and fault.kind == "quota":
            return _error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                code="insufficient_quota",
            )
        if fault and fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else None
            if fault.status == 429:
                return _error(
                    429,
                    f"Rate limit reached for {body.get('model')} on requests per min (RPM): Limit 3, Used 3, "
                    "Requested 1. Please try again in 20s.",
                    "requests",
                    code="rate_limit_exceeded",
                    headers=headers,
                )
            return _error(
                fault.status,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                headers=headers,
            )
        model = body.get("model")
        if not model or not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error(400, "Missing required parameters: 'model' and 'messages'.", "invalid_request_error")
        if self.models is not None and model not in self.models:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                code="model_not_found",
            )
        problem = _sequence_problem(body["messages"])
        if problem:
            return _error(400, problem, "invalid_request_error", param="messages")
        reply = self.replies.pop(0) if self.replies else self._answer(body)
        return await self._stream(request, body, reply, fault)

    def _answer(self, body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        results = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.insert(0, str(message.get("content")))
        if results:
            return Reply(text=f"The tool said: {' and '.join(results)}.")
        user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = _content_text(user.get("content"))
        declared = [t["function"]["name"] for t in body.get("tools") or []]
        words = {w.strip(".,!?;:'\"").lower() for w in text.split()}
        wanted = [name for name in declared if name.lower() in words]
        wanted += [tool for word, tool in self.triggers.items() if word in words and tool in declared]
        if wanted:
            unique = list(dict.fromkeys(wanted))
            return Reply(calls=[ScriptedCall(name, self._arguments(name, body)) for name in unique])
        return Reply(text=f"You said: {text.strip().rstrip('.!?')}.")

    def _arguments(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if name in self.tool_arguments:
            return self.tool_arguments[name]
        schema = next(t["function"].get("parameters") or {} for t in body["tools"] if t["function"]["name"] == name)
        samples = {"string": "test", "integer": 1, "number": 1.5, "boolean": True}
        properties = schema.get("properties") or {}
        return {key: samples.get(properties.get(key, {}).get("type"), "test") for key in schema.get("required") or []}

    async def _stream(
        self, request: web.Request, body: dict[str, Any], reply: Reply, fault: Fault | None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        chunks = _chunks(reply, chunk_id, body["model"])
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        for index, chunk in enumerate(chunks):
            if fault and fault.kind in ("drop", "stall") and index >= fault.after_chunks:
                assert request.transport is not None
                if fault.kind == "stall":  # send nothing more until the client gives up
                    while not request.transport.is_closing():
                        await asyncio.sleep(0.05)
                    return response
                request.transport.abort()  # no finish_reason, no [DONE]: the client sees a cut stream
                return response
            await asyncio.sleep(self.first_chunk_delay_s if index == 0 else self.chunk_delay_s)
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if include_usage:
            usage = {"prompt_tokens": 17, "completion_tokens": 9, "total_tokens": 26}
            await response.write(
                b"data: " + json.dumps(_chunk(chunk_id, body["model"], None, usage)).encode() + b"\n\n"
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


# --- payloads ---------------------------------------------------------------------------


def _chunk(
    chunk_id: str, model: str, choice: dict[str, Any] | None, usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [choice] if choice is not None else [],
        "usage": usage,
    }


def _chunks(reply: Reply, chunk_id: str, model: str) -> list[dict[str, Any]]:
    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return _chunk(chunk_id, model, {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish})

    chunks = [choice({"role": "assistant", "content": "", "refusal": None})]
    words = reply.text.split(" ") if reply.text else []
    chunks += [choice({"content": word if i == 0 else " " + word}) for i, word in enumerate(words)]
    for index, call in enumerate(reply.calls):
        arguments = json.dumps(call.arguments)
        header = {"index": index, "id": call.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function"}
        chunks.append(choice({"tool_calls": [{**header, "function": {"name": call.name, "arguments": ""}}]}))
        for start in range(0, len(arguments), 4):  # the JSON arrives in pieces, as it does from the real API
            piece = arguments[start : start + 4]
            chunks.append(choice({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    chunks.append(choice({}, "tool_calls" if reply.calls else "stop"))
    return chunks


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _sequence_problem(messages: list[dict[str, Any]]) -> str | None:
    """What the real API says about tool messages out of place, or ``None``."""
    open_calls: list[str] = []
    for position, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    f"with 'tool_calls'. (messages[{position}])"
                )
            open_calls.remove(message["tool_call_id"])
            continue
        if open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}"
            )
        if role == "assistant":
            open_calls = [call["id"] for call in message.get("tool_calls") or []]
            if message.get("content") is None and not open_calls:
                return f"Invalid value for 'content': expected a string, got null. (messages[{position}])"
    if open_calls:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(open_calls)}"
        )
    return None


def _error(
    status: int,
    message: str,
    kind: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--first-chunk-ms", type=float, default=0.0)
    args = parser.parse_args()

    async def serve() -> None:
        fake = OpenAIFake(api_key=args.api_key, first_chunk_delay_s=args.first_chunk_ms / 1000)
        await fake.start(port=args.port)
        print(f"OpenAI-compatible fake on {fake.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
