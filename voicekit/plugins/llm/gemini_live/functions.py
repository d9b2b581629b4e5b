"""Tools in Gemini's own types, for both Gemini backends (``gemini`` and ``gemini_live``).

Free of I/O, and given the SDK's ``google.genai.types`` module by the caller, so that
importing it loads no SDK:

* :func:`declarations`: voicekit's :class:`~voicekit.roles.ToolSpec` list as one
  ``Tool(function_declarations=[...])``; each schema goes whole into
  ``parameters_json_schema`` (full JSON Schema; ``parameters`` would take only Gemini's
  OpenAPI subset).
* :func:`response_payload`: a :class:`~voicekit.events.ToolResult` as the ``response``
  object of a ``FunctionResponse`` (``{"output": ...}``, or ``{"error": ...}`` when the tool
  failed, timed out, was refused or cancelled: the two keys the API documents).
* :func:`arguments_of` / :func:`call_arguments`: a call's arguments between Gemini's JSON
  object and voicekit's JSON text.
* :func:`results_in_words`: function responses told as a user's words, for a live session
  that never asked for them (a fresh one, when resuming the old one was refused).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from voicekit.events import ToolResult
from voicekit.roles import ToolSpec

#: what the model reads for a call whose result never came (the reply was cut before it)
NO_RESULT = "cancelled: no result"


def declarations(types: Any, tools: Sequence[ToolSpec]) -> Any:
    """One ``Tool`` with a ``FunctionDeclaration`` per spec."""
    return types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name=tool.name,
                description=tool.description or None,
                parameters_json_schema=dict(tool.parameters) if tool.parameters else None,
            )
            for tool in tools
        ]
    )


def names_only(types: Any, names: Iterable[str]) -> Any:
    """Declarations that only name the functions (for a history that holds calls of tools
    this backend was never given the specs of)."""
    return types.Tool(function_declarations=[types.FunctionDeclaration(name=name) for name in dict.fromkeys(names)])


def response_payload(result: ToolResult | None) -> dict[str, Any]:
    """The ``response`` of a ``FunctionResponse`` for ``result`` (None: the call got no result)."""
    if result is None:
        return {"error": NO_RESULT}
    return {"output": result.content} if result.status == "ok" else {"error": result.content}


def call_arguments(args: Mapping[str, Any] | None) -> str:
    """A call's arguments as ``ToolCall.arguments`` holds them: JSON text of an object."""
    return json.dumps(dict(args or {}), ensure_ascii=False)


def arguments_of(arguments: str) -> dict[str, Any]:
    """``ToolCall.arguments`` back as the object Gemini's ``FunctionCall.args`` takes
    (text that is no JSON object, which only another backend's call could hold: empty)."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def results_in_words(responses: Iterable[Any]) -> str:
    """``FunctionResponse`` s as one line the model can read as a user turn."""
    told = []
    for response in responses:
        payload = response.response or {}
        said = payload["output"] if "output" in payload else f"error: {payload.get('error', '')}"
        told.append(f"{response.name}: {said}")
    return "Results of the functions you called: " + "; ".join(told)


def new_call_id() -> str:
    """An id for a call the service sent without one."""
    return f"call_{uuid.uuid4().hex[:16]}"


__all__ = [
    "NO_RESULT",
    "arguments_of",
    "call_arguments",
    "declarations",
    "names_only",
    "new_call_id",
    "response_payload",
    "results_in_words",
]
