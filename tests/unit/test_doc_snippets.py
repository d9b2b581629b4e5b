"""Every fenced block of README.md and docs/*.md is what voicekit does (tests/doc_snippets says how each is checked).

The targeted tests (test_cli_docs, test_profile_docs, test_tools_docs, ...) check some blocks in depth;
these check every block at its language's level, so none goes stale unseen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_snippets import ROOT, Block, all_blocks, check_all, check_block, check_js, listing, verdict
from tests.doc_snippets.python_blocks import run_block


def test_every_block_of_the_docs_is_what_voicekit_does(tmp_path: Path) -> None:
    results = check_all(tmp_path)
    assert len(results) > 50 and {b.language for b, _ in results} >= {"python", "yaml", "sh", "console", "json"}
    failed = [block.where for block, result in results if not result.ok]
    assert not failed, f"{len(failed)} blocks of the docs are wrong: {failed}\n" + listing(results)


@pytest.mark.browser
def test_javascript_blocks_bundle_against_the_tested_client(tmp_path: Path) -> None:
    """The client code of docs/serve.md imports what the pinned client packages export (esbuild of the browser
    tests resolves every import)."""
    scripts = [block for block in all_blocks() if block.language == "js"]
    assert scripts, "docs/serve.md shows no client code any more"
    results = [(block, verdict(check_js, block, tmp_path / str(index))) for index, block in enumerate(scripts)]
    assert all(result.ok for _, result in results), listing(results)


def snippet(language: str, body: str, marker: str = "") -> Block:
    return Block("doc.md", 10, language, body, marker)


WRONG = [
    ("sh", "voicekit chat --profile offline --speed 2\n", "voicekit chat has no option --speed"),
    ("sh", "voicekit chat --profile\n", "--profile needs a value"),
    ("sh", "voicekit sesions list\n", "voicekit has no command 'sesions'"),
    ("sh", "voicekit keys set A B\n", "voicekit keys set: too many arguments"),
    ("sh", "voicekit models list | pul NAME\n", "'pul': no subcommand of voicekit models"),
    ("sh", "voicekit profiles list | show NAME [--default]\n", "voicekit profiles show has no option --default"),
    ("sh", "voicekit chat --profile my-robot\n", "no profile 'my-robot'"),
    ("sh", "make demo-offline\n", "no Makefile target demo-offline"),
    ("sh", "pip install 'voicekit[offline,deepgramm]'\n", "no extra deepgramm"),
    ("sh", "python benchmarks/vad.py --noise 10\n", "benchmarks/vad.py takes no --noise"),
    ("sh", "export VOICEKIT_LEDGER_PATH=x\n", "voicekit reads no variable VOICEKIT_LEDGER_PATH"),
    ("console", "$ voicekit sessions show 1\nstage  p50 ms\nSTT final → LLM first token  0.5\n", "no labels"),
    ("yaml", "llm: {use: echo, temprature: 1}\n", "llm.temprature: unknown option"),
    ("yaml", "llm: {use: echo}\nllm: {use: echo}\n", "duplicate key"),
    ("yaml", "# profiles/offline.yaml\nllm: {use: gemini}\n", "llm.use: 'echo' there"),
    ("yaml", "extends: offline\n", "marked invalid, but it passes"),
    ("json", '{"schema_version": 2, "kind": "bench", "created_at": 0, "inputs": [], "turns_requested": 1}\n', "runs"),
    ("toml", "# ~/.config/voicekit/config.toml\nprofiles = 'offline'\n", "no setting ['profiles']"),
    ("python", "register_stt(register: Register) -> None\n", "does not compile"),
    ("", "some output\n", "no language"),
    ("rust", "fn main() {}\n", "no check knows this language"),
]


@pytest.mark.parametrize(("language", "body", "expected"), WRONG, ids=[f"{w[0]}:{w[1].strip()[:40]}" for w in WRONG])
def test_a_wrong_block_fails_saying_why(language: str, body: str, expected: str, tmp_path: Path) -> None:
    marker = "invalid" if body == "extends: offline\n" else ""
    result = verdict(check_block, snippet(language, body, marker), tmp_path, frozenset())
    assert not result.ok and expected in result.text, result


def test_a_marker_must_mean_something_for_its_language(tmp_path: Path) -> None:
    result = verdict(check_block, snippet("sh", "make demo\n", "fragment"), tmp_path)
    assert not result.ok and "marker 'fragment' means nothing for ```sh" in result.text


def test_a_python_block_that_fails_names_its_line(tmp_path: Path) -> None:
    """An unmarked block runs in its own interpreter; the error points at the doc's line."""
    result = verdict(run_block, snippet("python", "import voicekit\n\nvoicekit.no_such_thing()\n"), tmp_path / "bad")
    assert not result.ok and "line 13: AttributeError" in result.text and "snippet: fragment" in result.text
    assert verdict(run_block, snippet("python", "import voicekit\n"), tmp_path / "ok").ok


def test_markers_are_read_from_the_line_before_the_fence() -> None:
    from tests.doc_snippets.blocks import read_blocks

    doc = ROOT / "docs" / "plugins.md"
    markers = {block.marker for block in read_blocks(doc)}
    assert {"fragment", "signature", "invalid"} <= markers
