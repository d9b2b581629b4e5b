"""Every number a built-in backend takes is bounded on both sides, and an out-of-range value
is refused with the range in the error (``must be from 10 to 60000``)."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.cli_helpers import voicekit
from voicekit.profiles.document import model_problems
from voicekit.registry import load_registry


def builtin_backends() -> dict[str, list[str]]:
    """Every backend voicekit itself ships, by role."""
    registry = load_registry()
    found: dict[str, list[str]] = {}
    for role in ("stt", "llm", "output"):
        for name in registry.names(role):
            if registry.backend_class(role, name).__module__.startswith("voicekit."):
                found.setdefault(role, []).append(name)
    return found


def numeric_fields(model: type[BaseModel]) -> list[str]:
    found = []
    for name, info in model.model_fields.items():
        kinds = typing.get_args(info.annotation) or (info.annotation,)
        if any(kind in (int, float) for kind in kinds):
            found.append(name)
    return found


def cases() -> list[tuple[str, str, str]]:
    registry = load_registry()
    return [
        (role, name, option)
        for role, names in builtin_backends().items()
        for name in names
        for option in numeric_fields(registry.backend_class(role, name).Options)
    ]


@pytest.mark.parametrize(("role", "backend", "option"), cases())
@pytest.mark.parametrize("value", [10**20, -(10**20), float("inf"), float("nan")])
def test_every_number_is_bounded_and_the_error_names_the_range(
    role: str, backend: str, option: str, value: Any
) -> None:
    options_model = load_registry().backend_class(role, backend).Options
    with pytest.raises(ValidationError) as refused:
        options_model.model_validate({option: value})
    (line,) = [p for p in model_problems(refused.value, options_model, (role,), {}) if f".{option}:" in p]
    kinds = typing.get_args(options_model.model_fields[option].annotation) or (
        options_model.model_fields[option].annotation,
    )
    if isinstance(value, int) or (float in kinds and value == value):  # a number out of range: the range is named
        assert "must be" in line and any(word in line for word in (" to ", "at most", "below")), line
    else:  # NaN, or an infinity given for a whole number
        assert "finite number" in line or "must be" in line, line


def test_a_huge_value_on_the_command_line_is_refused_with_its_range() -> None:
    result = voicekit("profiles", "validate", "offline", "--set", "stt.interim_interval_ms=99999999999999999999")
    assert result.returncode != 0
    assert "stt.interim_interval_ms: must be from 20 to 5000" in result.stdout + result.stderr, result
