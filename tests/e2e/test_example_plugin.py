"""Third-party plugins, installed for real: the example plugin, a broken one, a clashing one.

Each plugin is installed into a temporary directory the way an installer lays out a
wheel (the package, plus a ``.dist-info`` whose ``entry_points.txt`` comes from the
project's ``[project.entry-points]`` table), and that directory is put on
``PYTHONPATH`` of a fresh ``python -m voicekit`` process, where
``importlib.metadata.entry_points`` finds it as it finds any installed distribution.
Building a wheel with pip instead would need the build backend (hatchling) from the
network; this needs nothing and takes milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import wave
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "voicekit-example-plugin"
FIXTURES = Path(__file__).resolve().parents[1] / "plugin_fixtures"


def install(project: Path, site: Path) -> None:
    """Install ``project``'s packages and distribution metadata (with its entry points) into ``site``."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    src = project / "src" if (project / "src").is_dir() else project
    for package in src.iterdir():
        if (package / "__init__.py").is_file():
            shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    dist_info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = []
    for group, entries in meta.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist_info / "INSTALLER").write_text("voicekit-tests\n")


class Env:
    """A site directory with some plugins installed, and a way to run Python and voicekit with it."""

    def __init__(self, base: Path, *projects: Path) -> None:
        self.site = base / "site"
        self.site.mkdir()
        for project in projects:
            install(project, self.site)
        (base / "config").mkdir()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(self.site),
            "VOICEKIT_LEDGER": str(base / "ledger.sqlite3"),
            "VOICEKIT_CONFIG_DIR": str(base / "config"),
            "COLUMNS": "200",
            "PYTHONDONTWRITEBYTECODE": "1",  # leave no __pycache__ in the example's tree
        }
        self.base = base

    def run(self, *args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], input=stdin, capture_output=True, text=True,
            env=self.env, cwd=cwd or self.base, timeout=240,
        )  # fmt: skip

    def voicekit(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "voicekit", *args, stdin=stdin)

    def plugins_json(self) -> dict[str, Any]:
        done = self.voicekit("plugins", "list", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def registry(self) -> dict[str, Any]:
        """What ``load_registry()`` sees in that environment."""
        code = (
            "import json; from voicekit.registry import load_registry; r = load_registry(); "
            "print(json.dumps({'outputs': {n: e.plugin for n, e in r.backends['output'].items()}, "
            "'broken': r.broken, 'conflicts': [[*k, v] for k, v in r.conflicts.items()]}))"
        )
        done = self.run("-c", code)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(tmp_path_factory.mktemp("example"), EXAMPLE)


def test_example_backends_listed(example: Env) -> None:
    listing = example.plugins_json()
    mine = {(row["role"], row["name"]) for row in listing["backends"] if row["plugin"] == "example"}
    assert mine == {("output", "beep"), ("output", "reverse")}
    assert listing["broken"] == {} and listing["conflicts"] == []
    origins = {row["name"]: row["origin"] for row in listing["backends"] if row["role"] == "output"}
    assert origins["beep"] == "voicekit-example 0.1.0" and origins["espeak"] == "built in"  # not "built in" for all
    assert example.registry()["outputs"]["beep"] == "example"


def test_example_command(example: Env) -> None:
    done = example.voicekit("example-hello", "--name", "Ada")
    assert done.returncode == 0, done.stderr
    assert "Hello, Ada! voicekit-example 0.1.0 adds the voices: beep, reverse" in done.stdout
    assert "example-hello" in example.voicekit("--help").stdout


def test_conversation_speaks_through_plugin_voice(example: Env) -> None:
    profile = example.base / "reverse-beep.yaml"
    profile.write_text(
        "description: typed text, scripted reply, spoken by the example plugin\n"
        "llm: {use: scripted, replies: ['One two three. Four five.']}\n"
        "output: {use: reverse, voice: {use: beep, sample_rate: 16000, word_ms: 50, gap_ms: 50}}\n"
    )
    out = example.base / "reply.wav"
    done = example.voicekit("chat", "--profile", str(profile), "--text", "--output", str(out), stdin="hello\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "One two three. Four five." in done.stdout
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == 16000
        assert wav.getnframes() >= 5 * 1600  # five words, 100 ms each


def test_example_plugin_own_tests_pass(example: Env) -> None:
    """The plugin's test suite (voicekit's contract classes) passes against the installed plugin."""
    done = example.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests"), cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_broken_plugin_is_reported_and_cli_still_works(tmp_path: Path) -> None:
    env = Env(tmp_path, EXAMPLE, FIXTURES / "broken-plugin")
    seen = env.registry()
    assert seen["broken"] == {"broken": "RuntimeError: voicekit_broken_example is broken on purpose"}
    assert seen["outputs"]["beep"] == "example"  # the other plugins are unharmed
    listing = env.plugins_json()
    assert "broken on purpose" in listing["broken"]["broken"]
    assert any(row["name"] == "reverse" for row in listing["backends"])
    assert env.voicekit("--help").returncode == 0
    done = env.voicekit("example-hello")
    assert done.returncode == 0 and "Hello, world!" in done.stdout


def test_duplicate_names_are_conflicts_naming_both_plugins(tmp_path: Path) -> None:
    env = Env(tmp_path, EXAMPLE, FIXTURES / "duplicate-plugin")
    conflicts = {(role, name): message for role, name, message in env.registry()["conflicts"]}
    assert set(conflicts) == {("output", "beep"), ("llm", "echo")}
    assert "example" in conflicts[("output", "beep")] and "duplicate" in conflicts[("output", "beep")]
    assert "builtin" in conflicts[("llm", "echo")] and "duplicate" in conflicts[("llm", "echo")]
    assert sorted(env.plugins_json()["conflicts"]) == sorted(conflicts.values())
    table = env.voicekit("plugins", "list").stdout.splitlines()
    beep = next(line for line in table if line.split()[:2] == ["output", "beep"])
    assert "conflict" in beep and "registered twice" in beep  # in the table itself, on the backend's row
    profile = tmp_path / "beep.yaml"
    profile.write_text("llm: {use: scripted}\noutput: {use: beep}\n")
    done = env.voicekit("chat", "--profile", str(profile), "--text", "--output", str(tmp_path / "x.wav"), stdin="hi\n")
    assert done.returncode != 0
    assert "registered twice" in done.stderr and "example" in done.stderr and "duplicate" in done.stderr


def test_nested_voice_errors_point_at_the_line(example: Env) -> None:
    """A typo inside the nested voice: validate and chat both name the file, line and nested path."""
    profile = example.base / "nested.yaml"
    profile.write_text(
        "stt: {use: scripted}\n"
        "llm: {use: scripted, replies: [Hi]}\n"
        "output:\n"
        "  use: reverse\n"
        "  voice:\n"
        "    use: espeak\n"
        "    voise: en-us\n"
    )
    expected = "nested.yaml:7: output.voice.voise: unknown option (did you mean 'voice'?)"
    validate = example.voicekit("profiles", "validate", str(profile))
    assert validate.returncode == 1 and validate.stdout.strip().endswith(expected), validate.stdout
    chat = example.voicekit("chat", "--profile", str(profile), "--text", "--output", str(example.base / "n.wav"))
    assert chat.returncode == 2 and expected in chat.stderr, chat.stderr
    fixed = example.voicekit("profiles", "validate", str(profile), "--set", "output.voice.voice=en-us")
    assert fixed.returncode == 1 and "output.voice.voise" in fixed.stdout  # --set adds; the typo stays
    good = example.voicekit("profiles", "validate", str(profile), "--set", "output.voice={use: espeak, voice: en-us}")
    assert (good.returncode, good.stdout) == (0, f"{profile}: ok\n"), good.stderr
