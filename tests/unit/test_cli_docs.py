"""The README's command lines, config.toml and outputs, and docs/bench.md's JSON, are what voicekit does."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import typer

from tests.unit.test_profile_docs import ROOT, block, section
from voicekit.bench import BenchReport, BenchRun
from voicekit.cli import app
from voicekit.engine.metrics import STAGES
from voicekit.recording import ConversationRecorder
from voicekit.settings_model import ENV_ONLY, Settings

README = ROOT / "README.md"


def _command_lines() -> list[str]:
    text = block(section(README, "## Using it"), "sh", "voicekit chat")
    return [line.split("#")[0].strip() for line in text.splitlines() if line.startswith("voicekit ")]


@pytest.mark.parametrize("line", _command_lines())
def test_every_command_line_of_the_readme_exists_with_its_options(line: str) -> None:
    """Each line's command exists and takes every option the line gives it (``a | b``: the first form)."""
    command: object = typer.main.get_command(app)
    words = line.split(" | ")[0].split()[1:]
    while words and hasattr(command, "commands") and words[0] in command.commands:  # type: ignore[attr-defined]
        command = command.commands[words.pop(0)]  # type: ignore[attr-defined]
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}  # type: ignore[attr-defined]
    given = {re.sub(r"[\[\]]", "", w).split("=")[0] for w in words if w.lstrip("[").startswith("-")}
    assert given <= known, f"{line}: unknown {sorted(given - known)}"


def test_readme_config_toml_is_valid() -> None:
    text = block(section(README, "## Using it"), "toml", "# ~/.config/voicekit/config.toml")
    table = tomllib.loads(text)
    assert set(table) <= set(Settings.model_fields) - set(ENV_ONLY)
    Settings.model_validate(table)


def test_settings_module_docstring_example_is_valid() -> None:
    from voicekit import settings

    text = (settings.__doc__ or "").split("```toml")[1].split("```")[0]
    Settings.model_validate(tomllib.loads(text))


def _json_blocks(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(body) for body in re.findall(r"```json\n(.*?)```", text, re.DOTALL)]


def test_bench_docs_show_the_schema_voicekit_writes(tmp_path: Path) -> None:
    bench, conversation = _json_blocks(ROOT / "docs" / "bench.md")
    report = BenchReport(inputs=[], turns_requested=1, runs=[BenchRun("p", {}, 1, 1)]).to_dict()
    assert list(bench) == list(report) and bench["schema_version"] == report["schema_version"]
    assert set(bench["runs"][0]) == set(report["runs"][0])  # type: ignore[index]
    turn = bench["runs"][0]["turns"][0]  # type: ignore[index]
    assert set(turn) == {"turn", "t", "backends", *STAGES}
    recorder = ConversationRecorder(tmp_path, profile="p", conversation_id="c", audio=False)
    recorder.close()
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert set(conversation) == set(written) and conversation["kind"] == written["kind"] == "conversation"
    assert written["stages"]["stt_ms"] == {"label": "end of speech → STT final", "count": 0, "p50": None,
                                           "p95": None, "max": None}  # fmt: skip


def test_readme_bench_comparison_is_the_shipped_report() -> None:
    """The README's chart and its `bench compare` come from docs/bench.json, which the same command wrote."""
    report = json.loads((ROOT / "docs" / "bench.json").read_text())
    assert [run["turns_completed"] for run in report["runs"]] == [10, 10]
    text = block(section(README, "## Performance"), "", "$ voicekit bench compare docs/bench.json")
    for run in report["runs"]:
        for stage in ("stt_ms", "voice_to_voice_ms", "turn_ms"):
            entry = run["stages"][stage]
            assert f"{entry['p50']:.1f} / {entry['p95']:.1f}" in text, (run["profile"], stage)
    assert (ROOT / "docs" / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
