"""Every option of a backend, as people read it: type, default, range, description, variable.

Read from the backend's ``Options`` pydantic model, so what ``voicekit plugins show``
prints is what a profile is checked against.
"""

from __future__ import annotations

import enum
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class OptionDoc:
    """One option of a backend."""

    name: str
    type: str  # "int", "float", "one of: a, b", "backend spec (output)", ...
    default: Any  # JSON-able; None when there is none or it is null
    required: bool
    range: str  # "10 ≤ x", "0 ≤ x ≤ 1", "" when unbounded
    description: str
    env: str  # the variable it falls back to ("" when none)


def option_docs(cls: type[Any]) -> list[OptionDoc]:
    """The options of backend class ``cls`` (its ``Options`` model), in declaration order."""
    model: type[BaseModel] | None = getattr(cls, "Options", None)
    if model is None:
        return []
    key_envs = [v for v in (getattr(cls, "api_key_env", None), *getattr(cls, "api_key_fallback_envs", ())) if v]
    docs = []
    for name, info in model.model_fields.items():
        key = info.alias if isinstance(info.alias, str) else name
        env = " or ".join(key_envs) if name == "api_key" else ""
        docs.append(
            OptionDoc(
                name=key,
                type=type_name(info),
                default=default_of(info),
                required=info.is_required(),
                range=range_of(info),
                description=info.description or "",
                env=env,
            )
        )
    return docs


def defaults(cls: type[Any]) -> dict[str, Any]:
    """Every option's default as a profile would write it (required ones are left out)."""
    return {doc.name: doc.default for doc in option_docs(cls) if not doc.required}


def default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return None
    else:
        value = info.default
    return plain(value)


def plain(value: Any) -> Any:
    """A value as YAML or JSON would show it."""
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def type_name(info: FieldInfo) -> str:
    from voicekit.options import NestedBackend

    for marker in (*info.metadata, *_metadata(info.annotation)):
        if isinstance(marker, NestedBackend):
            return f"backend spec ({marker.role})"
    return _name(info.annotation)


def _metadata(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        return list(annotation.__metadata__)
    return [m for arg in typing.get_args(annotation) for m in _metadata(arg)]


def _name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _name(args[0])
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_name(a) for a in args if a is not type(None)]
        optional = " or null" if type(None) in args else ""
        return " or ".join(names) + optional
    if origin in (list, tuple, set, frozenset):
        inner = ", ".join(_name(a) for a in args if a is not Ellipsis)
        return f"list of {inner}" if inner else "list"
    if origin is dict:
        return "mapping"
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def range_of(info: FieldInfo) -> str:
    low = high = ""
    for item in (*info.metadata, *_metadata(info.annotation)):
        for attr, template in (("ge", "{} ≤ "), ("gt", "{} < ")):
            if getattr(item, attr, None) is not None:
                low = template.format(getattr(item, attr))
        for attr, template in (("le", " ≤ {}"), ("lt", " < {}")):
            if getattr(item, attr, None) is not None:
                high = template.format(getattr(item, attr))
    return f"{low}x{high}" if low or high else ""
