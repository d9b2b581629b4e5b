"""Profiles that would take the machine down when built: an alias bomb, deep nesting, a huge
or endless file. Each fails at once with one line naming the file (or the ``--set``)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
llm: {use: echo}
"""


def capped_voicekit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``voicekit ARGS`` with 1 GiB of address space at most: a regression fails instead of
    eating the machine's memory (the timeout is only a guard, not what is tested)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-c", "from voicekit.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        preexec_fn=cap,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "400", "HOME": str(cwd)},
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "profiles").mkdir()
    return tmp_path


def test_an_alias_bomb_fails_fast_and_small_everywhere(project: Path) -> None:
    (project / "profiles" / "bomb.yaml").write_text(BOMB)
    assert len(BOMB) < 400
    for args in (
        ("profiles", "show", "bomb"),
        ("chat", "--profile", "bomb", "--text"),
        ("profiles", "validate", "bomb"),
    ):
        line = one_line(capped_voicekit(*args, cwd=project))
        assert "profiles/bomb.yaml:" in line and "more than 20000 values once its aliases are expanded" in line, line
    listed = capped_voicekit("profiles", "list", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "bomb" in listed.stdout and "more than 20000 values" in listed.stdout
    assert "offline" in listed.stdout  # the other profiles are still listed


def test_deep_nesting_is_refused_with_the_file_and_line(project: Path) -> None:
    (project / "profiles" / "deep.yaml").write_text("llm: {use: echo}\nx: " + "[" * 20_000 + "]" * 20_000 + "\n")
    line = one_line(capped_voicekit("profiles", "show", "deep", cwd=project))
    assert line == "error: profiles/deep.yaml:2: nested deeper than 40 levels"
    aliased = "a: &a " + "[" * 30 + "1" + "]" * 30 + "\nb: [[[[[[[[[[[[[[*a]]]]]]]]]]]]]]\nllm: {use: echo}\n"
    (project / "profiles" / "aliased.yaml").write_text(aliased)
    line = one_line(capped_voicekit("profiles", "show", "aliased", cwd=project))
    assert "profiles/aliased.yaml:2: nested deeper than 40 levels once its aliases are expanded" in line


def test_set_values_have_the_same_limits(project: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    line = one_line(capped_voicekit("profiles", "show", "offline", "--set", f"llm.x={deep}", cwd=project))
    assert line.startswith("error: --set llm.x=[[[[") and "nested deeper than 40 levels" in line and len(line) < 250
    bomb = (
        "[&a [x,x,x,x,x,x,x,x,x,x]"
        + "".join(f", &{n} [" + ",".join([f"*{p}"] * 10) + "]" for p, n in zip("abcdef", "bcdefg", strict=True))
        + "]"
    )
    line = one_line(capped_voicekit("profiles", "show", "offline", "--set", f"llm.x={bomb}", cwd=project))
    assert "more than 20000 values once its aliases are expanded" in line


def test_a_huge_or_endless_profile_file_is_refused(project: Path) -> None:
    big = project / "profiles" / "big.yaml"
    big.write_text("llm: {use: echo}\ndescription: '" + "x" * (1 << 20) + "'\n")
    line = one_line(capped_voicekit("profiles", "show", "big", cwd=project))
    assert "profiles/big.yaml: a profile of more than 1024 KiB" in line
    line = one_line(capped_voicekit("profiles", "show", "/dev/zero", cwd=project))
    assert "/dev/zero" in line and "not a regular file" in line
