"""``json`` and ``toml`` blocks, and what ``console`` blocks show voicekit printing.

- JSON parses; a document with ``schema_version`` (a bench report, a ``metrics.json``) has
  the keys voicekit writes for its ``kind`` (:mod:`voicekit.report`): the same top-level and
  run keys, every turn record exactly a :func:`~voicekit.report.turn_record`'s keys, and
  every stage entry ``label``/``count``/``p50``/``p95``/``max`` with the label of
  :data:`voicekit.engine.metrics.STAGE_LABELS`.
- TOML parses; a ``# ~/.config/voicekit/config.toml`` block holds valid settings, a
  ``pyproject.toml`` names a ``voicekit`` entry point.
- A table of stages in a console block (a line starting ``stage``, rows to the next blank
  line) names each stage by its label in STAGE_LABELS.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from tests.doc_snippets.blocks import Block, SnippetError


def check_json(block: Block, workdir: Path) -> str:
    try:
        data = json.loads(block.body)
    except json.JSONDecodeError as exc:
        raise SnippetError(f"not JSON: line {block.line + exc.lineno}: {exc.msg}") from None
    if block.marker == "fragment" or not isinstance(data, dict) or "schema_version" not in data:
        return "parses"
    problems = report_problems(data, workdir)
    if problems:
        raise SnippetError("; ".join(problems))
    return f"a {data['kind']} document with exactly the keys and stage labels voicekit writes"


def written(kind: object, workdir: Path) -> dict[str, Any]:
    """An empty document of ``kind`` as voicekit writes it."""
    if kind == "bench":
        from voicekit.bench import BenchReport, BenchRun

        return BenchReport(inputs=[], turns_requested=1, runs=[BenchRun("p", {}, 1, 1)]).to_dict()
    if kind == "conversation":
        from voicekit.recording import ConversationRecorder

        ConversationRecorder(workdir, profile="p", conversation_id="c", audio=False).close()
        return json.loads((workdir / "metrics.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    raise SnippetError(f"kind {kind!r}: voicekit writes 'bench' and 'conversation'")


def report_problems(data: dict[str, Any], workdir: Path) -> list[str]:
    from voicekit.engine.metrics import STAGE_LABELS, STAGES
    from voicekit.events import TurnMetrics
    from voicekit.report import turn_record

    expected = written(data.get("kind"), workdir)
    problems = [*key_problems("the document", data, expected)]
    if data["schema_version"] != expected["schema_version"]:
        problems.append(f"schema_version {data['schema_version']}, voicekit writes {expected['schema_version']}")
    runs = data.get("runs", []) if data["kind"] == "bench" else [data]
    turn_keys = list(turn_record(TurnMetrics(turn=1)))
    for number, run in enumerate(runs, 1):
        if data["kind"] == "bench":
            problems += key_problems(f"run {number}", run, expected["runs"][0])
        stages = run.get("stages", {})
        if [s for s in STAGES if s in stages] != list(stages):
            problems.append(f"run {number}: stages {list(stages)}: not among, or not in the order of, {STAGES}")
        for stage, entry in stages.items():
            problems += key_problems(f"stage {stage}", entry, dict.fromkeys(["label", "count", "p50", "p95", "max"]))
            if stage in STAGE_LABELS and entry.get("label") != STAGE_LABELS[stage]:
                problems.append(f"stage {stage}: label {entry.get('label')!r}, voicekit's is {STAGE_LABELS[stage]!r}")
        for turn in run.get("turns", []):
            problems += key_problems(f"run {number} turn {turn.get('turn')}", turn, dict.fromkeys(turn_keys))
    return problems


def key_problems(what: str, shown: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    missing, extra = [k for k in expected if k not in shown], [k for k in shown if k not in expected]
    return [f"{what}: missing {missing}"] * bool(missing) + [f"{what}: voicekit writes no {extra}"] * bool(extra)


def check_toml(block: Block) -> str:
    try:
        data = tomllib.loads(block.body)
    except tomllib.TOMLDecodeError as exc:
        raise SnippetError(f"not TOML: {exc}") from None
    if block.header.startswith("# ~/.config/voicekit/config.toml"):
        from pydantic import ValidationError

        from voicekit.settings_model import ENV_ONLY, Settings

        unknown = sorted(set(data) - (set(Settings.model_fields) - set(ENV_ONLY)))
        if unknown:
            raise SnippetError(f"config.toml has no setting {unknown}")
        try:
            Settings.model_validate(data)
        except ValidationError as exc:
            raise SnippetError(f"not valid settings: {' '.join(str(exc).split())}") from None
        return "valid settings of config.toml"
    if "project" in data:
        if "voicekit" not in data["project"].get("entry-points", {}):
            raise SnippetError("a plugin's pyproject.toml without a [project.entry-points.voicekit] table")
        return "a plugin's pyproject.toml with a voicekit entry point"
    return "parses"


BOX_RULE = re.compile(r"^[\u2500-\u257f\s]+$")  # a table's border or rule line, drawn by rich


def stage_rows(block: Block) -> list[str]:
    """The stage labels of every stage table the block shows (plain, or drawn with box characters)."""
    labels: list[str] = []
    in_table = False
    for raw in block.body.splitlines():
        if raw.strip() and BOX_RULE.match(raw):
            continue
        line = re.sub(r"[│┃]", "  ", raw)
        if not line.strip() or line.startswith("$ "):
            in_table = False
        elif in_table:
            labels.append(re.split(r"\s{2,}", line.strip())[0])
        elif line.split()[0] == "stage":
            in_table = True
    return labels


def check_stage_rows(block: Block) -> str:
    from voicekit.engine.metrics import STAGE_LABELS

    rows = stage_rows(block)
    unknown = [label for label in rows if label not in STAGE_LABELS.values()]
    if unknown:
        raise SnippetError(f"stage rows {unknown} are no labels of voicekit.engine.metrics.STAGE_LABELS")
    return f"; {len(rows)} stage rows labelled as voicekit labels them" if rows else ""
