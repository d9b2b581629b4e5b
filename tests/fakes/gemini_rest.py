"""A local Gemini REST server for tests and benchmarks: ``streamGenerateContent`` over SSE.

It speaks the wire protocol the real service speaks (``POST /{version}/models/{model}:
streamGenerateContent?alt=sse`` with the key in ``x-goog-api-key``; ``text/event-stream``
of ``data: <GenerateContentResponse JSON>`` events; errors as ``{"error": {code, message,
status, details}}``), checks the key and the request, records every request, and can
inject faults (bad key, unknown model, 429 with Retry-After, 500, a stream cut in the
middle) and latency.

Function calling, as the service does it: ``tools[].functionDeclarations`` in the request;
the model's calls are whole ``functionCall {name, args}`` parts of
``candidates[0].content.parts`` (parallel calls: several parts, in one event or one event
each), the first of a response carrying a ``thoughtSignature`` (as Gemini 3 does; ``id``
only when ``call_ids`` is on). It checks what the service checks, with the service's
messages: as many ``functionResponse`` parts as the call turn had ``functionCall`` parts; the
thought signature of each call of the current turn sent back; no ``toolConfig`` without
declarations. ``toolConfig.functionCallingConfig.mode: NONE`` means no calls. What the model
calls and answers: :mod:`tests.fakes.gemini_tools`.

Standalone: ``python -m tests.fakes.gemini_rest --port 8081 --api-key test-key``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.aiohttp_service import AiohttpService
from tests.fakes.gemini_models import list_page, model_resource
from tests.fakes.gemini_tools import ScriptedCall, ToolPlan, answer_for, declared_functions, plan_for

DEFAULT_KEY = "test-gemini-key"
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance. Additional data, function "
    "call `default_api:{name}` , position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
UNEQUAL_RESPONSES = (
    "Please ensure that the number of function response parts is equal to the number of function call parts of "
    "the function call turn."
)
CONFIG_WITHOUT_DECLARATIONS = "Function calling config is set without function_declarations."
LISTED_MODELS = ("gemini-3.8-flash", "gemini-3.5-flash-lite", "gemini-3.1-flash-lite")
TEXT_METHODS = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")


@dataclass
class Fault:
    """What to do instead of (or in the middle of) the next answer.

    kind: ``status`` (answer ``status`` with a Google error body), ``bad_key`` (400
    API_KEY_INVALID), ``drop`` (cut the stream after ``after_chunks`` events).
    """

    kind: str
    status: int = 500
    retry_after: float | None = None
    retry_delay_s: float | None = None  # google.rpc.RetryInfo in the error details
    after_chunks: int = 1


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    version: str
    model: str
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def contents(self) -> list[dict[str, Any]]:
        return list(self.body.get("contents", []))

    @property
    def system_text(self) -> str | None:
        system = self.body.get("systemInstruction") or self.body.get("system_instruction")
        if not system:
            return None
        return "".join(p.get("text", "") for p in system.get("parts", []))

    @property
    def turns(self) -> list[tuple[str, str]]:
        """(role, text) of every content entry."""
        return [(c.get("role", ""), "".join(p.get("text", "") for p in c.get("parts", []))) for c in self.contents]

    @property
    def function_names(self) -> list[str]:
        """The functions the request declares."""
        return list(declared_functions(self.body.get("tools")))

    @property
    def calling_mode(self) -> str | None:
        return ((self.body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")


@dataclass
class GeminiFake(AiohttpService):
    """The fake service's state: scripted replies, queued faults, latencies, recorded requests."""

    api_key: str = DEFAULT_KEY
    models: Sequence[str] | None = None  # None: every model exists
    replies: list[list[str]] = field(default_factory=list)  # each reply: its chunks, in order
    faults: list[Fault] = field(default_factory=list)  # consumed one per request
    first_chunk_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    raw_body: bytes | None = None  # answer every stream with these exact SSE bytes (a real capture)
    tool_plans: list[ToolPlan] = field(default_factory=list)  # when the model calls what (gemini_tools)
    call_ids: bool = False  # functionCall parts carry an id
    thought_signatures: bool = True  # the first functionCall part of a response carries a thoughtSignature
    call_events: str = "together"  # "together": one event with every call; "apart": an event per call
    issued_signatures: dict[str, str] = field(default_factory=dict)  # call → the signature it came with
    requests: list[RecordedRequest] = field(default_factory=list)
    list_requests: list[dict[str, str]] = field(default_factory=list)  # query of each models.list call
    _runner: web.AppRunner | None = None
    base_url: str = ""

    # --- lifecycle -------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{version}/models/{target}", self._handle)
        app.router.add_get("/{version}/models", self._list_models)
        return app

    def catalog(self) -> list[dict[str, Any]]:
        """What ``models.list`` answers: ``models`` (or a few current ones) for generateContent, and a Live model."""
        names = list(self.models) if self.models is not None else list(LISTED_MODELS)
        text = [model_resource(n, TEXT_METHODS) for n in names]
        return [*text, model_resource("gemini-3.8-live", ("bidiGenerateContent",))]

    async def _list_models(self, request: web.Request) -> web.Response:
        self.list_requests.append(dict(request.query))
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key != self.api_key:
            return _bad_key()
        return web.json_response(list_page(self.catalog(), dict(request.query)))

    # --- protocol --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        model, _, method = request.match_info["target"].partition(":")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        self.requests.append(RecordedRequest(version, model, method, dict(request.query), dict(request.headers), body))
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return _error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        fault = self.faults.pop(0) if self.faults else None
        if key != self.api_key or (fault and fault.kind == "bad_key"):
            return _bad_key()
        if fault and fault.kind == "status":
            return _status_fault(fault)
        if self.models is not None and model not in self.models:
            return _error(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version {version}, or is not supported for "
                f"{method or 'generateContent'}. Call ListModels to see the list of available models "
                "and their supported methods.",
            )
        if method not in ("streamGenerateContent", "generateContent"):
            return _error(404, "NOT_FOUND", f"Method {method} not found.")
        if not body.get("contents"):
            return _error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
        problem = self._tool_problem(body)
        if problem:
            return _error(400, "INVALID_ARGUMENT", problem)
        calls: list[dict[str, Any]] = []
        if self.replies:
            chunks = self.replies.pop(0)
        else:
            chunks, calls = self._answer(body)
        if method == "generateContent":
            await asyncio.sleep(self.first_chunk_delay_s)
            return web.json_response(_response_json(model, "".join(chunks), final=True))
        return await self._stream(request, model, chunks, fault, calls)

    # --- function calling ------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        """Text chunks and functionCall parts: an answer to function responses, calls, or the echo."""
        contents = body["contents"]
        last_parts = contents[-1].get("parts", [])
        responses = [p["functionResponse"].get("response") or {} for p in last_parts if "functionResponse" in p]
        if responses:
            return _words(answer_for(responses)), []
        mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        declared = declared_functions(body.get("tools")) if mode != "NONE" else {}
        user = "".join(p.get("text", "") for p in last_parts)
        plan = plan_for(user, declared, self.tool_plans) if declared else None
        if plan is None:
            return echo_chunks(body), []
        return (_words(plan.say) if plan.say else []), [self._call_part(call, i) for i, call in enumerate(plan.calls)]

    def _call_part(self, call: ScriptedCall, index: int) -> dict[str, Any]:
        function_call: dict[str, Any] = {"name": call.name, "args": dict(call.args)}
        if call.id or self.call_ids:
            function_call["id"] = call.id or f"fc-{uuid.uuid4().hex[:12]}"
        part: dict[str, Any] = {"functionCall": function_call}
        if self.thought_signatures and index == 0:
            signature = base64.b64encode(hashlib.sha256(uuid.uuid4().bytes).digest()).decode()
            self.issued_signatures[_call_key(function_call)] = signature
            part["thoughtSignature"] = signature
        return part

    def _tool_problem(self, body: dict[str, Any]) -> str | None:
        """The service's complaint about the request's function calling, if it has one."""
        if body.get("toolConfig") and not declared_functions(body.get("tools")):
            return CONFIG_WITHOUT_DECLARATIONS
        contents = body["contents"]
        for index, content in enumerate(contents):
            calls = [p for p in content.get("parts", []) if "functionCall" in p]
            if not calls:
                continue
            following = contents[index + 1].get("parts", []) if index + 1 < len(contents) else []
            if len([p for p in following if "functionResponse" in p]) != len(calls):
                return UNEQUAL_RESPONSES
        # the current turn: everything after the user's last words
        start = max((i for i, c in enumerate(contents) if c.get("role") == "user" and _has_text(c)), default=0)
        for index in range(start, len(contents)):
            calls = [p for p in contents[index].get("parts", []) if "functionCall" in p]
            for part in calls[:1]:
                issued = self.issued_signatures.get(_call_key(part["functionCall"]))
                if issued is not None and _b64(part.get("thoughtSignature")) != _b64(issued):
                    return MISSING_SIGNATURE.format(name=part["functionCall"].get("name"), position=index + 1)
        return None

    async def _stream(
        self,
        request: web.Request,
        model: str,
        chunks: list[str],
        fault: Fault | None,
        calls: list[dict[str, Any]] | None = None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.raw_body is not None:
            await asyncio.sleep(self.first_chunk_delay_s)
            await response.write(self.raw_body)
            await response.write_eof()
            return response
        response_id = uuid.uuid4().hex[:20]
        events: list[list[dict[str, Any]]] = [[{"text": text}] for text in chunks]
        if calls:
            events += [calls] if self.call_events == "together" else [[call] for call in calls]
        for index, parts in enumerate(events):
            if fault and fault.kind == "drop" and index >= fault.after_chunks:
                assert request.transport is not None
                request.transport.abort()  # no terminating chunk: the client sees a cut stream
                return response
            await asyncio.sleep(self.first_chunk_delay_s if index == 0 else self.chunk_delay_s)
            event = _response_json(model, parts, final=index == len(events) - 1, response_id=response_id)
            await response.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
        await response.write_eof()
        return response


# --- payloads -----------------------------------------------------------------------


def echo_chunks(body: dict[str, Any]) -> list[str]:
    """Default reply: "You said: <last user text>." in word-sized chunks."""
    last = ""
    for content in body.get("contents", []):
        if content.get("role", "user") == "user":
            last = "".join(p.get("text", "") for p in content.get("parts", []))
    return _words(f"You said: {last.strip()}.")


def _words(text: str) -> list[str]:
    """Text in word-sized chunks that join back exactly."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _b64(data: Any) -> bytes | None:
    """Base64 in either alphabet (the SDK writes bytes URL-safe), decoded."""
    if not isinstance(data, str):
        return None
    return base64.b64decode(data.replace("-", "+").replace("_", "/") + "=" * (-len(data) % 4))


def _has_text(content: dict[str, Any]) -> bool:
    return any(p.get("text") for p in content.get("parts", []))


def _call_key(function_call: dict[str, Any]) -> str:
    return json.dumps([function_call.get("name"), function_call.get("args") or {}], sort_keys=True)


def _response_json(
    model: str, parts: str | list[dict[str, Any]], *, final: bool, response_id: str = ""
) -> dict[str, Any]:
    if isinstance(parts, str):
        parts = [{"text": parts}]
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    event: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
    if final:
        event["usageMetadata"] = {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20}
    return event


def _error(
    code: int, status: str, message: str, details: list[Any] | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=code, headers=headers)


def _bad_key() -> web.Response:
    return _error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": "API key not valid. Please pass a valid API key.",
            },
        ],
    )


def _status_fault(fault: Fault) -> web.Response:
    status_names = {
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        400: "INVALID_ARGUMENT",
    }
    messages = {
        401: "Request had invalid authentication credentials.",
        429: "You exceeded your current quota, please check your plan and billing details.",
        500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        503: "The model is overloaded. Please try again later.",
    }
    details = None
    if fault.retry_delay_s is not None:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_delay_s:g}s"}]
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
    return _error(
        fault.status, status_names.get(fault.status, "UNKNOWN"), messages.get(fault.status, "Error."), details, headers
    )


# --- standalone -----------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = GeminiFake(
        api_key=args.api_key, first_chunk_delay_s=args.first_chunk_ms / 1000, chunk_delay_s=args.chunk_ms / 1000
    )
    url = await fake.start(args.host, args.port)
    print(f"Gemini fake listening on {url} (key {args.api_key!r})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    parser.add_argument("--first-chunk-ms", type=float, default=0.0, help="latency to the first chunk")
    parser.add_argument("--chunk-ms", type=float, default=0.0, help="latency between chunks")
    try:
        asyncio.run(_serve(parser.parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
