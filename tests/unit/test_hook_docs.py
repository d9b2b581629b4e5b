"""docs/plugins.md keeps up with the code: every hook and every contract test is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from voicekit import hookspecs
from voicekit.testing import contracts

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()


def hook_specs() -> dict[str, object]:
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "voicekit_spec")}


def signature(fn: object) -> str:
    """``name(arg: Type, ...) -> Return`` as written in the source (annotations are strings there)."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {sig.return_annotation}"  # type: ignore[attr-defined]


def reference_section() -> str:
    return DOC.split("## Hook reference", 1)[1]


def test_there_are_hooks() -> None:
    assert {"register_stt", "register_llm", "register_output", "register_commands"} <= set(hook_specs())


def test_every_hook_documented_with_signature_and_example() -> None:
    section = reference_section()
    for name, fn in hook_specs().items():
        heading = f"### `{name}`"
        assert heading in section, f"hook {name} is not documented in docs/plugins.md (add a '{heading}' section)"
        body = section.split(heading, 1)[1].split("\n### ", 1)[0]
        assert signature(fn) in body, f"docs/plugins.md: the signature of {name} should read {signature(fn)}"
        assert f"def {name}(" in body and "@hookimpl" in body, f"docs/plugins.md: {name} has no example"
        assert (fn.__doc__ or "").strip(), f"hook {name} has no docstring"  # type: ignore[attr-defined]


def test_no_documented_hook_is_stale() -> None:
    documented = set(re.findall(r"^### `(\w+)`", reference_section(), flags=re.M))
    assert documented == set(hook_specs()), f"documented but not in hookspecs.py: {documented - set(hook_specs())}"


def test_every_contract_test_documented() -> None:
    names = {
        name
        for cls in (contracts.STTContract, contracts.LLMContract, contracts.OutputContract)
        for name in dir(cls)
        if name.startswith("test_")
    }
    assert len(names) > 15
    missing = sorted(name for name in names if f"`{name}`" not in DOC)
    assert not missing, f"contract tests missing from docs/plugins.md: {missing}"
    for cls in (contracts.STTContract, contracts.LLMContract, contracts.OutputContract):
        undocumented = [n for n in dir(cls) if n.startswith("test_") and not (getattr(cls, n).__doc__ or "").strip()]
        assert not undocumented, f"{cls.__name__}: contract tests without a docstring: {undocumented}"
