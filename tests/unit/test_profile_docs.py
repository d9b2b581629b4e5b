"""The profile snippets of README.md and docs/plugins.md run as written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.profile_backends import isolate, write
from voicekit import hookspecs
from voicekit.events import AudioOut
from voicekit.profiles import build_backend, build_chain, check_profile, load_profile
from voicekit.registry import Registry, get_plugin_manager, load_registry

ROOT = Path(__file__).resolve().parents[2]


def section(path: Path, heading: str) -> str:
    """The text of a ``## heading`` section, up to the next heading of that level or above."""
    level = len(heading.split(" ")[0])
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index(heading + "\n")
    fenced = False
    for end in range(start + 1, len(lines)):
        fenced ^= lines[end].startswith("```")
        hashes = len(lines[end]) - len(lines[end].lstrip("#"))
        if not fenced and 0 < hashes <= level and lines[end][hashes : hashes + 1] == " ":
            return "".join(lines[start:end])
    return "".join(lines[start:])


def block(text: str, language: str, first_line: str = "") -> str:
    """The fenced ``language`` block whose first line starts with ``first_line``."""
    found: list[tuple[str, str]] = []
    info: str | None = None
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("```") and info is None:
            info, lines = line[3:].strip(), []
        elif line.startswith("```"):
            found.append((info, "".join(lines)))
            info = None
        elif info is not None:
            lines.append(line)
    for info_, body in found:
        if info_ == language and body.startswith(first_line):
            return body
    raise AssertionError(f"no ```{language} block starting with {first_line!r}")


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolate(tmp_path, monkeypatch)


def test_readme_retry_and_fallback_example(dirs: dict[str, Path]) -> None:
    text = block(section(ROOT / "README.md", "## Profiles"), "yaml", "# profiles/resilient.yaml")
    write(dirs["project"], "resilient.yaml", text)
    registry = load_registry()
    assert check_profile("resilient", registry) == []
    llm = load_profile("resilient").llm
    assert (llm.use, llm.retry.attempts, llm.retry.budget_ms) == ("gemini", 3, 15000)
    lite, echo = llm.fallback
    assert (lite.use, lite.options, lite.retry.attempts) == ("gemini", {"model": "gemini-3.5-flash-lite"}, 3)
    assert (echo.use, echo.retry.attempts, echo.retry.initial_ms) == ("echo", 1, 200)  # the rest inherited
    built = build_chain(load_profile("resilient"), "llm", registry)
    assert [b.name for b in built] == ["gemini", "gemini", "echo"]
    assert [b.context.path for b in built] == [("llm",), ("llm", "fallback", 0), ("llm", "fallback", 1)]


def nested_section() -> str:
    return section(ROOT / "docs" / "plugins.md", "## Nested backends")


@pytest.fixture
def bilingual(dirs: dict[str, Path]) -> tuple[Registry, dict[str, Any]]:
    """The section's backend, registered as ``bylanguage`` next to the built-ins, and its profile."""
    namespace: dict[str, Any] = {"__name__": "voicekit_docs_bylanguage"}
    exec(compile(block(nested_section(), "python"), "docs/plugins.md", "exec", dont_inherit=True), namespace)

    class Plugin:
        @hookspecs.hookimpl
        def register_output(self, register: hookspecs.Register) -> None:
            register("bylanguage", namespace["ByLanguageOutput"])

    pm = get_plugin_manager(load_entry_points=False)
    pm.register(Plugin(), name="docs")
    write(dirs["project"], "bilingual.yaml", block(nested_section(), "yaml", "# profiles/bilingual.yaml"))
    return load_registry(pm), namespace


def test_nested_section_error_is_the_one_documented(bilingual: tuple[Registry, dict[str, Any]]) -> None:
    registry, _ = bilingual
    console = block(nested_section(), "", "$ voicekit profiles validate bilingual").splitlines()
    assert check_profile("bilingual", registry) == console[1:]


def test_nested_section_backend_speaks_through_the_voice_it_chose(bilingual: tuple[Registry, dict[str, Any]]) -> None:
    registry, namespace = bilingual
    fixed = ["output.other={use: espeak, voice: ru}"]
    assert check_profile("bilingual", registry, fixed) == []

    async def speak(overrides: list[str]) -> tuple[Any, list[Any]]:
        output = build_backend(load_profile("bilingual", overrides), "output", registry)
        assert isinstance(output, namespace["ByLanguageOutput"])

        async def one() -> Any:
            yield "Hello there."

        async with output:
            events = [event async for event in output.speak(one())]
        return output.voice, events

    english, events = asyncio.run(speak(fixed))
    assert english.context.path == ("output", "english") and english.options.voice == "en-us"
    assert sum(len(e.pcm) for e in events if isinstance(e, AudioOut)) > 0
    russian, _ = asyncio.run(speak([*fixed, "language=ru"]))
    assert russian.context.path == ("output", "other") and russian.options.voice == "ru"
