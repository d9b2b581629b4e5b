"""``yaml`` blocks: each parses; a profile passes voicekit's own profile checks, in a project of its own.

A block is a profile when it starts with ``# profiles/NAME.yaml`` or has a profile's keys.
With ``extends:`` it is checked as written; without, it is part of a profile, checked on
top of the shipped profile its header names or else on top of ``offline``. A header naming a
shipped profile also promises that file's values: each value of the block must be the
shipped profile's. The registry holds the installed backends and the example plugin's
(``examples/voicekit-example-plugin``: ``beep``, ``reverse``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.doc_snippets.blocks import ROOT, Block, SnippetError
from tests.doc_snippets.commands import shipped_profiles

if TYPE_CHECKING:
    from voicekit.registry import Registry

PROFILE_KEYS = {"stt", "llm", "output", "extends", "turns", "tools"}
HEADER = re.compile(r"^#\s*profiles/([\w.-]+)\.yaml\b")
EXAMPLE_PLUGIN = ROOT / "examples" / "voicekit-example-plugin" / "src"


def profile_name(block: Block) -> str | None:
    """``NAME`` of a ``# profiles/NAME.yaml`` first line."""
    match = HEADER.match(block.header)
    return match.group(1) if match else None


def doc_profiles(blocks: list[Block]) -> frozenset[str]:
    """The profiles the docs define in blocks of their own: names a command may use."""
    return frozenset(name for block in blocks if block.language == "yaml" for name in [profile_name(block)] if name)


@contextlib.contextmanager
def project(directory: Path) -> Iterator[Path]:
    """``directory`` as the working directory, with an empty ``profiles/`` and user config dir; the example
    plugin importable. Everything is put back afterwards."""
    (directory / "profiles").mkdir(parents=True)
    (directory / "config").mkdir()
    cwd, saved = Path.cwd(), os.environ.get("VOICEKIT_CONFIG_DIR")
    os.chdir(directory)
    os.environ["VOICEKIT_CONFIG_DIR"] = str(directory / "config")
    sys.path.insert(0, str(EXAMPLE_PLUGIN))
    try:
        yield directory / "profiles"
    finally:
        sys.path.remove(str(EXAMPLE_PLUGIN))
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("VOICEKIT_CONFIG_DIR", None)
        else:
            os.environ["VOICEKIT_CONFIG_DIR"] = saved


@functools.cache
def registry() -> Registry:
    """The installed backends, and the example plugin's, as ``voicekit`` would see them with it installed."""
    from voicekit.registry import get_plugin_manager, load_registry

    sys.path.insert(0, str(EXAMPLE_PLUGIN))
    try:
        import voicekit_example
    finally:
        sys.path.remove(str(EXAMPLE_PLUGIN))
    manager = get_plugin_manager()
    if not manager.is_registered(voicekit_example):
        manager.register(voicekit_example, name="voicekit_example")
    return load_registry(manager)


def check_yaml(block: Block, workdir: Path) -> str:
    if block.marker == "alternatives":
        lines = [line for line in block.body.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        for index, line in enumerate(lines):
            check_one(block, line + "\n", workdir / str(index))
        return f"{len(lines)} alternatives, each a valid part of a profile"
    return check_one(block, block.body, workdir)


def check_one(block: Block, text: str, workdir: Path) -> str:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SnippetError(f"not YAML: {' '.join(str(exc).split())}") from None
    if block.marker == "fragment":
        return "parses (a fragment: not checked as a profile)"
    name = profile_name(block)
    if not isinstance(data, dict) or not (name or PROFILE_KEYS & set(data)):
        return "parses (not a profile)"
    shipped = name in shipped_profiles()
    if shipped:
        assert name is not None
        disagree = list(disagreements(data, shipped_document(name)))
        if disagree:
            raise SnippetError(f"the header names the shipped profiles/{name}.yaml, which says otherwise: {disagree}")
    whole = "extends" in data
    if not whole:
        text = f"extends: {name if shipped else 'offline'}\n{text}"
    with project(workdir) as profiles:
        filename = name if name and whole else "snippet"
        (profiles / f"{filename}.yaml").write_text(text, encoding="utf-8")
        from voicekit.profiles import check_profile

        problems = check_profile(filename, registry())
    what = "a profile" if whole else f"part of a profile (on top of {'profiles/' + name if shipped else 'offline'})"
    if block.marker == "invalid":
        if not problems:
            raise SnippetError("marked invalid, but it passes the profile checks: remove the marker")
        return f"{what} that fails as the text says it does: {problems[0]}"
    if problems:
        raise SnippetError("; ".join(problems))
    agreeing = f", agreeing with profiles/{name}.yaml" if shipped else ""
    return f"{what} that passes voicekit's profile checks{agreeing}"


def shipped_document(name: str) -> dict[str, Any]:
    from voicekit.profiles import merged_document

    return merged_document(ROOT / "profiles" / f"{name}.yaml")


def disagreements(snippet: Mapping[str, Any], shipped: Mapping[str, Any], path: str = "") -> Iterator[str]:
    for key, value in snippet.items():
        where = f"{path}{key}"
        if key == "extends" and not path:
            continue
        if key not in shipped:
            yield f"{where} is not there"
        elif isinstance(value, Mapping) and isinstance(shipped[key], Mapping):
            yield from disagreements(value, shipped[key], where + ".")
        elif value != shipped[key]:
            yield f"{where}: {shipped[key]!r} there"
