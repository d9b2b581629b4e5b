"""Python functions as tools: the signature and docstring become the JSON schema (pydantic).

```python
def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
    \"\"\"The current weather in a city.

    Args:
        city: The city's name, e.g. "Paris".
        unit: Celsius or Fahrenheit.
    \"\"\"
```

becomes a tool named ``weather`` described as "The current weather in a city." whose
arguments are an object with a required string ``city`` and an optional ``unit`` (``C`` or
``F``), each described by its line under ``Args:`` (or ``:param city: ...``, or
``Annotated[str, Field(description=...)]``). Arguments are validated by pydantic before the
function runs; async functions are awaited, plain ones run in a worker thread so that a
slow one never holds up the conversation.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_jsonable_python

from voicekit.roles import ToolSpec
from voicekit.tools.base import Tool, ToolError, ToolsError

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?)\s*:\s*$", re.I)
_GOOGLE_ARG = re.compile(r"^\s{2,}\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ARG = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


class FunctionTool(Tool):
    """A tool made from a Python function (sync or async) with type hints."""

    def __init__(self, function: Callable[..., Any], *, name: str | None = None, source: str = "") -> None:
        self.function = function
        self.source = source
        tool_name = str(name or getattr(function, "__name__", ""))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", tool_name or ""):
            raise ToolsError(f"tool name {tool_name!r} must be letters, digits, _ or -, at most 64 characters")
        description, parameter_docs = parse_docstring(inspect.getdoc(function) or "")
        self.arguments_model = arguments_model(function, tool_name, parameter_docs)
        schema = untitled(self.arguments_model.model_json_schema())
        self.spec = ToolSpec(tool_name, description or tool_name, schema)
        self._is_async = inspect.iscoroutinefunction(function)

    async def call(self, arguments: dict[str, Any]) -> str:
        try:
            values = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(f"invalid arguments: {_short_errors(exc)}") from None
        kwargs = {key: getattr(values, key) for key in type(values).model_fields}
        if self._is_async:
            result = await self.function(**kwargs)
        else:
            result = await asyncio.to_thread(self.function, **kwargs)
        return result_text(result)


def arguments_model(function: Callable[..., Any], name: str, docs: dict[str, str]) -> type[BaseModel]:
    """A pydantic model of ``function``'s parameters (every one needs a type hint)."""
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # a hint that does not resolve is the author's to fix
        raise ToolsError(f"tool {name}: its type hints do not resolve: {exc}") from exc
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolsError(f"tool {name}: *args and **kwargs cannot be described to a model; name each argument")
        if parameter.name not in hints:
            raise ToolsError(f"tool {name}: argument '{parameter.name}' has no type hint")
        default = ... if parameter.default is parameter.empty else parameter.default
        # without a docstring line, a description in Annotated[..., Field(description=...)] stays
        field = Field(default, description=docs[parameter.name]) if parameter.name in docs else Field(default)
        fields[parameter.name] = (hints[parameter.name], field)
    model: type[BaseModel] = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return model


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (the text before any ``Args:``-style section) and each parameter's
    line from a Google-style ``Args:`` section or Sphinx ``:param name:`` fields."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        header = _SECTION.match(line)
        sphinx = _SPHINX_ARG.match(line)
        if header:
            section, current = header.group(1).lower(), None
        elif sphinx:
            current = sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            section = "sphinx"
        elif section in ("args", "arguments", "parameters") and (arg := _GOOGLE_ARG.match(line)):
            current = arg.group(1)
            params[current] = arg.group(2).strip()
        elif section is not None:
            if current and line.strip() and line.startswith((" ", "\t")):
                params[current] = f"{params[current]} {line.strip()}".strip()
            elif line.strip().startswith(":"):
                current = None
        else:
            description.append(line)
    return " ".join(" ".join(description).split()), params


def untitled(schema: Any) -> Any:
    """``schema`` without pydantic's ``title`` keywords: words a model pays for and gains nothing from."""
    if isinstance(schema, dict):
        named = ("properties", "$defs")  # their keys are names, not keywords: a property may be called "title"
        return {
            key: {name: untitled(sub) for name, sub in value.items()} if key in named else untitled(value)
            for key, value in schema.items()
            if key != "title"
        }
    if isinstance(schema, list):
        return [untitled(item) for item in schema]
    return schema


def result_text(result: Any) -> str:
    """A tool's return value as the text the model reads (JSON for anything but text)."""
    if isinstance(result, str):
        return result
    if result is None:
        return "done"
    return json.dumps(to_jsonable_python(result), ensure_ascii=False)


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


__all__ = ["FunctionTool", "arguments_model", "parse_docstring", "result_text"]
