"""The fenced blocks of the docs, with the marker written before each, and what a check says of one."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^\s*<!--\s*snippet:\s*([\w-]+)\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")

#: markers each language accepts, and what they mean (the harness's docstring says more)
MARKERS = {
    "python": {"fragment", "signature"},
    "yaml": {"fragment", "alternatives", "invalid"},
    "json": {"fragment"},
}


def doc_paths() -> list[Path]:
    """README.md and every docs/*.md: what users copy from."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    """One fenced block: where it starts, its language, the marker before it and its text (dedented)."""

    path: str
    line: int
    language: str
    body: str
    marker: str = ""
    note: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def header(self) -> str:
        """The first line, if it is a comment (``# profiles/NAME.yaml``), else ``""``."""
        first = self.body.split("\n", 1)[0].strip()
        return first if first.startswith("#") else ""


@dataclass(frozen=True)
class Verdict:
    """What the check of one block found: ``ok`` and a line saying what was checked or what is wrong."""

    ok: bool
    text: str


class SnippetError(Exception):
    """A block is not what voicekit does; the message says where and why."""


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``; an unclosed fence is an error."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = path.relative_to(ROOT).as_posix()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent, language = fence.groups()
        start = index
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            index += 1
        if index == len(lines):
            raise SnippetError(f"{name}:{start + 1}: the fence opened here is never closed")
        body = textwrap.dedent("\n".join(line.removeprefix(indent) for line in lines[start + 1 : index])) + "\n"
        marker = MARKER.match(lines[start - 1]) if start else None
        found.append(
            Block(
                name,
                start + 1,
                language,
                body,
                marker.group(1) if marker else "",
                marker.group(2) if marker else "",
            )
        )
        index += 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in doc_paths() for block in read_blocks(path)]
