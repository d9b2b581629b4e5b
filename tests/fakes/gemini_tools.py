"""What the fake Gemini models (REST and Live) do with tools: when to call which, with what
arguments, and how they answer a function's response.

A test scripts it with :class:`ToolPlan` s ("when the user's words hold *phrase*, say
*say*, then call these functions in parallel"). Without a plan that fits, the fake calls a
declared function whose name the user says (``"Use the get_weather tool"``), with sample
arguments made from its schema's required properties. After the responses it answers
"The tool said: <output>." (several: joined with " and "; an error: "The tool failed:
<error>.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_SAMPLES = {"string": "test", "integer": 1, "number": 1.5, "boolean": True}


@dataclass(frozen=True)
class ScriptedCall:
    """One function call of a plan; ``id``: the one the service gives (None: the fake's own, if any)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ToolPlan:
    """On user words holding ``phrase`` (any case): say ``say`` first (may be empty), then call ``calls``."""

    phrase: str
    calls: tuple[ScriptedCall, ...]
    say: str = ""


def declared_functions(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    """Function name → its JSON schema, from a request's or setup's ``tools`` (either casing)."""
    found: dict[str, Mapping[str, Any]] = {}
    for tool in tools or ():
        for declaration in tool.get("functionDeclarations") or tool.get("function_declarations") or ():
            schema = (
                declaration.get("parametersJsonSchema")
                or declaration.get("parameters_json_schema")
                or declaration.get("parameters")
                or {}
            )
            found[str(declaration.get("name"))] = schema
    return found


def plan_for(text: str, declared: Mapping[str, Mapping[str, Any]], plans: Sequence[ToolPlan]) -> ToolPlan | None:
    """The plan for the user's words, if any fits (every function it calls must be declared)."""
    lowered = text.lower()
    for plan in plans:
        if plan.phrase.lower() in lowered and all(call.name in declared for call in plan.calls):
            return plan
    words = {w.strip(".,!?;:'\"") for w in re.split(r"\s+", lowered)}
    named = [name for name in declared if name.lower() in words]
    if named:
        return ToolPlan("", tuple(ScriptedCall(name, sample_arguments(declared[name])) for name in named))
    return None


def sample_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Values for the schema's required properties, by their type."""
    properties = schema.get("properties") or {}
    return {
        key: _SAMPLES.get(str((properties.get(key) or {}).get("type")), "test") for key in schema.get("required") or []
    }


def answer_for(responses: Sequence[Mapping[str, Any]]) -> str:
    """What the model says after the function responses (``response`` objects, in order)."""
    outputs = []
    failed = False
    for response in responses:
        if "error" in response:
            failed = True
            outputs.append(str(response["error"]))
        else:
            outputs.append(str(response.get("output", response.get("result", response))))
    return f"The tool {'failed' if failed else 'said'}: {' and '.join(outputs)}."
